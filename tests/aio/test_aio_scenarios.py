"""The engine's host-level scenarios, written once and run under the trio host and every
asyncio host (``duplex.aio``: guest mode, thread mode, uvloop when installed): each test runs
its scenario on all of them and asserts the same event-type sequence (and the scenario's own
checks on each)."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from duplex.aio import AUDIO_AHEAD_MS
from duplex.engine import (
    AudioFrame,
    AudioOut,
    ConversationClosed,
    ConversationItemTruncated,
    ConversationNotRunning,
    ConversationStarted,
    ConversationStartError,
    EngineClosed,
    Error,
    HandoffRequested,
    InputTranscriptDone,
    InvalidAudioFrame,
    InvalidRequest,
    OutputTranscriptDone,
    ResponseDone,
    SessionUpdated,
)
from duplex.simulator import FaultConfig, SimulatorConfig, tone

from ._hosts import (
    ALL_HOSTS,
    API_KEY,
    Host,
    SimulatorThread,
    run_on,
    simulator_thread,
    until,
    visible_types,
)

Scenario = Callable[[Host], Awaitable[list[Any]]]
TIMEOUT_S = 20


def same_on_every_host(make: Callable[[SimulatorThread], Scenario], **sim: Any) -> list[Any]:
    """Run the scenario on every host against one simulator; assert equal event-type
    sequences; return the trio host's events."""
    with simulator_thread(SimulatorConfig(speech_transcript="ok", **sim)) as server:
        logs = {host.name: run_on(host, make(server)) for host in ALL_HOSTS}
    reference = visible_types(logs["trio"])
    for name, log in logs.items():
        assert visible_types(log) == reference, name
    return logs["trio"]


def pcm_frames(pcm: bytes, ms: int = 20, rate: int = 24000) -> list[AudioFrame]:
    step = rate * 2 * ms // 1000
    return [AudioFrame(pcm[i : i + step], rate, 1) for i in range(0, len(pcm), step)]


def test_text_turn_same_events_on_trio_and_asyncio() -> None:
    def make(server: SimulatorThread) -> Scenario:
        async def scenario(host: Host) -> list[Any]:
            log: list[Any] = []
            async with host.open_engine(server.config()) as engine:
                events = engine.events()
                started = await host.within(TIMEOUT_S, engine.start(prompt="be brief"))
                assert isinstance(started, ConversationStarted)
                await host.within(TIMEOUT_S, until(events, log, SessionUpdated))
                await engine.send_text("hello")
                await host.within(TIMEOUT_S, until(events, log, ResponseDone))
                assert await engine.close() is True
                closed = await host.within(TIMEOUT_S, until(events, log, ConversationClosed))
                assert closed == ConversationClosed("requested")
                assert await engine.close() is False
            assert [e.text for e in log if isinstance(e, OutputTranscriptDone)] == [
                "You said: hello."
            ]
            return log

        return scenario

    log = same_on_every_host(make)
    assert isinstance(log[0], ConversationStarted)


def test_spoken_turn_same_events_on_trio_and_asyncio() -> None:
    speech = b"\x00\x00" * 4800 + tone(800, amplitude=0.3) + b"\x00\x00" * 16800

    def make(server: SimulatorThread) -> Scenario:
        async def scenario(host: Host) -> list[Any]:
            log: list[Any] = []
            async with host.open_engine(server.config()) as engine:
                events = engine.events()
                await host.within(TIMEOUT_S, engine.start())
                await host.within(TIMEOUT_S, until(events, log, SessionUpdated))
                for frame in pcm_frames(speech):
                    assert engine.send_audio(frame) is True
                    await host.sleep(0)
                done = await host.within(TIMEOUT_S, until(events, log, InputTranscriptDone))
                assert done.text == "ok"
                await host.within(TIMEOUT_S, until(events, log, ResponseDone))
                assert engine.statistics().audio_frames_in == len(pcm_frames(speech))
                await engine.close()
                await host.within(TIMEOUT_S, until(events, log, ConversationClosed))
            return log

        return scenario

    same_on_every_host(make)


def test_handoff_same_events_on_trio_and_asyncio() -> None:
    def make(server: SimulatorThread) -> Scenario:
        async def scenario(host: Host) -> list[Any]:
            log: list[Any] = []
            async with host.open_engine(server.config()) as engine:
                events = engine.events()
                await host.within(TIMEOUT_S, engine.start())
                await host.within(TIMEOUT_S, until(events, log, SessionUpdated))
                await engine.send_text("please delegate the build")
                handoff = await host.within(TIMEOUT_S, until(events, log, HandoffRequested))
                assert handoff.input_transcript == "please delegate the build"
                await host.within(TIMEOUT_S, until(events, log, ResponseDone))
                await engine.send_handoff_output(handoff.handoff_id, "built", final=True)
                await host.within(TIMEOUT_S, until(events, log, ResponseDone))
                await engine.close()
                await host.within(TIMEOUT_S, until(events, log, ConversationClosed))
            assert "built" in [e.text for e in log if isinstance(e, OutputTranscriptDone)]
            return log

        return scenario

    same_on_every_host(make)


def test_start_while_running_replaces_the_conversation_on_trio_and_asyncio() -> None:
    def make(server: SimulatorThread) -> Scenario:
        async def scenario(host: Host) -> list[Any]:
            log: list[Any] = []
            async with host.open_engine(server.config()) as engine:
                events = engine.events()
                first = await host.within(TIMEOUT_S, engine.start(prompt="one"))
                await engine.send_text("hello")  # its answer must never reach the host
                second = await host.within(TIMEOUT_S, engine.start(prompt="two"))
                assert first.session_id != second.session_id
                await host.within(TIMEOUT_S, until(events, log, SessionUpdated))
                await engine.close()
                await host.within(TIMEOUT_S, until(events, log, ConversationClosed))
            started = [e for e in log if isinstance(e, ConversationStarted)]
            assert started == [second]
            assert not any(isinstance(e, ResponseDone) for e in log)
            return log

        return scenario

    same_on_every_host(make)


def test_start_drops_the_replaced_conversations_unread_events_on_trio_and_asyncio() -> None:
    # The host is reading, then stops while the first reply streams: what it has not read
    # (on the asyncio hosts: already handed across to the loop's side) must not reach it
    # after the second start() returns.
    def make(server: SimulatorThread) -> Scenario:
        async def scenario(host: Host) -> list[Any]:
            log: list[Any] = []
            async with host.open_engine(server.config()) as engine:
                events = engine.events()
                first = await host.within(TIMEOUT_S, engine.start(prompt="one"))
                await host.within(TIMEOUT_S, until(events, log, SessionUpdated))
                await engine.send_text("hello")

                def unread() -> int:
                    depths = engine.statistics().queue_depths
                    return int(depths.get("host", 0)) + int(depths.get("aio_events", 0))

                async def reply_waiting() -> None:
                    while unread() < 5:
                        await host.sleep(0.005)

                await host.within(TIMEOUT_S, reply_waiting())
                second = await host.within(TIMEOUT_S, engine.start(prompt="two"))
                after: list[Any] = []
                await host.within(TIMEOUT_S, until(events, after, SessionUpdated))
                await engine.close()
                await host.within(TIMEOUT_S, until(events, after, ConversationClosed))
            assert first.session_id != second.session_id
            assert [e for e in after if isinstance(e, ConversationStarted)] == [second]
            assert isinstance(after[0], ConversationStarted), visible_types(after)
            return log + after

        return scenario

    same_on_every_host(make)


def test_a_refused_frame_or_playback_report_raises_to_the_caller_and_the_engine_goes_on() -> None:
    # Under duplex.aio these were checked on the trio side, inside a run_sync_soon callback:
    # the exception ended the loop's whole trio run (TrioInternalError), and send_audio had
    # already returned True.
    def make(server: SimulatorThread) -> Scenario:
        async def scenario(host: Host) -> list[Any]:
            log: list[Any] = []
            async with host.open_engine(server.config()) as engine:
                events = engine.events()
                await host.within(TIMEOUT_S, engine.start())
                await host.within(TIMEOUT_S, until(events, log, SessionUpdated))
                with pytest.raises(InvalidAudioFrame):
                    engine.send_audio(AudioFrame(bytes(960), 0, 1))
                with pytest.raises(InvalidAudioFrame):
                    engine.send_audio(AudioFrame(bytes(320), 8000, 1, "pcmu"))
                with pytest.raises(InvalidRequest):
                    engine.audio_played("item_x", None)
                with pytest.raises(InvalidRequest):
                    engine.audio_played("item_x", float("nan"))
                assert engine.send_audio(AudioFrame(bytes(960)))
                await engine.send_text("still here")
                await host.within(TIMEOUT_S, until(events, log, ResponseDone))
                await engine.close()
                await host.within(TIMEOUT_S, until(events, log, ConversationClosed))
            assert engine.statistics().audio_frames_dropped == 0
            return log

        return scenario

    same_on_every_host(make)


def test_close_emits_one_closed_and_ends_events_at_block_exit_on_trio_and_asyncio() -> None:
    def make(server: SimulatorThread) -> Scenario:
        async def scenario(host: Host) -> list[Any]:
            log: list[Any] = []
            async with host.open_engine(server.config()) as engine:
                events = engine.events()
                await host.within(TIMEOUT_S, engine.start())
                await host.within(TIMEOUT_S, until(events, log, SessionUpdated))
                assert await engine.close() is True
                await host.within(TIMEOUT_S, until(events, log, ConversationClosed))
                with pytest.raises(ConversationNotRunning):
                    await engine.send_text("nobody listens")
                with pytest.raises(ConversationNotRunning):
                    engine.send_audio(AudioFrame(b"\x00\x00" * 480, 24000, 1))
            # Leaving the block ends every iterator (nothing more arrives).
            rest = [e async for e in events]
            assert rest == []
            with pytest.raises(EngineClosed):
                await engine.send_text("after the block")
            return log + rest

        return scenario

    log = same_on_every_host(make)
    assert sum(isinstance(e, ConversationClosed) for e in log) == 1


def test_server_drop_ends_with_one_closed_error_on_trio_and_asyncio() -> None:
    def make(server: SimulatorThread) -> Scenario:
        async def scenario(host: Host) -> list[Any]:
            log: list[Any] = []
            async with host.open_engine(server.config()) as engine:
                events = engine.events()
                await host.within(TIMEOUT_S, engine.start())
                closed = await host.within(TIMEOUT_S, until(events, log, ConversationClosed))
                assert closed.reason == "error"
                assert await host.next_or_none(events, 0.2) is None
                with pytest.raises(ConversationNotRunning):
                    await engine.send_text("gone")
            return log

        return scenario

    same_on_every_host(make, faults=FaultConfig(drop_after_events=2))


def test_failed_start_is_caught_by_except_conversation_start_error_on_every_host() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def make(server: SimulatorThread) -> Scenario:
        async def scenario(host: Host) -> list[Any]:
            log: list[Any] = []
            refused = server.config(base_url=f"http://127.0.0.1:{port}/v1")
            async with host.open_engine(refused) as engine:
                try:
                    await host.within(TIMEOUT_S, engine.start())
                except ConversationStartError as exc:  # not an exception group
                    log.append(exc)
                assert await host.next_or_none(engine.events(), 0.1) is None
            if host.kind == "asyncio":
                # Raised out of the block, it stays itself too. (The trio engine's block
                # still wraps it in an ExceptionGroup: its nursery re-raises; engine/ issue.)
                try:
                    async with host.open_engine(server.config(api_key=" ")) as engine:
                        await engine.start()
                except ConversationStartError as exc:
                    log.append(exc)
                assert [type(e) for e in log] == [ConversationStartError] * 2
            return []

        return scenario

    same_on_every_host(make, api_key=API_KEY)


def test_cancelled_events_iteration_loses_nothing_on_trio_and_asyncio() -> None:
    def make(server: SimulatorThread) -> Scenario:
        async def scenario(host: Host) -> list[Any]:
            log: list[Any] = []
            async with host.open_engine(server.config()) as engine:
                events = engine.events()
                await host.within(TIMEOUT_S, engine.start())
                await host.within(TIMEOUT_S, until(events, log, SessionUpdated))
                # Nothing comes: the waiting __anext__ is cancelled (a timeout around it).
                assert await host.next_or_none(events, 0.1) is None
                await engine.send_text("hello")
                # A new iterator continues where the cancelled one stopped.
                await host.within(TIMEOUT_S, until(engine.events(), log, ResponseDone))
                await engine.close()
                await host.within(TIMEOUT_S, until(events, log, ConversationClosed))
            return log

        return scenario

    log = same_on_every_host(make)
    assert sum(isinstance(e, ResponseDone) for e in log) == 1


def test_text_turn_over_webrtc_same_events_on_trio_and_asyncio() -> None:
    """WebRTC under duplex.aio: aiortc keeps its own asyncio loop on the transport's bridge
    thread whatever the host's loop is (see docs/aio.md)."""

    def make(server: SimulatorThread) -> Scenario:
        async def scenario(host: Host) -> list[Any]:
            log: list[Any] = []
            async with host.open_engine(server.config(transport="webrtc")) as engine:
                events = engine.events()
                await host.within(TIMEOUT_S, engine.start())
                await host.within(TIMEOUT_S, until(events, log, SessionUpdated))
                await engine.send_text("hello")
                await host.within(TIMEOUT_S, until(events, log, ResponseDone))
                await engine.close()
                await host.within(TIMEOUT_S, until(events, log, ConversationClosed))
            assert [e.text for e in log if isinstance(e, OutputTranscriptDone)] == [
                "You said: hello."
            ]
            return log

        return scenario

    same_on_every_host(make)


def test_barge_in_cuts_within_what_the_host_took_on_trio_and_asyncio() -> None:
    """Real-time model audio taken as it comes, then the user talks: one truncate, accepted by
    the strict simulator, at most what the host took (plus, under duplex.aio, the pump's
    ``AUDIO_AHEAD_MS``). Compared on each host's own figures: how many deltas interleave
    with the audio depends on timing, so the sequences are not compared here."""
    speech = tone(600, amplitude=0.3) + b"\x00\x00" * 7200

    def make(server: SimulatorThread) -> Scenario:
        async def scenario(host: Host) -> list[Any]:
            log: list[Any] = []
            async with host.open_engine(server.config()) as engine:
                events = engine.events()
                await host.within(TIMEOUT_S, engine.start())
                await engine.send_text("tell me a rather long story about the sea please")
                item_id = (await host.within(TIMEOUT_S, until(events, log, AudioOut))).item_id
                while audio_ms(log) < 400:
                    await host.within(TIMEOUT_S, until(events, log, AudioOut))
                for frame in pcm_frames(speech):
                    engine.send_audio(frame)
                cut = await host.within(TIMEOUT_S, until(events, log, ConversationItemTruncated))
                slack = 0.0 if host.kind == "trio" else AUDIO_AHEAD_MS
                assert cut.item_id == item_id
                assert 0 < cut.audio_end_ms <= audio_ms(log) + slack
                assert not [e for e in log if isinstance(e, Error)]
                assert engine.statistics().truncations == 1
            return []

        return scenario

    same_on_every_host(make, audio_speedup=1.0, audio_chunk_ms=40)


def audio_ms(log: list[Any]) -> float:
    return float(sum(e.frame.duration_ms for e in log if isinstance(e, AudioOut)))
