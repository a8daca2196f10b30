"""Reliability regressions (issues 11 and 12, engine side): cancellation around ``start()``,
shutdown during a start, host calls racing the end, a stalled socket, bad host audio, PCM16
alignment, message hygiene and statistics. Each test failed before the state-machine redesign.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from duplex.engine import (
    AudioFrame,
    ConversationClosed,
    ConversationNotRunning,
    ConversationStarted,
    EngineClosed,
    EngineConfig,
    Error,
    InvalidAudioFrame,
    NoopRequested,
    ParseFailure,
    ReconnectPolicy,
    SessionCreated,
    SessionUpdated,
    open_engine,
)
from duplex.engine._queues import CONTROL_BACKLOG, OUTBOUND_FRAMES
from duplex.simulator import Scenario, ScenarioStep, open_simulator
from duplex.transports import (
    MemoryTransport,
    Transport,
    TransportStatistics,
    memory_transport_pair,
)

from ._engine_helpers import (
    API_KEY,
    MemoryServer,
    PeerHandle,
    engine_with_events,
    host_events,
    of_type,
    sim_config,
    wire,
)


def _peer(handle: PeerHandle, event: dict[str, Any]) -> list[str]:
    if event["type"] == "session.update":
        k = handle.index
        return [wire(SessionCreated(f"sess_{k}")), wire(SessionUpdated(f"sess_{k}", None))]
    return []


async def _flood(handle: PeerHandle, count: int) -> None:
    for i in range(count):
        await handle.peer.send_text(wire(SessionUpdated(f"sess_{handle.index}", f"flood {i}")))
        await trio.testing.wait_all_tasks_blocked()


async def _never_connects(_nursery: trio.Nursery) -> Transport:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


# ---- host calls racing the end ----------------------------------------------------------


async def test_send_text_after_the_server_closed_with_a_full_host_queue_never_blocks() -> None:
    """Issue 11: with event_queue_size=1, a full host queue and a server close, send_text
    gave ok, BrokenResourceError, BrokenResourceError (the writer closed its channel).

    The reader cannot take the end while the host is not reading, so whether the
    conversation resumes is not known yet: calls are queued up to the outbox bound (for a
    next connection), then refused with ConversationNotRunning; a host that only sends
    never blocks, and never sees a trio error."""
    config = EngineConfig(api_key=API_KEY, event_queue_size=1)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            async with open_engine(config, transport_factory=server) as engine:
                await engine.start()
                await _flood(server.peers[0], 5)
                await server.peers[0].peer.close(1000)
                outcomes: list[str] = []
                for _ in range(OUTBOUND_FRAMES):
                    try:
                        await engine.send_text("hi")
                        outcomes.append("ok")
                    except ConversationNotRunning:
                        outcomes.append("not running")
                    await trio.testing.wait_all_tasks_blocked()
                # One frame per text; the first text's frame, which the writer failed to
                # send, still counts in the bound.
                assert outcomes == ["ok"] * (OUTBOUND_FRAMES - 1) + ["not running"], outcomes
                async with host_events(engine) as events:
                    await events.until(of_type(ConversationClosed))
                with pytest.raises(ConversationNotRunning):
                    await engine.send_text("hi")
            nursery.cancel_scope.cancel()


async def test_host_calls_racing_the_server_close_raise_only_not_running() -> None:
    """Issue 12 item 4: send_text racing the server's close raised a bare
    trio.BrokenResourceError in 38 of 100 rounds."""
    outcomes = {"ok": 0, "not running": 0}
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            async with (
                open_engine(EngineConfig(api_key=API_KEY), transport_factory=server) as engine,
                host_events(engine) as events,
            ):
                for round_ in range(100):
                    await engine.start()
                    peer = server.peers[round_].peer
                    async with trio.open_nursery() as race:
                        race.start_soon(peer.close, 1000)
                        for _ in range(round_ % 4):
                            await trio.lowlevel.checkpoint()
                        for _ in range(3):
                            try:
                                await engine.send_text("hi")
                                outcomes["ok"] += 1
                            except ConversationNotRunning:
                                outcomes["not running"] += 1
                    await events.until(of_type(ConversationClosed))
            nursery.cancel_scope.cancel()
    assert outcomes["not running"] > 0


class _StallingTransport(MemoryTransport):
    """A memory transport whose socket stops accepting writes after the handshake."""

    stalled = False

    async def send_text(self, text: str) -> None:
        if self.stalled:
            await trio.sleep_forever()
        await super().send_text(text)
        self.stalled = True


async def test_send_text_blocked_on_a_stalled_socket_ends_when_the_conversation_ends() -> None:
    """Issue 12 item 4: a send_text blocked on a stalled socket waited until the keepalive
    ended the conversation and then raised trio.BrokenResourceError."""
    pairs: list[Any] = []

    async def factory(_nursery: trio.Nursery) -> Transport:
        client, peer = memory_transport_pair()
        stalling = _StallingTransport.__new__(_StallingTransport)
        stalling.__dict__.update(client.__dict__)
        peer._client = stalling
        pairs.append(peer)
        return stalling

    # Reconnection off: the drop ends the conversation (with it on, the call waits for the
    # new session: test_resume_host_calls).
    config = EngineConfig(api_key=API_KEY, reconnect=ReconnectPolicy.disabled())
    with trio.fail_after(10):
        async with open_engine(config, transport_factory=factory) as engine:
            await engine.start()
            blocked = trio.Event()
            result: list[BaseException] = []

            async def sender() -> None:
                try:
                    while True:  # fill the outbox until a call has to wait
                        await engine.send_text("hi", respond=False)
                except BaseException as exc:
                    result.append(exc)
                    blocked.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender)
                await trio.testing.wait_all_tasks_blocked()
                assert not blocked.is_set()
                stats = engine.statistics()
                assert stats.queue_depths["outbound"] >= 64
                await pairs[0].drop()
                with trio.fail_after(2):
                    await blocked.wait()
            assert len(result) == 1, result
            assert isinstance(result[0], ConversationNotRunning), result


async def test_a_stalled_writer_never_stops_the_reader_and_a_huge_backlog_ends_the_call() -> None:
    """Reading never waits on writing: with the socket accepting no writes, the reader goes
    on delivering events while control replies queue; past the documented backlog the
    conversation ends with an error instead of dropping a structural reply."""
    pairs: list[Any] = []

    async def factory(_nursery: trio.Nursery) -> Transport:
        client, peer = memory_transport_pair()
        stalling = _StallingTransport.__new__(_StallingTransport)
        stalling.__dict__.update(client.__dict__)
        peer._client = stalling
        pairs.append(peer)
        return stalling

    total = OUTBOUND_FRAMES + CONTROL_BACKLOG + 10
    with trio.fail_after(20):
        async with (
            open_engine(EngineConfig(api_key=API_KEY), transport_factory=factory) as engine,
            host_events(engine) as events,
        ):
            await engine.start()
            for i in range(total):
                pairs[0].send_text_nowait(wire(NoopRequested(f"call_{i}", f"item_{i}")))
                if i % 50 == 0:
                    await trio.testing.wait_all_tasks_blocked()
            taken = await events.until(of_type(ConversationClosed))
    noops = [e for e in taken if isinstance(e, NoopRequested)]
    assert len(noops) > OUTBOUND_FRAMES  # the reader kept going while nothing was written
    closed = taken[-1]
    assert closed.reason == "error"
    assert closed.error == "the connection stopped accepting writes"


# ---- cancellation and shutdown around start() ------------------------------------------


async def test_a_timeout_around_start_propagates_the_cancellation() -> None:
    """Issue 12 item 1: a timeout around start() became ConversationStartError."""
    async with open_engine(
        EngineConfig(api_key=API_KEY, connect_timeout=5), transport_factory=_never_connects
    ) as engine:
        with trio.move_on_after(0.05) as scope:
            await engine.start()
        assert scope.cancelled_caught
        assert not engine.statistics().running


async def test_a_cancelled_nursery_around_start_sees_only_its_cancellation() -> None:
    async with open_engine(
        EngineConfig(api_key=API_KEY, connect_timeout=5), transport_factory=_never_connects
    ) as engine:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(engine.start)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        assert nursery.cancel_scope.cancelled_caught


async def test_a_cancelled_start_never_leaves_conversation_started_in_the_stream() -> None:
    """Issue 12 item 2: a start() cancelled while the host queue was full left its
    ConversationStarted behind, never followed by a ConversationClosed. The cancellation is
    swept over every scheduler checkpoint of start()."""
    config = EngineConfig(api_key=API_KEY, event_queue_size=1)
    returned: list[ConversationStarted] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            async with open_engine(config, transport_factory=server) as engine:
                await engine.start()
                for checkpoints in range(16):
                    await _flood(server.peers[-1], 3)  # the host queue is full

                    async def attempt() -> None:
                        returned.append(await engine.start())

                    async with trio.open_nursery() as starting:
                        starting.start_soon(attempt)
                        for _ in range(checkpoints):
                            await trio.lowlevel.checkpoint()
                        starting.cancel_scope.cancel()
                    if not engine.statistics().running:
                        # The cancelled start replaced the running one: start another.
                        returned.append(await engine.start())
                await engine.close()
                async with host_events(engine) as events:
                    await events.until(of_type(ConversationClosed))
                    await events.nothing_for(0.05)
            nursery.cancel_scope.cancel()
    starts = [e for e in events.log if isinstance(e, ConversationStarted)]
    assert set(starts) <= set(returned), "a Started that no start() returned"


async def test_leaving_open_engine_during_a_start_is_prompt_and_ends_it_with_engine_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 12 item 3: leaving open_engine waited for the connect timeout (7.6 s) and could
    log an ERROR traceback."""
    caplog.set_level(logging.WARNING)
    outcome: list[BaseException] = []

    async def starter(engine: Any) -> None:
        try:
            await engine.start()
        except BaseException as exc:
            outcome.append(exc)
            if isinstance(exc, trio.Cancelled):
                raise

    config = EngineConfig(api_key=API_KEY, connect_timeout=10)
    async with trio.open_nursery() as outer:
        began = time.monotonic()
        async with open_engine(config, transport_factory=_never_connects) as engine:
            outer.start_soon(starter, engine)
            await trio.testing.wait_all_tasks_blocked()
            began = time.monotonic()
        with trio.fail_after(2):
            while not outcome:
                await trio.testing.wait_all_tasks_blocked()
                await trio.lowlevel.checkpoint()
        elapsed = time.monotonic() - began
    assert elapsed < 1.0, elapsed
    assert isinstance(outcome[0], EngineClosed | trio.Cancelled), outcome
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# ---- close codes ------------------------------------------------------------------------


async def test_graceful_server_close_over_websocket_reports_an_int_code_and_no_error() -> None:
    """Issue 11: ConversationClosed.code was a wsproto CloseReason, and error was set for a
    clean close. One rule: code a plain int; error only for reason 'error'."""
    scenario = Scenario(steps=(ScenarioStep(expect="session.update", close_code=1000),))
    async with open_simulator() as sim:
        sim.add_scenario(scenario)
        with trio.fail_after(10):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                await engine.start()
                taken = await events.until(of_type(ConversationClosed))
    closed = taken[-1]
    assert closed.reason == "transport_closed"
    assert type(closed.code) is int
    assert closed.code == 1000
    assert closed.error is None


async def test_peer_close_reason_is_not_an_error_text_but_app_codes_are_errors() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            async with (
                open_engine(
                    EngineConfig(api_key=API_KEY, reconnect=ReconnectPolicy.disabled()),
                    transport_factory=server,
                ) as engine,
                host_events(engine) as events,
            ):
                await engine.start()
                await server.peers[0].peer.close(1001, "going away")
                first = (await events.until(of_type(ConversationClosed)))[-1]
                await engine.start()
                await server.peers[1].peer.close(4002, f"bad key {API_KEY}\nforged")
                second = (await events.until(of_type(ConversationClosed)))[-1]
            nursery.cancel_scope.cancel()
    assert first == ConversationClosed("transport_closed", 1001, None)
    assert second.reason == "error"
    assert second.code == 4002
    assert second.error is not None
    assert API_KEY not in second.error
    assert "\n" not in second.error
    errors = [e for e in events.log if isinstance(e, Error)]
    assert errors
    assert all(API_KEY not in e.message and "\n" not in e.message for e in errors)


async def test_garbage_frame_with_the_key_is_escaped_and_redacted_in_log_and_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 12 items 12 and 13: raw server bytes (newlines, ANSI escapes, the echoed key)
    reached WARNING records and ParseFailure verbatim."""
    caplog.set_level(logging.WARNING)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            async with (
                open_engine(EngineConfig(api_key=API_KEY), transport_factory=server) as engine,
                host_events(engine) as events,
            ):
                await engine.start()
                await server.peers[0].peer.send_text(f"not json\r\nINFO forged\x1b[2J {API_KEY}")
                failure = (await events.until(of_type(ParseFailure)))[-1]
            nursery.cancel_scope.cancel()
    assert API_KEY not in repr(failure)
    records = [r.getMessage() for r in caplog.records if "unparseable" in r.getMessage()]
    assert records
    for message in records:
        assert API_KEY not in message
        assert "\n" not in message
        assert "\x1b" not in message


# ---- host audio ------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "channels"), [(0, 1), (-1, 1), (24000, 0), (48000, -1)])
async def test_bad_host_audio_is_refused_and_the_conversation_goes_on(
    rate: int, channels: int
) -> None:
    """Issue 12 item 8: one frame with rate or channels <= 0 ended the conversation with
    'internal error: ExceptionGroup'."""
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            async with open_engine(
                EngineConfig(api_key=API_KEY), transport_factory=server
            ) as engine:
                await engine.start()
                with pytest.raises(InvalidAudioFrame) as info:
                    engine.send_audio(AudioFrame(b"\x00\x00" * 10, rate, channels))
                assert isinstance(info.value, ValueError)
                assert engine.send_audio(AudioFrame(b"\x00\x00" * 480, 24000, 1))
                await engine.send_text("still here", respond=False)
                await trio.testing.wait_all_tasks_blocked()
                assert engine.statistics().running
                assert engine.statistics().audio_frames_in == 1
            nursery.cancel_scope.cancel()


def _ramp(n_bytes: int) -> bytes:
    return bytes(i % 251 for i in range(n_bytes))


async def test_odd_length_pcm16_keeps_sample_alignment_over_websocket() -> None:
    """Issue 12 item 9: odd-length frames went out unchanged (half a sample on the wire)."""
    pcm = _ramp(961 * 5)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            async with open_engine(
                EngineConfig(api_key=API_KEY), transport_factory=server
            ) as engine:
                await engine.start()
                for i in range(5):
                    engine.send_audio(AudioFrame(pcm[i * 961 : (i + 1) * 961], 24000, 1))
                await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    appends = [
        base64.b64decode(json.loads(t)["audio"])
        for t in server.peers[0].received
        if json.loads(t)["type"] == "input_audio_buffer.append"
    ]
    assert all(len(a) % 2 == 0 for a in appends)
    assert b"".join(appends) == pcm[: len(pcm) - len(pcm) % 2]


async def test_odd_length_pcm16_keeps_sample_alignment_on_an_audio_native_transport() -> None:
    """Issue 12 item 9 (WebRTC): one 961-byte frame shifted every later sample by a byte."""
    pcm = _ramp(961 * 5)
    peers: list[Any] = []

    async def factory(_nursery: trio.Nursery) -> Transport:
        client, peer = memory_transport_pair(audio_native=True)
        peers.append(peer)
        return client

    received = bytearray()
    with trio.fail_after(10):
        async with open_engine(EngineConfig(api_key=API_KEY), transport_factory=factory) as engine:
            await engine.start()
            for i in range(5):
                engine.send_audio(AudioFrame(pcm[i * 961 : (i + 1) * 961], 24000, 1))
            await trio.testing.wait_all_tasks_blocked()
            for item in await peers[0].receive_batch():
                if isinstance(item, AudioFrame):
                    assert len(item.pcm) % 2 == 0
                    received.extend(item.pcm)
    assert bytes(received) == pcm[: len(pcm) - len(pcm) % 2]


async def test_host_frames_on_an_audio_native_transport_keep_their_order_on_either_path() -> None:
    """A wire-format frame goes to an audio-native transport at once (``offer_audio``, no
    task switch) when the audio mux is idle; a frame the mux must handle (an odd tail
    carried, another rate to resample) keeps its place, and nothing overtakes it."""
    transports: list[MemoryTransport] = []
    peers: list[Any] = []

    async def factory(_nursery: trio.Nursery) -> Transport:
        client, peer = memory_transport_pair(audio_native=True)
        transports.append(client)
        peers.append(peer)
        return client

    a, b, c, d = _ramp(960), _ramp(961)[::-1], bytes(960), _ramp(960)[::-1]
    h, i = b"\x01\x02" * 480, b"\x03\x04" * 480
    received = bytearray()
    with trio.fail_after(10):
        async with open_engine(EngineConfig(api_key=API_KEY), transport_factory=factory) as engine:
            await engine.start()
            await trio.testing.wait_all_tasks_blocked()  # the mux waits for audio
            sent = transports[0].statistics
            engine.send_audio(AudioFrame(a, 24000, 1))  # the mux has seen no frame yet
            await trio.testing.wait_all_tasks_blocked()
            engine.send_audio(AudioFrame(a, 24000, 1))
            assert sent().audio_frames_out == 2  # handed over within the call
            engine.send_audio(AudioFrame(b, 24000, 1))  # odd: half a sample is carried
            engine.send_audio(AudioFrame(c, 24000, 1))  # queued behind b
            await trio.testing.wait_all_tasks_blocked()
            engine.send_audio(AudioFrame(d, 24000, 1))  # the carried byte goes first
            engine.send_audio(AudioFrame(_ramp(640), 16000, 1))  # 20 ms to resample
            await trio.testing.wait_all_tasks_blocked()  # the resampler holds its tail
            engine.send_audio(AudioFrame(h, 24000, 1))  # the tail goes first
            await trio.testing.wait_all_tasks_blocked()
            engine.send_audio(AudioFrame(i, 24000, 1))
            await trio.testing.wait_all_tasks_blocked()
            for item in await peers[0].receive_batch():
                if isinstance(item, AudioFrame):
                    received.extend(item.pcm)
    carried = b + c + d
    head = a + a + carried[: len(carried) - 1]
    assert bytes(received[: len(head)]) == head
    assert bytes(received[-len(h) - len(i) :]) == h + i
    assert len(received) == len(head) + 960 + len(h) + len(i)  # all of the 16 kHz frame


# ---- statistics --------------------------------------------------------------------------


async def test_transport_drops_are_visible_in_engine_statistics() -> None:
    """Issue 12 items 10 and 14: binary-frame drops and WebRTC outbound audio drops were only
    in the transport's statistics."""

    class Counting(MemoryTransport):
        def statistics(self) -> TransportStatistics:
            base = super().statistics()
            return TransportStatistics(kind=base.kind, binary_frames_dropped=3, audio_out_dropped=5)

    async def factory(_nursery: trio.Nursery) -> Transport:
        client, _peer = memory_transport_pair()
        counting = Counting.__new__(Counting)
        counting.__dict__.update(client.__dict__)
        _peer._client = counting
        return counting

    async with open_engine(EngineConfig(api_key=API_KEY), transport_factory=factory) as engine:
        await engine.start()
        stats = engine.statistics()
    assert stats.binary_frames_dropped == 3
    assert stats.audio_frames_dropped == 5


async def test_a_connect_that_succeeds_during_shutdown_ends_the_start_with_engine_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 12 item 3, second half: a connect completing while open_engine exits made
    start() raise trio.ClosedResourceError and log an ERROR traceback."""
    caplog.set_level(logging.WARNING)
    outcome: list[BaseException] = []
    finished = trio.Event()
    peers: list[Any] = []
    connected = trio.Event()

    async def slow_uncancellable_connect(_nursery: trio.Nursery) -> Transport:
        with trio.CancelScope(shield=True):
            await trio.sleep(0.1)
        client, peer = memory_transport_pair()
        peers.append(peer)
        connected.set()
        return client

    async def starter(engine: Any) -> None:
        try:
            await engine.start()
        except BaseException as exc:
            outcome.append(exc)
            if isinstance(exc, trio.Cancelled):
                raise
        finally:
            finished.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as outer:
            async with open_engine(
                EngineConfig(api_key=API_KEY), transport_factory=slow_uncancellable_connect
            ) as engine:
                outer.start_soon(starter, engine)
                await trio.testing.wait_all_tasks_blocked()
            await finished.wait()
            with trio.fail_after(2):
                await connected.wait()
                batch = await peers[0].receive_batch()
                while not any(type(item).__name__ == "TransportEnded" for item in batch):
                    batch = await peers[0].receive_batch()
    assert isinstance(outcome[0], EngineClosed | trio.Cancelled), outcome
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_host_audio_at_another_rate_reaches_an_audio_native_transport_in_steady_frames() -> (
    None
):
    """Regression (review): the host's 48 kHz frames were resampled by soxr's block engine,
    which hands the track nothing or ~35 ms at a time, so a real-time track ran a packet
    short (silence inside the user's speech). On an audio-native transport every 20 ms in
    now gives 20 ms out once the filter has filled."""
    peers: list[Any] = []

    async def factory(_nursery: trio.Nursery) -> Transport:
        client, peer = memory_transport_pair(audio_native=True)
        peers.append(peer)
        return client

    sizes: list[int] = []

    async def collect() -> None:
        while True:
            for item in await peers[0].receive_batch():
                if isinstance(item, AudioFrame):
                    sizes.append(len(item.pcm) // 2)

    with trio.fail_after(10):
        async with open_engine(EngineConfig(api_key=API_KEY), transport_factory=factory) as engine:
            await engine.start()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect)
                for _ in range(30):
                    engine.send_audio(AudioFrame(_ramp(1920), 48000, 1))  # 20 ms at 48 kHz
                    await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
    assert sizes[-20:] == [480] * 20, sizes
