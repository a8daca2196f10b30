"""``duplex demo``: the main job (SPEC §6).

Starts the embedded simulator and runs one scripted conversation over WebSocket and over
WebRTC, through the very same host code — only ``EngineConfig.transport`` differs:

1. a text turn ("what can you do?") answered by the model;
2. a function tool: the host declares ``get_time`` (``EngineConfig.tools``), types "call
   get_time", answers the model's ``ToolCallRequested`` with ``send_tool_output`` and the
   model speaks the result;
3. a spoken turn: generated speech-like audio is streamed as 20 ms microphone frames; the
   simulator's VAD and transcription turn it into a user turn whose transcript asks to
   "delegate" work, so the model hands off;
4. the demo answers the handoff with a final output, and the model speaks the result.

It prints the host-visible events (transcript deltas and audio are summarised, one line per
turn), writes each transport's model audio to ``duplex-demo-<transport>.wav`` and ends with a
summary table. Exit code 0 only if every transport completed the whole script.
"""

from __future__ import annotations

import functools
import time
import wave
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import trio

from duplex.engine import (
    AudioFrame,
    AudioOut,
    ConversationClosed,
    ConversationStarted,
    EngineConfig,
    Error,
    FunctionTool,
    HandoffRequested,
    InputTranscriptDone,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    ResponseCreated,
    ResponseDone,
    SessionUpdated,
    ToolCallRequested,
    open_engine,
)
from duplex.simulator import SimulatorConfig, open_simulator, synthesize, tone

from ._interrupt import run_cancelling_on_ctrl_c

__all__ = ["run_demo"]

PROMPT = "You are a concise voice assistant. Delegate real work to the background agent."
SPOKEN = "please delegate a summary of this call"
TOOL = FunctionTool(
    "get_time",
    "The current local time.",
    {"type": "object", "properties": {}},
)
TOOL_TEXT = f"call {TOOL.name}"
TOOL_RESULT = "12:00"
FRAME_MS = 20
SCRIPT_TIMEOUT_S = 60.0
# After the last response, WebRTC audio still plays out in real time; stop once it has been
# silent this long.
AUDIO_QUIET_S = 1.0


@attrs.define
class TransportRun:
    """What one transport's run produced."""

    transport: str
    ok: bool = False
    events: Counter[str] = attrs.field(factory=Counter)
    transcripts: list[str] = attrs.field(factory=list)
    audio: bytearray = attrs.field(factory=bytearray)
    handoff_round_trip_ms: float | None = None
    seconds: float = 0.0
    error: str | None = None
    wav: Path | None = None

    @property
    def audio_ms(self) -> float:
        return len(self.audio) / 48.0


async def _stream_speech(engine: Any) -> None:
    """Microphone stand-in: speech-like audio then silence, in real-time 20 ms frames."""
    speech = synthesize(SPOKEN) + tone(800, amplitude=0.0)
    step = 24 * FRAME_MS * 2
    for offset in range(0, len(speech), step):
        engine.send_audio(AudioFrame(speech[offset : offset + step]))
        await trio.sleep(FRAME_MS / 1000)


async def _run_transport(base_url: str, transport: str, out_dir: Path) -> TransportRun:
    run = TransportRun(transport)
    config = EngineConfig(
        base_url=base_url,
        api_key="sk-demo",
        transport="webrtc" if transport == "webrtc" else "websocket",
        tools=(TOOL,),
    )
    began = time.perf_counter()
    print(f"\n=== {transport} ===")
    try:
        with trio.fail_after(SCRIPT_TIMEOUT_S):
            async with open_engine(config) as engine:
                await engine.start(prompt=PROMPT)
                async with trio.open_nursery() as nursery:
                    await _drive(engine, nursery, run)
                    nursery.cancel_scope.cancel()  # the microphone stops before we hang up
                await engine.close()
                async for event in engine.events():
                    _show(event, run)
                    if isinstance(event, ConversationClosed):
                        break
    except Exception as exc:  # the demo reports any failure instead of a traceback
        run.error = f"{type(exc).__name__}: {exc}"
        print(f"  !! {run.error}")
    run.seconds = time.perf_counter() - began
    run.wav = out_dir / f"duplex-demo-{transport}.wav"
    with wave.open(str(run.wav), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(24_000)
        wav.writeframes(bytes(run.audio))
    return run


async def _drive(engine: Any, nursery: trio.Nursery, run: TransportRun) -> None:
    """React to events until the script is done (the follow-up after the handoff)."""
    phase = "handshake"
    handoff_sent_at = 0.0
    async for event in engine.events():
        _show(event, run)
        if isinstance(event, Error) and event.fatal:
            raise RuntimeError(event.message)
        if isinstance(event, ConversationClosed):
            raise RuntimeError(f"conversation closed early: {event.reason}")
        if phase == "handshake" and isinstance(event, SessionUpdated):
            phase = "text"
            print("  >> host types: what can you do?")
            await engine.send_text("what can you do?")
        elif phase == "text" and isinstance(event, ResponseDone):
            phase = "tool"
            print(f"  >> host types: {TOOL_TEXT}")
            await engine.send_text(TOOL_TEXT)
        elif phase == "tool" and isinstance(event, ToolCallRequested):
            phase = "tool-answered"
            print(f"  >> host answers tool call {event.call_id} ({event.name}): {TOOL_RESULT}")
            await engine.send_tool_output(event.call_id, TOOL_RESULT)
        elif phase == "tool-answered" and isinstance(event, ResponseCreated):
            phase = "tool-follow-up"  # the response that speaks the tool's result
        elif phase == "tool-follow-up" and isinstance(event, ResponseDone):
            phase = "speech"
            print(f"  >> host speaks: {SPOKEN!r} (generated audio, 20 ms frames)")
            nursery.start_soon(_stream_speech, engine)
        elif phase == "speech" and isinstance(event, HandoffRequested):
            phase = "handoff"
            handoff_sent_at = time.perf_counter()
            print(f"  >> host answers handoff {event.handoff_id}")
            await engine.send_handoff_output(
                event.handoff_id, "Summary: the demo ran on both transports.", final=True
            )
        elif phase == "handoff" and isinstance(event, ResponseCreated):
            phase = "follow-up"  # the response that speaks the handoff's result
        elif phase == "follow-up" and isinstance(event, ResponseDone):
            run.handoff_round_trip_ms = (time.perf_counter() - handoff_sent_at) * 1000
            phase = "done"
            break
    # WebRTC audio arrives in real time over RTP, so the reply is still playing out when the
    # last event arrives: keep reading until the audio has been silent for a while.
    with trio.move_on_after(AUDIO_QUIET_S) as quiet:
        async for event in engine.events():
            _show(event, run)
            if isinstance(event, AudioOut) and _audible(event.frame.pcm):
                quiet.deadline = trio.current_time() + AUDIO_QUIET_S
    run.ok = phase == "done"


def _audible(pcm: bytes) -> bool:
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    return bool(samples) and max(map(abs, samples)) > 300


def _show(event: Any, run: TransportRun) -> None:
    name = type(event).__name__
    run.events[name] += 1
    if isinstance(event, AudioOut):
        run.audio += event.frame.pcm
        return
    if isinstance(event, OutputTranscriptDelta):
        return  # summarised by OutputTranscriptDone
    if isinstance(event, ConversationStarted | ConversationClosed):
        print(f"  {name}: {event}")
    elif isinstance(event, OutputTranscriptDone):
        run.transcripts.append(f"assistant: {event.text}")
        print(f"  assistant ▸ {event.text}   (audio so far {run.audio_ms:.0f} ms)")
    elif isinstance(event, InputTranscriptDone):
        run.transcripts.append(f"user: {event.text}")
        print(f"  user (heard) ▸ {event.text}")
    elif isinstance(event, ToolCallRequested):
        print(f"  ToolCallRequested {event.call_id}: {event.name}({event.arguments})")
    elif isinstance(event, HandoffRequested):
        lines = "; ".join(f"{e.role}: {e.text}" for e in event.active_transcript)
        print(f"  HandoffRequested {event.handoff_id}: {event.input_transcript!r} [{lines}]")
    elif isinstance(event, Error):
        print(f"  Error: {event.message} (code={event.code}, fatal={event.fatal})")
    elif name in {"SessionCreated", "SessionUpdated", "ResponseCreated", "ResponseDone"}:
        print(f"  {name}")


async def _main(out_dir: Path, transports: list[str]) -> list[TransportRun]:
    config = SimulatorConfig(speech_transcript=SPOKEN)
    async with open_simulator(config) as sim:
        base_url = sim.base_url
        assert base_url is not None
        print(f"simulator listening on {base_url}")
        return [await _run_transport(base_url, t, out_dir) for t in transports]


def run_demo(*, out_dir: str = ".", transport: str = "all") -> int:
    """Run the demo; returns the process exit code."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    transports = ["websocket", "webrtc"] if transport == "all" else [transport]
    runs = run_cancelling_on_ctrl_c(functools.partial(_main, directory, transports))
    print("\n=== summary ===")
    header = ("transport", "ok", "events", "audio ms", "handoff ms", "s")
    print("{:10s} {:3s} {:>6s} {:>9s} {:>10s} {:>5s}  wav".format(*header))
    for run in runs:
        handoff = f"{run.handoff_round_trip_ms:.0f}" if run.handoff_round_trip_ms else "-"
        print(
            f"{run.transport:10s} {'yes' if run.ok else 'NO':3s} {sum(run.events.values()):6d} "
            f"{run.audio_ms:9.0f} {handoff:>10s} {run.seconds:5.1f}  {run.wav}"
        )
    same = len({tuple(r.transcripts) for r in runs}) == 1
    if len(runs) > 1:
        print(f"same transcripts on every transport: {'yes' if same else 'NO'}")
    return 0 if all(r.ok for r in runs) and same else 1
