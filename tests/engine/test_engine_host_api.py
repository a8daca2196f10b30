"""The full host API (issue 13) against the simulator: tools changed mid-conversation, the
session configuration on the wire, push-to-talk ordering, raw events, images, usage and latency
in ``statistics()``, and the errors of each call. Transport parity of the same calls is in
``test_engine_host_api_parity.py``."""

from __future__ import annotations

import base64

import pytest
import trio

from duplex.engine import (
    ConversationStartError,
    FunctionTool,
    InputAudioCleared,
    InputAudioCommitted,
    InputTranscriptDone,
    InputTranscription,
    InvalidRequest,
    OutputTranscriptDone,
    RateLimitsUpdated,
    ResponseDone,
    SemanticVad,
    SessionConfig,
    SessionUpdated,
    ToolCallNotActive,
    ToolCallRequested,
    UnsupportedByDialect,
)
from duplex.protocol import InputAudioBufferAppend
from duplex.simulator import SimulatorConfig, open_simulator

from ._engine_helpers import (
    engine_with_events,
    of_type,
    pcm_frames,
    raw_of,
    sim_config,
    sine,
    wait_for_record,
)

CLOCK = FunctionTool("get_time", "The time.", {"type": "object", "properties": {}})
WEATHER = FunctionTool("get_weather", "The weather.", {"type": "object", "properties": {}})
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


async def test_tools_changed_with_update_session_are_advertised_and_called() -> None:
    async with open_simulator() as sim:
        config = sim_config(sim, tools=(CLOCK,), handoff_tool_name=None)
        with trio.fail_after(15):
            async with engine_with_events(config) as (engine, events):
                await engine.start(prompt="tools")
                await events.until(of_type(SessionUpdated))
                record = sim.sessions[0]
                first = raw_of(record, "session.update")[0]["session"]
                assert [t["name"] for t in first["tools"]] == ["remain_silent", "get_time"]

                await engine.update_session(
                    SessionConfig(turn_detection=SemanticVad(eagerness="high")),
                    tools=(CLOCK, WEATHER),
                )
                await events.until(of_type(SessionUpdated))
                second = raw_of(record, "session.update")[1]["session"]
                assert [t["name"] for t in second["tools"]] == [
                    "remain_silent",
                    "get_time",
                    "get_weather",
                ]
                assert second["instructions"] == "tools"  # the whole session, prompt kept
                assert second["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"

                await engine.send_text("call get_weather")
                call = (await events.until(of_type(ToolCallRequested)))[-1]
                assert call.name == "get_weather"
                await events.until(of_type(RateLimitsUpdated))
                await engine.send_tool_output(call.call_id, "sunny", respond=True)
                done = await events.until(of_type(OutputTranscriptDone))
                assert done[-1].text == "get_weather returned sunny."
                with pytest.raises(ToolCallNotActive):
                    await engine.send_tool_output(call.call_id, "again")
                with pytest.raises(ToolCallNotActive):
                    await engine.send_tool_output("call_unknown", "x")
                with pytest.raises(InvalidRequest, match="get_time"):
                    await engine.update_session(tools=(CLOCK, CLOCK))


async def test_tool_output_without_respond_requests_no_response() -> None:
    async with open_simulator() as sim:
        config = sim_config(sim, tools=(CLOCK,))
        with trio.fail_after(15):
            async with engine_with_events(config) as (engine, events):
                await engine.start()
                await engine.send_text("call get_time")
                call = (await events.until(of_type(ToolCallRequested)))[-1]
                await events.until(of_type(RateLimitsUpdated))
                await engine.send_tool_output(call.call_id, "12:00", respond=False)
                record = sim.sessions[0]
                await wait_for_record(
                    record, lambda r: len(r.of_type("conversation.item.create")) == 2
                )
                await events.nothing_for(0.3, ignore=lambda e: not isinstance(e, ResponseDone))
                assert len(record.of_type("response.create")) == 1  # only the text's


async def test_push_to_talk_commits_after_the_audio_and_clear_drops_it() -> None:
    session = SessionConfig(turn_detection=None)
    async with open_simulator(SimulatorConfig(speech_transcript="ok")) as sim:
        config = sim_config(sim, session=session, audio_queue_size=1024)
        with trio.fail_after(15):
            async with engine_with_events(config) as (engine, events):
                await engine.start()
                await events.until(of_type(SessionUpdated))
                # No pacing: every frame is queued when commit_audio() is called, and must
                # still reach the server before the commit.
                for frame in pcm_frames(sine(400)):
                    engine.send_audio(frame)
                await engine.commit_audio()
                await events.until(of_type(InputAudioCommitted))
                done = await events.until(of_type(OutputTranscriptDone))
                assert done[-1].text == "You said: ok."
                record = sim.sessions[0]
                sent = [e.type for e in record.events]
                commit = sent.index("input_audio_buffer.commit")
                assert sent[commit - 1] == "input_audio_buffer.append"
                assert sent[commit + 1] == "response.create"
                assert "input_audio_buffer.append" not in sent[commit:]

                for frame in pcm_frames(sine(200)):
                    engine.send_audio(frame)
                await engine.clear_audio()
                await events.until(of_type(InputAudioCleared))


async def test_push_to_talk_at_another_rate_commits_the_resamplers_tail_with_its_turn() -> None:
    """soxr holds its filter's last few ms until more audio comes: 400 ms at 48 kHz reached
    the server as 380.4 ms before the commit, and the rest began the next turn."""
    session = SessionConfig(turn_detection=None)
    async with open_simulator(SimulatorConfig(speech_transcript="ok")) as sim:
        config = sim_config(sim, session=session, audio_queue_size=1024)
        with trio.fail_after(15):
            async with engine_with_events(config) as (engine, events):
                await engine.start()
                await events.until(of_type(SessionUpdated))
                for frame in pcm_frames(sine(400, rate=48000), rate=48000):
                    engine.send_audio(frame)
                await engine.commit_audio(respond=False)
                await events.until(of_type(InputAudioCommitted))
                for frame in pcm_frames(sine(200, rate=48000), rate=48000):
                    engine.send_audio(frame)
                await engine.clear_audio()
                await events.until(of_type(InputAudioCleared))
                record = sim.sessions[0]
                sent = [(e.type, e.event) for e in record.events]
    kinds = [kind for kind, _ in sent]
    commit, clear = (
        kinds.index("input_audio_buffer.commit"),
        kinds.index("input_audio_buffer.clear"),
    )

    def appended_ms(start: int, end: int) -> float:
        appends = [e for _, e in sent[start:end] if isinstance(e, InputAudioBufferAppend)]
        return sum(len(e.audio) for e in appends) / 48  # 24 kHz PCM16: 48 bytes a ms

    assert appended_ms(0, commit) == 400  # all of the turn, at 24 kHz, before its commit
    assert appended_ms(commit, clear) == 200  # the next turn: its own audio and no more


async def test_raw_events_go_through_the_writer_and_are_counted() -> None:
    async with open_simulator() as sim:
        with trio.fail_after(15):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                await engine.start()
                await engine.send_event({"type": "input_audio_buffer.clear", "event_id": "e1"})
                await events.until(of_type(InputAudioCleared))
                stats = engine.statistics()
                assert stats.raw_events_sent == 1
                assert stats.client_events >= 2
                with pytest.raises(InvalidRequest, match="type"):
                    await engine.send_event({"no": "type"})
                with pytest.raises(InvalidRequest, match="JSON"):
                    await engine.send_event({"type": "x", "bad": object()})
                assert engine.statistics().raw_events_sent == 1


async def test_send_image_adds_an_input_image_item() -> None:
    async with open_simulator() as sim:
        with trio.fail_after(15):
            async with engine_with_events(sim_config(sim)) as (engine, _events):
                await engine.start()
                await engine.send_image(PNG, "image/png", text="what is this?")
                record = sim.sessions[0]
                await wait_for_record(record, lambda r: bool(r.of_type("conversation.item.create")))
                item = raw_of(record, "conversation.item.create")[0]["item"]
                image, text = item["content"]
                assert image["type"] == "input_image"
                expected = "data:image/png;base64," + base64.b64encode(PNG).decode()
                assert image["image_url"] == expected
                assert text == {"type": "input_text", "text": "what is this?"}
                with pytest.raises(InvalidRequest, match="image/bmp"):
                    await engine.send_image(PNG, "image/bmp")
                assert not record.of_type("response.create")  # an image asks for nothing


async def test_statistics_carry_usage_and_latency_after_a_turn() -> None:
    async with open_simulator() as sim:
        with trio.fail_after(15):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                await engine.start()
                assert engine.statistics().usage.responses == 0
                await engine.send_text("hello")
                await events.until(of_type(RateLimitsUpdated))
                stats = engine.statistics()
                assert stats.usage.responses == 1
                assert stats.usage.input_tokens > 0
                assert stats.usage.output_tokens > 0
                assert stats.usage.cached_input_tokens <= stats.usage.input_tokens
                latency = stats.latency
                assert latency.responses == 1
                assert latency.last is not None
                assert latency.last.transcript_s is not None
                assert latency.last.audio_s is not None
                assert 0 <= latency.last.transcript_s < 5
                assert latency.transcript_p50_s == latency.last.transcript_s


async def test_v1_refuses_tools_at_start_and_v2_only_calls_at_call_time() -> None:
    async with open_simulator() as sim:
        with trio.fail_after(15):
            config = sim_config(sim, version="v1", tools=(CLOCK,))
            async with engine_with_events(config) as (engine, _events):
                with pytest.raises(ConversationStartError, match="tools"):
                    await engine.start()
            async with engine_with_events(sim_config(sim, version="v1")) as (engine, _events):
                await engine.start()
                with pytest.raises(UnsupportedByDialect):
                    await engine.interrupt()
                with pytest.raises(UnsupportedByDialect):
                    await engine.commit_audio()
                with pytest.raises(UnsupportedByDialect):
                    await engine.send_image(PNG, "image/png")
                with pytest.raises(UnsupportedByDialect):
                    await engine.update_session(SessionConfig())
                await engine.update_session(instructions="v1 prompt")


async def test_transcription_session_sends_the_configured_model_language_and_prompt() -> None:
    session = SessionConfig(
        transcription=InputTranscription(model="gpt-4o-transcribe", language="de", prompt="Namen"),
        turn_detection=None,
    )
    async with open_simulator(SimulatorConfig(speech_transcript="hallo")) as sim:
        config = sim_config(sim, mode="transcription", session=session)
        with trio.fail_after(15):
            async with engine_with_events(config) as (engine, events):
                await engine.start()
                await events.until(of_type(SessionUpdated))
                record = sim.sessions[0]
                sent = raw_of(record, "session.update")[0]["session"]
                assert sent["type"] == "transcription"
                assert sent["audio"]["input"]["transcription"] == {
                    "model": "gpt-4o-transcribe",
                    "language": "de",
                    "prompt": "Namen",
                }
                for frame in pcm_frames(sine(300)):
                    engine.send_audio(frame)
                await engine.commit_audio()
                done = await events.until(of_type(InputTranscriptDone))
                assert done[-1].text == "hallo"
                assert not record.of_type("response.create")
                with pytest.raises(UnsupportedByDialect):
                    await engine.interrupt()
                with pytest.raises(InvalidRequest, match="instructions"):
                    await engine.update_session(instructions="no")
