"""Transcription: a transcription-only session through the same host interface, and the
transcript of a spoken turn that arrives after the response it started."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel

from duplex.engine import (
    InputAudioSpeechStarted,
    InputTranscriptDone,
    InputTranscription,
    OutputTranscriptDone,
    ResponseCreated,
    SessionConfig,
    SessionUpdated,
    UnsupportedByDialect,
)
from duplex.simulator import SimulatorConfig, open_simulator, synthesize

from ._engine_helpers import (
    engine_with_events,
    of_type,
    pcm_frames,
    raw_of,
    silence,
    sim_config,
)


async def test_v2_transcription_session_transcribes_speech_and_never_responds() -> None:
    async with open_simulator(SimulatorConfig(speech_transcript="take a note")) as sim:
        with trio.fail_after(20):
            config = sim_config(sim, mode="transcription")
            async with engine_with_events(config) as (engine, events):
                await engine.start()
                await events.until(of_type(SessionUpdated))
                with pytest.raises(UnsupportedByDialect):
                    await engine.send_text("typed text has no place here")
                for frame in pcm_frames(silence(200) + synthesize("take a note") + silence(900)):
                    engine.send_audio(frame)
                    await trio.lowlevel.checkpoint()
                done = (await events.until(of_type(InputTranscriptDone)))[-1]
                assert done.text == "take a note"
                # The simulator bills transcription by duration, as whisper-style models do.
                assert done.audio_seconds is not None
                assert done.audio_seconds > 0.5
                usage = engine.statistics().usage
                assert usage.transcriptions == 1
                assert usage.transcription_audio_s == pytest.approx(done.audio_seconds)
                assert usage.responses == 0
                assert any(isinstance(e, InputAudioSpeechStarted) for e in events.log)
                await trio.sleep(0.3)
                assert not any(isinstance(e, ResponseCreated) for e in events.log)
            record = sim.sessions[0]
            session = raw_of(record, "session.update")[0]["session"]
            # SPEC §2 / codex §4.3: no instructions, no output audio, no tools.
            assert session["type"] == "transcription"
            assert "instructions" not in session
            assert "tools" not in session
            assert "output" not in session["audio"]
            assert not raw_of(record, "response.create")


async def test_a_transcript_that_comes_after_the_response_keeps_the_turn_order() -> None:
    """The real API transcribes asynchronously: a user's transcript may follow the
    response's first events. The history keeps the server's item order regardless."""
    config = SimulatorConfig(speech_transcript="book a table", transcript_delay_ms=600)
    async with open_simulator(config) as sim:
        with trio.fail_after(20):
            session = SessionConfig(transcription=InputTranscription(model="gpt-4o-transcribe"))
            async with engine_with_events(sim_config(sim, session=session)) as (engine, events):
                await engine.start()
                await events.until(of_type(SessionUpdated))
                for frame in pcm_frames(silence(200) + synthesize("book a table") + silence(900)):
                    engine.send_audio(frame)
                    await trio.lowlevel.checkpoint()
                await events.until(of_type(InputTranscriptDone))
                kinds = [type(e) for e in events.log]
                # The answer was already spoken when the user's words arrived.
                assert kinds.index(OutputTranscriptDone) < kinds.index(InputTranscriptDone)
                turns = [(item.role, item.text) for item in engine.history()]
                assert turns == [("user", "book a table"), ("assistant", "You said: book a table.")]
