"""What a host sees and may do while the engine reconnects (memory transport, a gate that
holds the next connection): audio is held up to ``audio_buffer_ms`` and the rest counted,
text waits for the new session, ``close()`` gives exactly one ``ConversationClosed``, and a
pending tool call stays answerable in the new session."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from duplex.engine import (
    AudioFrame,
    ConversationClosed,
    ConversationReconnecting,
    ConversationResumed,
    EngineConfig,
    HandoffRequested,
    InvalidAudioFrame,
    ReconnectPolicy,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    open_engine,
)
from duplex.protocol import Error as WireError
from duplex.transports import Transport, TransportError

from ._engine_helpers import (
    API_KEY,
    MemoryServer,
    PeerHandle,
    closed_events,
    host_events,
    of_type,
    poll_until,
    wire,
)

FRAME_20MS = AudioFrame(b"\x01\x00" * 480, 24000, 1)


def _peer(handle: PeerHandle, event: dict[str, Any]) -> list[str]:
    if event["type"] == "session.update":
        return [wire(SessionCreated(f"sess_{handle.index}"))]
    return []


@attrs.define
class GatedFactory:
    """Connection 0 at once; later ones wait for ``gate`` (or are refused while
    ``refuse`` is set)."""

    server: MemoryServer
    gate: trio.Event = attrs.field(factory=trio.Event)
    refuse: bool = False

    async def __call__(self, nursery: trio.Nursery) -> Transport:
        if self.server.peers:
            if self.refuse:
                raise TransportError("refused (test)")
            await self.gate.wait()
        return await self.server(nursery)


def _types(handle: PeerHandle) -> list[str]:
    return [json.loads(t)["type"] for t in handle.received]


def _user_texts(handle: PeerHandle) -> list[str]:
    out: list[str] = []
    for text in handle.received:
        event = json.loads(text)
        item = event.get("item") or {}
        if item.get("role") == "user":
            out.extend(p.get("text") for p in item.get("content", ()))
    return out


async def test_audio_and_text_sent_while_reconnecting_reach_the_new_session_bounded() -> None:
    policy = ReconnectPolicy(audio_buffer_ms=200)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            factory = GatedFactory(server)
            config = EngineConfig(api_key=API_KEY, reconnect=policy)
            async with (
                open_engine(config, transport_factory=factory) as engine,
                host_events(engine) as events,
            ):
                await engine.start()
                await engine.send_text("before the drop")
                await server.peers[0].peer.drop()
                await events.until(of_type(ConversationReconnecting))
                assert engine.statistics().running
                for _ in range(50):  # 1 s of audio while nothing is connected
                    assert engine.send_audio(FRAME_20MS)
                texts_sent = trio.Event()

                async def text_later() -> None:
                    await engine.send_text("during the reconnect")
                    texts_sent.set()

                nursery.start_soon(text_later)
                await trio.testing.wait_all_tasks_blocked()
                assert not texts_sent.is_set()  # held, not refused
                factory.gate.set()
                resumed = (await events.until(of_type(ConversationResumed)))[-1]
                assert resumed.replayed == 1
                await texts_sent.wait()
                new = server.peers[1]

                def appended() -> int:
                    return _types(new).count("input_audio_buffer.append")

                await poll_until(lambda: appended() >= 10)
                await trio.testing.wait_all_tasks_blocked()
                assert appended() == 10  # 200 ms of the 1 s
                assert engine.statistics().audio_frames_dropped == 40
                assert _user_texts(new) == ["before the drop", "during the reconnect"]
                assert engine.statistics().reconnects == 1
                assert await engine.close()
                await events.until(of_type(ConversationClosed))
            nursery.cancel_scope.cancel()
    assert len(closed_events(events.log)) == 1


def _numbered(n: int) -> AudioFrame:
    """20 ms whose every sample is ``n``: which frame reached the server is readable."""
    return AudioFrame(struct.pack("<h", n) * 480, 24000, 1)


def _appended_numbers(handle: PeerHandle) -> list[int]:
    out = []
    for text in handle.received:
        event = json.loads(text)
        if event["type"] == "input_audio_buffer.append":
            out.append(struct.unpack_from("<h", base64.b64decode(event["audio"]))[0])
    return out


async def test_a_long_reconnect_sends_the_newest_audio_not_the_first_that_fit() -> None:
    # The held audio filled the channel and the *newest* frames were refused, so the resumed
    # session got stale audio (frames 156..255 of 500) and lost the latest speech.
    policy = ReconnectPolicy(audio_buffer_ms=200)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            factory = GatedFactory(server)
            config = EngineConfig(api_key=API_KEY, reconnect=policy, audio_queue_size=32)
            async with (
                open_engine(config, transport_factory=factory) as engine,
                host_events(engine) as events,
            ):
                await engine.start()
                await server.peers[0].peer.drop()
                await events.until(of_type(ConversationReconnecting))
                assert all(engine.send_audio(_numbered(i)) for i in range(100))
                assert engine.statistics().audio_frames_dropped == 100 - 32
                factory.gate.set()
                await events.until(of_type(ConversationResumed))
                new = server.peers[1]
                await poll_until(lambda: len(_appended_numbers(new)) >= 10)
                await trio.testing.wait_all_tasks_blocked()
                assert _appended_numbers(new) == list(range(90, 100))  # the newest 200 ms


async def test_a_frame_refused_when_connected_is_refused_while_reconnecting() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            factory = GatedFactory(server)
            async with (
                open_engine(EngineConfig(api_key=API_KEY), transport_factory=factory) as engine,
                host_events(engine) as events,
            ):
                await engine.start()
                await server.peers[0].peer.drop()
                await events.until(of_type(ConversationReconnecting))
                with pytest.raises(InvalidAudioFrame, match="audio_format is 'pcm16'"):
                    engine.send_audio(AudioFrame(b"\xff" * 160, 8000, 1, "pcmu"))
                factory.gate.set()
                await events.until(of_type(ConversationResumed))


async def test_statistics_count_every_connection_and_never_go_backwards() -> None:
    # bytes_in/bytes_out came from the current transport only: a reconnect reset them to 0.
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            factory = GatedFactory(server)
            factory.gate.set()
            async with (
                open_engine(EngineConfig(api_key=API_KEY), transport_factory=factory) as engine,
                host_events(engine) as events,
            ):
                await engine.start()
                await events.until(of_type(SessionCreated))
                await engine.send_text("before the drop")
                await poll_until(lambda: len(server.peers[0].received) >= 2)
                before = engine.statistics()
                assert before.bytes_in > 0
                assert before.bytes_out > 0
                await server.peers[0].peer.drop()
                await events.until(of_type(ConversationResumed))
                await events.until(of_type(SessionCreated))  # the new session's first bytes
                after = engine.statistics()
                assert after.bytes_out > before.bytes_out
                assert after.bytes_in > before.bytes_in


async def test_text_sent_as_the_reconnect_completes_is_delivered_before_a_close() -> None:
    # The resume released the held host calls, then waited to queue ConversationResumed on
    # a full host queue: a send_text returned with its message queued on a connection whose
    # tasks did not exist yet, and close() then dropped it.
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            config = EngineConfig(api_key=API_KEY, event_queue_size=1)
            async with open_engine(config, transport_factory=server) as engine:
                stream = engine.events()
                await engine.start()
                while not isinstance(await stream.__anext__(), SessionCreated):
                    pass  # the host has read everything: the queue is empty
                await server.peers[0].peer.drop()
                # ConversationReconnecting fills the one-batch queue (the host is away) and
                # the reconnect goes ahead.
                await trio.testing.wait_all_tasks_blocked()
                assert len(server.peers) == 2
                await engine.send_text("please deliver me", respond=False)
                assert await engine.close()
        assert _user_texts(server.peers[1]) == ["please deliver me"]


async def test_close_while_reconnecting_emits_exactly_one_requested() -> None:
    policy = ReconnectPolicy(initial_backoff=30.0)  # attempt 2 would wait 30 s
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            factory = GatedFactory(server, refuse=True)
            config = EngineConfig(api_key=API_KEY, reconnect=policy)
            async with (
                open_engine(config, transport_factory=factory) as engine,
                host_events(engine) as events,
            ):
                await engine.start()
                await server.peers[0].peer.close(1011)
                taken = await events.until(
                    lambda e: isinstance(e, ConversationReconnecting) and e.attempt == 2
                )
                assert [e.attempt for e in taken if isinstance(e, ConversationReconnecting)] == [
                    1,
                    2,
                ]
                assert await engine.close()
                await events.until(of_type(ConversationClosed))
                await events.nothing_for(0.1)
                assert not await engine.close()
            nursery.cancel_scope.cancel()
    assert [c.reason for c in closed_events(events.log)] == ["requested"]


async def test_non_resumable_errors_still_end_the_conversation() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            async with (
                open_engine(EngineConfig(api_key=API_KEY), transport_factory=server) as engine,
                host_events(engine) as events,
            ):
                await engine.start()
                await server.peers[0].peer.send_text(wire(WireError("bad key", "invalid_api_key")))
                closed = (await events.until(of_type(ConversationClosed)))[-1]
                assert closed.reason == "error"
                assert not any(isinstance(e, ConversationReconnecting) for e in events.log)
            nursery.cancel_scope.cancel()
    assert len(server.peers) == 1


async def test_a_pending_handoff_stays_answerable_in_the_new_session() -> None:
    def peer(handle: PeerHandle, event: dict[str, Any]) -> list[str]:
        if event["type"] == "session.update" and handle.index == 0:
            return [
                wire(SessionCreated("sess_0")),
                wire(HandoffRequested("call_h1", "item_h1", "book a table")),
            ]
        return _peer(handle, event)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, peer)
            factory = GatedFactory(server)
            factory.gate.set()
            async with (
                open_engine(EngineConfig(api_key=API_KEY), transport_factory=factory) as engine,
                host_events(engine) as events,
            ):
                await engine.start()
                await events.until(of_type(HandoffRequested))
                await server.peers[0].peer.drop()
                await events.until(of_type(ConversationResumed))
                await engine.send_handoff_output("call_h1", "booked for 8 pm")
                new = server.peers[1]
                await poll_until(lambda: "response.create" in _types(new))
                items = [
                    json.loads(t)["item"]
                    for t in new.received
                    if json.loads(t)["type"] == "conversation.item.create"
                ]
                kinds = [(i["type"], i.get("call_id")) for i in items]
                # The call was replayed before the host's output for it.
                assert kinds.index(("function_call", "call_h1")) < kinds.index(
                    ("function_call_output", "call_h1")
                )
                assert engine.history()[-1].output == "booked for 8 pm"
            nursery.cancel_scope.cancel()


async def test_rotation_after_a_resumed_drop_requests_no_response() -> None:
    """Regression: the "a response was cut" flag of a drop leaked into a later rotation,
    which then asked the model for an unrequested answer."""

    def peer(handle: PeerHandle, event: dict[str, Any]) -> list[str]:
        if event["type"] == "response.create":
            rid = f"resp_{handle.index}"
            if handle.index == 0:
                return [wire(ResponseCreated(rid))]  # cut by the drop below
            return [wire(ResponseCreated(rid)), wire(ResponseDone(rid, "completed"))]
        return _peer(handle, event)

    policy = ReconnectPolicy(max_session_s=0.3)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, peer)
            config = EngineConfig(api_key=API_KEY, reconnect=policy)
            async with (
                open_engine(config, transport_factory=server) as engine,
                host_events(engine) as events,
            ):
                await engine.start()
                await engine.send_text("hello")
                await events.until(of_type(ResponseCreated))
                await server.peers[0].peer.drop()
                await events.until(of_type(ConversationResumed))
                await events.until(of_type(ResponseDone))
                taken = await events.until(of_type(ConversationResumed))
                assert [e.reason for e in taken if isinstance(e, ConversationReconnecting)] == [
                    "rotation"
                ]
                assert "response.create" in _types(server.peers[1])  # the cut one, again
                await trio.testing.wait_all_tasks_blocked()
                assert "response.create" not in _types(server.peers[2])
            nursery.cancel_scope.cancel()
