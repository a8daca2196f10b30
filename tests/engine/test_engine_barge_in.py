"""Barge-in on v2 WebSocket: when the user starts speaking while assistant audio is playing,
the engine cuts the assistant item at the audio the host actually took from ``events()``
(peer-libraries.md §7 #1, #2, #9, #10: no truncate, a truncate past the item's end, a
zero-length truncate — each broke a peer library).

The memory-transport tests iterate ``engine.events()`` directly, so "what the host took" is
exact; the simulator test checks the same rule against a strict server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import trio
import trio.testing

from duplex.engine import (
    AudioFrame,
    AudioOut,
    ConversationItemTruncated,
    EngineConfig,
    Error,
    InputAudioSpeechStarted,
    SessionCreated,
    open_engine,
)
from duplex.protocol import ResponseCreated, ResponseDone, encode_server_event
from duplex.simulator import SimulatorConfig, open_simulator

from ._engine_helpers import (
    API_KEY,
    MemoryServer,
    PeerHandle,
    engine_with_events,
    of_type,
    pcm_frames,
    poll_until,
    silence,
    sim_config,
    sine,
)

FRAME_MS = 100
PCM = b"\x10\x00" * (24000 * FRAME_MS // 1000)


def _v2(event: Any) -> str:
    return encode_server_event(event, "v2")


def _audio(item: str = "item_a", response: str = "resp_a") -> str:
    return _v2(AudioOut(AudioFrame(PCM, 24000, 1), item, response))


def _silent_peer(_handle: PeerHandle, _event: dict[str, Any]) -> list[str]:
    return []


async def _take(it: AsyncIterator[Any], count: int, kind: type[Any]) -> list[Any]:
    """Take events from the host iterator until ``count`` of ``kind`` were taken."""
    taken: list[Any] = []
    while sum(isinstance(e, kind) for e in taken) < count:
        taken.append(await it.__anext__())
    return taken


async def _client_events(handle: PeerHandle, count: int) -> list[dict[str, Any]]:
    await poll_until(lambda: len(handle.received) >= count)
    return [json.loads(t) for t in handle.received]


async def _barge_in(taken_frames: int, *, version: str = "v2") -> tuple[list[dict[str, Any]], Any]:
    """Stream 8 audio frames of item_a, let the host take ``taken_frames`` of them, then
    speech starts. Returns what the client sent after its handshake, and the statistics."""

    def enc(event: Any) -> str:
        return encode_server_event(event, version)

    async with trio.open_nursery() as nursery:
        server = MemoryServer(nursery, _silent_peer)
        config = EngineConfig(api_key=API_KEY, version=version)
        async with (
            open_engine(config, transport_factory=server) as engine,
            aclosing(engine.events()) as it,
        ):
            await engine.start()
            handle = server.peers[0]
            await _client_events(handle, 1)  # the handshake
            await handle.peer.send_text(enc(SessionCreated("sess_1")))
            await handle.peer.send_text(enc(ResponseCreated("resp_a")))
            for _ in range(8):
                await handle.peer.send_text(
                    enc(AudioOut(AudioFrame(PCM, 24000, 1), "item_a", "resp_a"))
                )
            await _take(it, 1, SessionCreated)
            if taken_frames:
                await _take(it, taken_frames, AudioOut)
            # Let the engine process everything that arrived before speech starts.
            await trio.testing.wait_all_tasks_blocked()
            await handle.peer.send_text(enc(InputAudioSpeechStarted("item_user", 900)))
            # Audio of the cut item still in flight must not reach the host.
            await handle.peer.send_text(
                enc(AudioOut(AudioFrame(PCM, 24000, 1), "item_a", "resp_a"))
            )
            await trio.testing.wait_all_tasks_blocked()  # everything sent has been handled
            sent = [json.loads(t) for t in handle.received[1:]]
            stats = engine.statistics()
        nursery.cancel_scope.cancel()
    return sent, stats


async def test_truncate_at_exactly_the_audio_the_host_took() -> None:
    with trio.fail_after(10):
        sent, stats = await _barge_in(3)
    assert sent == [
        {
            "type": "conversation.item.truncate",
            "item_id": "item_a",
            "content_index": 0,
            "audio_end_ms": 3 * FRAME_MS,
        }
    ]
    assert stats.truncations == 1
    assert stats.stale_audio_dropped >= 1


async def test_barge_in_before_any_audio_was_taken_deletes_the_item() -> None:
    """audio_end_ms = 0 is rejected by the server (livekit #6157): delete instead."""
    with trio.fail_after(10):
        sent, stats = await _barge_in(0)
    assert sent == [{"type": "conversation.item.delete", "item_id": "item_a"}]
    assert stats.truncations == 1


async def test_no_barge_in_on_v1() -> None:
    with trio.fail_after(10):
        sent, stats = await _barge_in(3, version="v1")
    assert sent == []
    assert stats.truncations == 0


async def test_no_truncate_when_nothing_is_playing() -> None:
    """openai-agents-python #2370: a finished, fully delivered item is not truncated."""
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _silent_peer)
            config = EngineConfig(api_key=API_KEY)
            async with (
                open_engine(config, transport_factory=server) as engine,
                aclosing(engine.events()) as it,
            ):
                await engine.start()
                handle = server.peers[0]
                await _client_events(handle, 1)
                await handle.peer.send_text(_v2(ResponseCreated("resp_a")))
                for _ in range(4):
                    await handle.peer.send_text(_audio())
                await handle.peer.send_text(_v2(ResponseDone("resp_a", "completed")))
                await _take(it, 1, ResponseDone)
                await handle.peer.send_text(_v2(InputAudioSpeechStarted("item_user", 10)))
                await _take(it, 1, InputAudioSpeechStarted)
                await trio.testing.wait_all_tasks_blocked()  # the engine has decided
                assert handle.received[1:] == []
                assert engine.statistics().truncations == 0
            nursery.cancel_scope.cancel()


async def test_barge_in_against_strict_simulator_is_accepted() -> None:
    """Real-time model audio, a host that plays (takes) it as it comes, then the user talks:
    the truncate the engine sends is within what the host took and the server accepts it."""
    config = SimulatorConfig(audio_speedup=1.0, audio_chunk_ms=40)
    async with open_simulator(config) as sim:
        with trio.fail_after(20):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                await engine.start()
                await engine.send_text("tell me a rather long story about the sea please")
                first = await events.until(of_type(AudioOut))
                item_id = first[-1].item_id
                await events.until(lambda e: isinstance(e, AudioOut) and voiced_enough(events))
                for frame in pcm_frames(sine(600, amplitude=9000) + silence(300)):
                    engine.send_audio(frame)
                truncated = (await events.until(of_type(ConversationItemTruncated)))[-1]
                taken_ms = sum(
                    e.frame.duration_ms
                    for e in events.log
                    if isinstance(e, AudioOut) and e.item_id == item_id
                )
                assert truncated.item_id == item_id
                assert 0 < truncated.audio_end_ms <= taken_ms
                assert not [e for e in events.log if isinstance(e, Error)]
                assert engine.statistics().truncations == 1
                # The host learns why the answer stopped (status_details.reason).
                done = [e for e in events.log if isinstance(e, ResponseDone)]
                if not done:
                    done = await events.until(of_type(ResponseDone))
                assert (done[-1].status, done[-1].reason) == ("cancelled", "turn_detected")
        record = sim.sessions[0]
        truncates = record.of_type("conversation.item.truncate")
        assert len(truncates) == 1


def voiced_enough(events: Any) -> bool:
    """At least 400 ms of the response's audio was taken by the host."""
    return sum(e.frame.duration_ms for e in events.log if isinstance(e, AudioOut)) >= 400
