"""The sans-IO scripted model on its own: determinism, ids, VAD, pacing, dialect shapes.

Every event the model emits is also fed to duplex's own client-side parser
(``protocol.parse_server_event``) to check the two sides agree: nothing the simulator sends
may parse as a ``ParseFailure`` in its dialect.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from duplex.protocol import (
    AudioOut,
    ContentPart,
    ConversationItem,
    ConversationItemCreate,
    HandoffAppend,
    HandoffRequested,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    InputAudioSpeechStarted,
    NoopRequested,
    OutputAudioBufferClear,
    OutputTranscriptDelta,
    ParseFailure,
    ProtocolVersion,
    ResponseCancel,
    ResponseCreate,
    ResponseDone,
    SessionCreate,
    SessionMode,
    SessionUpdate,
    SessionUpdated,
    WireSession,
    parse_server_event,
)
from duplex.simulator import IdGenerator, ScriptedModel, SimulatorConfig, synthesize, tone
from duplex.simulator._audio import EnergyVad, to_wire_pcm

V1 = ProtocolVersion.V1
V2 = ProtocolVersion.V2


def _model(version: ProtocolVersion = V2, **cfg: Any) -> ScriptedModel:
    return ScriptedModel(
        version=version,
        mode=SessionMode.CONVERSATIONAL,
        config=SimulatorConfig(**cfg),
        ids=IdGenerator("test"),
    )


def _text(text: str) -> ConversationItemCreate:
    item = ConversationItem(
        type="message", role="user", content=(ContentPart(type="input_text", text=text),)
    )
    return ConversationItemCreate(item=item)


def _drain(model: ScriptedModel, now: float = 0.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while (deadline := model.next_deadline()) is not None:
        now = max(now, deadline)
        out.extend(model.poll(now))
    return out


def _parse_all(events: list[dict[str, Any]], version: ProtocolVersion) -> list[Any]:
    parsed = [parse_server_event(json.dumps(e), version) for e in events]
    failures = [p for p in parsed if isinstance(p, ParseFailure)]
    assert not failures, failures
    return parsed


def test_ids_have_real_formats_and_are_seeded() -> None:
    a, b = IdGenerator(7), IdGenerator(7)
    assert [a.event(), a.item(), a.call(), a.rtc_call()] == [
        b.event(),
        b.item(),
        b.call(),
        b.rtc_call(),
    ]
    ids = IdGenerator(1)
    for value, pattern in [
        (ids.event(), r"event_[0-9A-Za-z]{21}"),
        (ids.session(), r"sess_[0-9A-Za-z]{21}"),
        (ids.conversation(), r"conv_[0-9A-Za-z]{21}"),
        (ids.response(), r"resp_[0-9A-Za-z]{21}"),
        (ids.item(), r"item_[0-9A-Za-z]{21}"),
        (ids.call(), r"call_[0-9A-Za-z]{16}"),
        (ids.rtc_call(), r"rtc_u1_[0-9a-f]{32}"),
    ]:
        assert re.fullmatch(pattern, value), value


def test_model_is_deterministic() -> None:
    def run() -> list[dict[str, Any]]:
        model = _model()
        out = model.session_created()
        out += model.receive(_text("hello"), 0.0)
        out += model.receive(ResponseCreate(), 0.0)
        return out + _drain(model)

    assert run() == run()


def test_audio_streams_faster_than_real_time_in_chunks() -> None:
    model = _model(audio_speedup=10.0, audio_chunk_ms=50)
    model.receive(_text("hello"), 0.0)
    first = model.receive(ResponseCreate(), 0.0)
    assert first[0]["type"] == "response.created"
    rest = _drain(model)
    deltas = [e for e in first + rest if e["type"] == "response.output_audio.delta"]
    audio_s = len(synthesize("You said: hello.")) / 48000
    assert len(deltas) == -(-int(audio_s * 1000) // 50)
    # The whole response is due within audio duration / speedup.
    model2 = _model(audio_speedup=10.0, audio_chunk_ms=50)
    model2.receive(_text("hello"), 0.0)
    model2.receive(ResponseCreate(), 0.0)
    last = 0.0
    while (deadline := model2.next_deadline()) is not None:
        last = deadline
        model2.poll(deadline)
    assert last <= audio_s / 10 + 0.01


def test_cancel_frees_the_slot_and_ends_with_done() -> None:
    model = _model(audio_speedup=1.0)
    model.receive(_text("hello"), 0.0)
    model.receive(ResponseCreate(), 0.0)
    before = model.active_response_id
    out = model.receive(ResponseCancel(), 0.1)
    assert out[-1]["type"] == "response.done"
    assert out[-1]["response"]["status"] == "cancelled"
    assert out[-1]["response"]["id"] == before
    assert model.active_response_id is None
    assert model.next_deadline() is None
    again = model.receive(ResponseCancel(), 0.2)
    assert again[0]["error"]["code"] == "response_cancel_not_active"


def test_commit_threshold_is_100ms() -> None:
    model = _model()
    model.receive(
        SessionUpdate(session=WireSession(type="realtime")),
        0.0,
        {"session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}},
    )
    model.receive(InputAudioBufferAppend(audio=tone(99)), 0.0)
    error = model.receive(InputAudioBufferCommit(), 0.0)[0]
    assert error["error"]["code"] == "input_audio_buffer_commit_empty"
    model.receive(InputAudioBufferAppend(audio=tone(1)), 0.0)
    assert model.receive(InputAudioBufferCommit(), 0.0)[0]["type"] == "input_audio_buffer.committed"


def test_vad_edges_are_session_absolute() -> None:
    vad = EnergyVad(rms_threshold=500, prefix_padding_ms=300, silence_duration_ms=200)
    assert vad.feed(b"\x00\x00" * 24 * 1000) == []
    edges = vad.feed(tone(500) + b"\x00\x00" * 24 * 300)
    assert [(e.kind, e.ms) for e in edges] == [("start", 700), ("stop", 1700)]
    edges = vad.feed(tone(100) + b"\x00\x00" * 24 * 300)
    assert [(e.kind, e.ms) for e in edges] == [("start", 1800 - 300), ("stop", 2100)]


def test_resample_48k_stereo_to_wire() -> None:
    stereo = (b"\x10\x00\x30\x00") * 480  # 10 ms at 48 kHz, L=16 R=48
    mono = to_wire_pcm(stereo, 48000, 2)
    assert len(mono) == 240 * 2
    assert set(mono[::2]) == {32}


def test_v2_events_parse_with_duplex_parser() -> None:
    model = _model()
    tool = {
        "type": "function",
        "name": "codex",
        "parameters": {"type": "object", "properties": {"prompt": {"type": "string"}}},
    }
    events = model.session_created()
    events += model.receive(
        SessionUpdate(session=WireSession(type="realtime")),
        0.0,
        {"session": {"type": "realtime", "tools": [tool]}},
    )
    events += model.receive(_text("hello"), 0.0) + model.receive(ResponseCreate(), 0.0)
    events += _drain(model)
    events += model.receive(_text("delegate that"), 1.0) + model.receive(ResponseCreate(), 1.0)
    parsed = _parse_all(events, V2)
    kinds = {type(p) for p in parsed}
    assert {
        SessionUpdated,
        AudioOut,
        OutputTranscriptDelta,
        ResponseDone,
        HandoffRequested,
    } <= kinds
    handoff = next(p for p in parsed if isinstance(p, HandoffRequested))
    assert handoff.input_transcript == "delegate that"


def test_v1_events_match_spec_shapes() -> None:
    model = _model(V1)
    session = WireSession(type="quicksilver", instructions="prompt")
    events = model.receive(SessionCreate(session=session), 0.0)
    assert [e["type"] for e in events] == ["session.created", "session.updated"]
    events += model.receive(_text("hello"), 0.0) + _drain(model)
    handoff_events = model.receive(_text("delegate it"), 1.0)
    events += handoff_events
    parsed = _parse_all(events, V1)
    assert any(isinstance(p, AudioOut) and p.frame.sample_rate == 24000 for p in parsed)
    assert any(isinstance(p, OutputTranscriptDelta) for p in parsed)
    handoff = next(e for e in handoff_events if e["type"] == "conversation.handoff.requested")
    assert set(handoff) == {"type", "event_id", "handoff_id", "item_id", "input_transcript"}
    follow = model.receive(
        HandoffAppend(handoff_id=handoff["handoff_id"], output_text="result"), 2.0
    )
    follow += _drain(model, 2.0)
    done = next(e for e in follow if e["type"] == "response.output_audio_transcript.done")
    assert done["transcript"] == "result"
    bad = model.receive(HandoffAppend(handoff_id="nope", output_text="x"), 3.0)
    assert bad[0]["error"]["param"] == "handoff_id"


def test_speech_started_interrupts_active_response() -> None:
    model = _model(audio_speedup=1.0)
    model.receive(_text("hello"), 0.0)
    model.receive(ResponseCreate(), 0.0)
    out = model.append_audio(tone(100), 0.05)
    assert isinstance(parse_server_event(json.dumps(out[0]), V2), InputAudioSpeechStarted)
    assert out[-1]["type"] == "response.done"
    assert out[-1]["response"]["status_details"]["reason"] == "turn_detected"


@pytest.mark.parametrize("version", [V1, V2])
def test_transcription_mode_never_responds(version: ProtocolVersion) -> None:
    model = ScriptedModel(
        version=version,
        mode=SessionMode.TRANSCRIPTION,
        config=SimulatorConfig(speech_transcript="words"),
        ids=IdGenerator(0),
    )
    out = model.append_audio(tone(400) + b"\x00\x00" * 24 * 400, 0.0)
    types = [e["type"] for e in out]
    assert "response.created" not in types
    assert out[-1]["transcript"] == "words"
    assert model.receive(ResponseCreate(), 0.0)[0]["type"] == "error"


def test_silence_tool_call_parses_as_noop() -> None:
    model = _model()
    tools = [
        {"type": "function", "name": "codex", "parameters": {"type": "object"}},
        {"type": "function", "name": "remain_silent", "parameters": {"type": "object"}},
    ]
    model.receive(
        SessionUpdate(session=WireSession(type="realtime")),
        0.0,
        {"session": {"type": "realtime", "tools": tools}},
    )
    events = model.receive(_text("please stay silent"), 0.0)
    events += model.receive(ResponseCreate(), 0.0)
    done = next(
        e
        for e in events
        if e["type"] == "conversation.item.done" and e["item"]["type"] == "function_call"
    )
    assert done["item"]["name"] == "remain_silent"
    assert done["item"]["arguments"] == "{}"
    assert any(isinstance(p, NoopRequested) for p in _parse_all(events, V2))


def test_v1_session_update_first_still_greets() -> None:
    model = _model(V1)
    out = model.receive(SessionUpdate(session=WireSession(type="quicksilver")), 0.0)
    assert [e["type"] for e in out] == ["session.created", "session.updated"]
    again = model.receive(
        SessionUpdate(session=WireSession(type="quicksilver", instructions="x")), 0.0
    )
    assert [e["type"] for e in again] == ["session.updated"]


def test_item_create_strictness() -> None:
    model = _model()
    audio_item = ConversationItem(
        type="message",
        role="assistant",
        content=(ContentPart(type="output_audio", transcript="x"),),
    )
    error = model.receive(ConversationItemCreate(item=audio_item), 0.0)[0]
    assert error["error"]["param"] == "item.content"
    orphan = ConversationItem(type="function_call_output", call_id="call_nope", output="x")
    error = model.receive(ConversationItemCreate(item=orphan), 0.0)[0]
    assert error["error"]["param"] == "item.call_id"
    item = _text("x").item
    error = model.receive(ConversationItemCreate(item=item, previous_item_id="item_nope"), 0.0)[0]
    assert error["error"]["code"] == "item_not_found"
    added = model.receive(ConversationItemCreate(item=item, previous_item_id="root"), 0.0)[0]
    assert added["type"] == "conversation.item.added"
    assert added["previous_item_id"] is None


def test_output_audio_buffer_clear_is_webrtc_only() -> None:
    ws_model = _model()
    error = ws_model.receive(OutputAudioBufferClear(), 0.0)[0]
    assert error["error"]["param"] == "type"
    rtc = ScriptedModel(
        version=V2,
        mode=SessionMode.CONVERSATIONAL,
        config=SimulatorConfig(audio_speedup=1.0),
        ids=IdGenerator(0),
        webrtc=True,
    )
    rtc.receive(_text("hello"), 0.0)
    events = rtc.receive(ResponseCreate(), 0.0)
    assert "output_audio_buffer.started" in [e["type"] for e in events]
    assert rtc.take_audio()  # the first chunk is due at once and goes to the track
    assert "response.output_audio.delta" not in [e["type"] for e in events]
    cleared = rtc.receive(OutputAudioBufferClear(), 0.1)
    assert cleared[0]["type"] == "output_audio_buffer.cleared"
    # A barge-in over WebRTC clears server-side playback by itself.
    rtc.receive(ResponseCancel(), 0.2)
    rtc.receive(_text("again"), 0.3)
    rtc.receive(ResponseCreate(), 0.3)
    out = rtc.append_audio(tone(100), 0.35)
    assert [e["type"] for e in out][-1] == "output_audio_buffer.cleared"
