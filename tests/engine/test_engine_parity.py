"""Transport parity: one scripted conversation over WebSocket, WebRTC data channel and WebRTC
sideband gives the host the same event types, the same transcripts and the same amount of
model audio (SPEC: "the session/event interface the host sees is the same on every
transport").

Audio is compared by total *voiced* duration per turn, not bytes: WebRTC audio is Opus-coded
(lossy) and paced in real time, and its media track keeps delivering digital silence between
responses (see ``_engine_helpers.voiced``). Tolerance: ±(80 ms + 5 %) of the WebSocket duration,
i.e. four 20 ms Opus frames of codec/jitter-buffer slack at the edges plus a little for
pacing.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from duplex.engine import (
    AudioOut,
    ConversationClosed,
    Engine,
    HandoffRequested,
    InputTranscriptDone,
    OutputTranscriptDone,
    RateLimitsUpdated,
    SessionUpdated,
    UnknownEvent,
)
from duplex.simulator import Simulator, SimulatorConfig, open_simulator

from ._engine_helpers import (
    HostEvents,
    engine_with_events,
    of_type,
    pcm_frames,
    silence,
    sim_config,
    sine,
    visible_types,
    voiced,
    voiced_ms,
)

QUIET_S = 0.6  # no voiced model audio for this long: the turn's audio has all arrived


@attrs.define
class Run:
    log: list[Any] = attrs.field(factory=list)
    turn_audio_ms: list[float] = attrs.field(factory=list)


async def _drain_audio(events: HostEvents, start: int) -> None:
    """Read the turn's remaining (real-time paced) audio: wait for its first voiced frame
    (the WebRTC media path may still be warming up on the first turn), then until quiet."""
    while not any(voiced(e) for e in events.log[start:]):
        event = await events.next()
        assert isinstance(event, AudioOut | UnknownEvent), event
    deadline = trio.current_time() + QUIET_S
    while True:
        with trio.move_on_at(deadline) as quiet:
            event = await events.next()
        if quiet.cancelled_caught:
            return
        assert isinstance(event, AudioOut | UnknownEvent), event
        if voiced(event):
            deadline = trio.current_time() + QUIET_S


async def _turn(events: HostEvents, run: Run, start: int) -> None:
    await events.until(of_type(RateLimitsUpdated))
    await _drain_audio(events, start)
    run.turn_audio_ms.append(voiced_ms(events.log[start:]))


async def _conversation(engine: Engine, events: HostEvents, run: Run) -> None:
    await engine.start(prompt="parity")
    await events.until(of_type(SessionUpdated))

    mark = len(events.log)
    await engine.send_text("hi")
    await _turn(events, run, mark)

    mark = len(events.log)
    for frame in pcm_frames(silence(200) + sine(800, amplitude=9000) + silence(700)):
        engine.send_audio(frame)
        await trio.sleep(0.02)  # a live microphone; WebRTC's outbound track is real time
    await _turn(events, run, mark)

    mark = len(events.log)
    await engine.send_text("please delegate it")
    handoff = (await events.until(of_type(HandoffRequested)))[-1]
    await events.until(of_type(RateLimitsUpdated))
    await engine.send_handoff_output(handoff.handoff_id, "done")
    await _turn(events, run, mark)

    assert await engine.close()
    await events.until(of_type(ConversationClosed))
    run.log = list(events.log)


async def _run(sim: Simulator, transport: str, control: str, run: Run) -> None:
    config = sim_config(sim, transport=transport, webrtc_control=control)
    async with engine_with_events(config) as (engine, events):
        await _conversation(engine, events, run)


def _texts(run: Run, kind: type[Any]) -> list[str]:
    return [e.text for e in run.log if isinstance(e, kind)]


async def test_same_events_transcripts_and_audio_on_every_transport() -> None:
    runs = {name: Run() for name in ("websocket", "datachannel", "sideband")}
    async with open_simulator(SimulatorConfig(speech_transcript="ok")) as sim:
        with trio.fail_after(40):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_run, sim, "websocket", "datachannel", runs["websocket"])
                nursery.start_soon(_run, sim, "webrtc", "datachannel", runs["datachannel"])
                nursery.start_soon(_run, sim, "webrtc", "sideband", runs["sideband"])

    reference = runs["websocket"]
    assert _texts(reference, OutputTranscriptDone) == [
        "You said: hi.",
        "You said: ok.",
        "done",
    ]
    assert _texts(reference, InputTranscriptDone) == ["ok"]
    for name, run in runs.items():
        assert visible_types(run.log) == visible_types(reference.log), name
        assert _texts(run, OutputTranscriptDone) == _texts(reference, OutputTranscriptDone)
        assert _texts(run, InputTranscriptDone) == _texts(reference, InputTranscriptDone)
        assert len(run.turn_audio_ms) == 3
        for got, want in zip(run.turn_audio_ms, reference.turn_audio_ms, strict=True):
            assert want > 0
            assert abs(got - want) <= 80 + 0.05 * want, (name, run.turn_audio_ms)
        assert all(
            (e.frame.sample_rate, e.frame.channels) == (24000, 1)
            for e in run.log
            if isinstance(e, AudioOut)
        )
