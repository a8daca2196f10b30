"""The scripted model's real-server behaviours, driven by raw client JSON: typed nested objects
in ``session.update``, G.711 audio, function calls for declared tools, turn control,
out-of-band responses, history. Every v2 event is also validated against the ``openai``
package's ``RealtimeServerEvent`` models."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pydantic
import pytest
from openai.types.realtime import RealtimeServerEvent

from duplex.protocol import ProtocolVersion, SessionMode
from duplex.simulator import IdGenerator, ScriptedModel, SimulatorConfig, synthesize, tone
from duplex.simulator._wire import ClientFrame, decode_client_frame

from ._simhelpers import append, silence

_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RealtimeServerEvent)


def _model(*, webrtc: bool = False, **cfg: Any) -> ScriptedModel:
    return ScriptedModel(
        version=ProtocolVersion.V2,
        mode=SessionMode.CONVERSATIONAL,
        config=SimulatorConfig(**cfg),
        ids=IdGenerator("behaviour"),
        webrtc=webrtc,
    )


def _valid(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for event in events:
        _ADAPTER.validate_python(event)
    return events


def feed(model: ScriptedModel, event: dict[str, Any], now: float = 0.0) -> list[dict[str, Any]]:
    frame = decode_client_frame(json.dumps(event), ProtocolVersion.V2)
    assert isinstance(frame, ClientFrame), frame
    return _valid(model.receive(frame.event, now, frame.raw))


def drain(model: ScriptedModel, now: float = 0.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while (deadline := model.next_deadline()) is not None:
        now = max(now, deadline)
        out.extend(model.poll(now))
    return _valid(out)


def update(model: ScriptedModel, **session: Any) -> dict[str, Any]:
    out = feed(model, {"type": "session.update", "session": {"type": "realtime", **session}})
    assert out[-1]["type"] == "session.updated", out
    result: dict[str, Any] = out[-1]["session"]
    return result


def of(events: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == type_]


def first(events: list[dict[str, Any]], type_: str) -> dict[str, Any]:
    return of(events, type_)[0]


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# ---------------------------------------------------------------------- typed nested objects


def test_turn_detection_type_switch_replaces_the_object() -> None:
    model = _model()
    session = update(model, audio={"input": {"turn_detection": {"type": "semantic_vad"}}})
    td = session["audio"]["input"]["turn_detection"]
    assert td == {
        "type": "semantic_vad",
        "eagerness": "auto",
        "create_response": True,
        "interrupt_response": True,
    }
    # Same type: merged key by key.
    session = update(
        model, audio={"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "low"}}}
    )
    assert session["audio"]["input"]["turn_detection"]["eagerness"] == "low"
    assert session["audio"]["input"]["turn_detection"]["create_response"] is True
    # Back to server_vad: the server_vad defaults, no eagerness.
    session = update(model, audio={"input": {"turn_detection": {"type": "server_vad"}}})
    td = session["audio"]["input"]["turn_detection"]
    assert "eagerness" not in td
    assert td["threshold"] == 0.5
    assert td["silence_duration_ms"] == 200


def test_any_typed_nested_object_is_replaced_on_type_change() -> None:
    model = _model()
    session = update(
        model,
        audio={
            "input": {"format": {"type": "audio/pcmu"}, "noise_reduction": {"type": "near_field"}}
        },
    )
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    session = update(model, audio={"input": {"turn_detection": None}})
    assert session["audio"]["input"]["turn_detection"] is None
    session = update(model, audio={"input": {"turn_detection": {"type": "server_vad"}}})
    assert session["audio"]["input"]["turn_detection"]["prefix_padding_ms"] == 300


# ---------------------------------------------------------------------- G.711


def _ulaw(pcm24: bytes) -> bytes:
    """Reference μ-law encoding of 24 kHz PCM16 (decimate by 3, G.711 via numpy)."""
    x = np.frombuffer(pcm24, dtype="<i2")[::3].astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    mantissa = (mag >> (exponent + 3)) & 0x0F
    out: bytes = (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()
    return out


def _alaw(pcm24: bytes) -> bytes:
    """Reference A-law encoding of 24 kHz PCM16 (decimate by 3)."""
    x = np.frombuffer(pcm24, dtype="<i2")[::3].astype(np.int32) >> 3
    sign = np.where(x >= 0, 0x80, 0)
    mag = np.where(x >= 0, x, -x - 1)
    mag = np.minimum(mag, 0xFFF)
    seg = np.where(mag < 32, 0, np.floor(np.log2(np.maximum(mag, 1))).astype(np.int32) - 4)
    seg = np.maximum(seg, 0)
    mant = np.where(seg == 0, mag >> 1, mag >> seg) & 0x0F
    out: bytes = ((sign | (seg << 4) | mant) ^ 0x55).astype(np.uint8).tobytes()
    return out


def _from_ulaw(data: bytes) -> npt.NDArray[np.int32]:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84)


@pytest.mark.parametrize("fmt", ["audio/pcmu", "audio/pcma"])
def test_g711_input_and_output(fmt: str) -> None:
    model = _model(speech_transcript=None)
    update(
        model,
        audio={
            "input": {"format": {"type": fmt}, "transcription": {"model": "whisper-1"}},
            "output": {"format": {"type": fmt}},
        },
    )
    pcm = silence(300) + tone(600) + silence(400)
    g711 = _ulaw(pcm) if fmt == "audio/pcmu" else _alaw(pcm)
    assert len(g711) == 8 * 1300  # 8 000 bytes/s
    events: list[dict[str, Any]] = []
    for i in range(0, len(g711), 160):  # 20 ms telephony frames
        events += feed(model, append(g711[i : i + 160]))
    events += drain(model)
    kinds = types(events)
    assert "input_audio_buffer.speech_started" in kinds
    done = next(
        e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"
    )
    # The VAD measured the turn on the decoded 8 kHz audio: ~600 ms of tone + 200 ms silence.
    assert done["transcript"] == "[speech 1.10s]"
    created = next(e for e in events if e["type"] == "response.created")
    assert created["response"]["audio"]["output"]["format"] == {"type": fmt}
    deltas = [
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    ]
    audio = b"".join(deltas)
    text = next(e for e in events if e["type"] == "response.output_audio_transcript.done")[
        "transcript"
    ]
    expected = len(synthesize(text)) // 6  # 24 kHz PCM16 bytes → 8 kHz one-byte samples
    assert abs(len(audio) - expected) <= 2
    assert all(len(d) <= 8 * SimulatorConfig().audio_chunk_ms for d in deltas)
    if fmt == "audio/pcmu":
        decoded = _from_ulaw(audio)
        assert np.abs(decoded).max() > 3000  # real speech-like audio, not PCM16 bytes misread


# ---------------------------------------------------------------------- function calls


def _tool(name: str, **props: Any) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "description": f"The {name} tool.",
        "parameters": {"type": "object", "properties": props},
    }


def user_text(text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


def ask(model: ScriptedModel, text: str, now: float = 0.0, **response: Any) -> list[dict[str, Any]]:
    feed(model, user_text(text), now)
    create: dict[str, Any] = {"type": "response.create"}
    if response:
        create["response"] = response
    return feed(model, create, now) + drain(model, now)


def test_declared_tool_is_called_by_trigger_phrase() -> None:
    model = _model()
    update(model, tools=[_tool("get_weather", city={"type": "string"})])
    events = ask(model, "please call get_weather now")
    kinds = types(events)
    assert kinds == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        "rate_limits.updated",
    ]
    done = first(events, "response.function_call_arguments.done")
    assert done["name"] == "get_weather"
    assert done["arguments"] == "{}"
    assert done["call_id"].startswith("call_")
    output = first(events, "response.done")["response"]["output"]
    assert [(o["type"], o["name"], o["call_id"]) for o in output] == [
        ("function_call", "get_weather", done["call_id"])
    ]
    # An undeclared tool name is just text.
    events = ask(model, "call get_time")
    assert "response.function_call_arguments.done" not in types(events)


def test_parallel_calls_in_one_response_and_reply_mentions_outputs() -> None:
    model = _model(tool_arguments={"lookup": '{"query": "{text}"}'})
    update(model, tools=[_tool("lookup"), _tool("book")], output_modalities=["text"])
    events = ask(model, 'call lookup and book "now"')
    dones = of(events, "response.function_call_arguments.done")
    assert [d["name"] for d in dones] == ["lookup", "book"]
    assert [d["output_index"] for d in dones] == [0, 1]
    assert json.loads(dones[0]["arguments"]) == {"query": 'call lookup and book "now"'}
    assert dones[1]["arguments"] == "{}"
    assert types(events).count("response.done") == 1
    output = first(events, "response.done")["response"]["output"]
    assert [o["call_id"] for o in output] == [d["call_id"] for d in dones]
    for done, result in zip(dones, ["found it", "booked"], strict=True):
        out = feed(
            model,
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": done["call_id"],
                    "output": result,
                },
            },
        )
        assert types(out) == ["conversation.item.added", "conversation.item.done"]
    events = feed(model, {"type": "response.create"}) + drain(model)
    text = first(events, "response.output_text.done")["text"]
    assert text == "lookup returned found it. book returned booked."


def test_tool_triggers_mapping_and_handoff_tool_unchanged() -> None:
    model = _model(tool_triggers={"weather": "get_weather"})
    codex = _tool("codex", prompt={"type": "string"})
    update(model, tools=[codex, _tool("get_weather"), _tool("remain_silent")])
    events = ask(model, "how is the weather?")
    assert first(events, "response.function_call_arguments.done")["name"] == "get_weather"
    events = ask(model, "delegate the build")
    done = first(events, "response.function_call_arguments.done")
    assert done["name"] == "codex"
    assert json.loads(done["arguments"]) == {"prompt": "delegate the build"}
    events = ask(model, "please stay silent")
    assert first(events, "response.function_call_arguments.done")["name"] == "remain_silent"
    # The handoff's output is spoken as is.
    feed(
        model,
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": done["call_id"], "output": "built"},
        },
    )
    events = feed(model, {"type": "response.create"}) + drain(model)
    assert first(events, "response.output_audio_transcript.done")["transcript"] == "built"


def test_tools_declared_per_response_can_be_called() -> None:
    model = _model()
    events = ask(model, "call ping", tools=[_tool("ping")])
    assert first(events, "response.function_call_arguments.done")["name"] == "ping"


# ---------------------------------------------------------------------- WebRTC playout


def drain_timed(model: ScriptedModel, now: float = 0.0) -> list[tuple[float, dict[str, Any]]]:
    out: list[tuple[float, dict[str, Any]]] = []
    while (deadline := model.next_deadline()) is not None:
        now = max(now, deadline)
        out.extend((now, e) for e in _valid(model.poll(now)))
    return out


def _at(timed: list[tuple[float, dict[str, Any]]], type_: str) -> float:
    return next(t for t, e in timed if e["type"] == type_)


def test_output_audio_buffer_stopped_when_the_audio_has_played_out() -> None:
    model = _model(webrtc=True)
    feed(model, user_text("hello there"))
    start = feed(model, {"type": "response.create"}, 10.0)
    assert "output_audio_buffer.started" in types(start)
    assert types(start).index("output_audio_buffer.started") > types(start).index(
        "response.content_part.added"
    )
    audio_s = len(synthesize("You said: hello there.")) / 48_000
    timed = poll_until(model, "response.done", 10.0)
    done_at = _at(timed, "response.done")
    # Generated 20x faster than real time; the slot is free at response.done ...
    assert done_at == pytest.approx(10.0 + audio_s / 20, abs=0.05)
    assert "output_audio_buffer.stopped" not in types([e for _, e in timed])
    # ... so a new response may start while the first one's audio still plays.
    feed(model, user_text("again"), done_at)
    second = feed(model, {"type": "response.create"}, done_at)
    assert "response.created" in types(second)
    assert "output_audio_buffer.started" not in types(second)  # queued behind the first
    timed = drain_timed(model, done_at)
    starts = [(t, e["response_id"]) for t, e in timed if e["type"] == "output_audio_buffer.started"]
    stops = [(t, e["response_id"]) for t, e in timed if e["type"] == "output_audio_buffer.stopped"]
    first_id = start[0]["response"]["id"]
    second_id = second[0]["response"]["id"]
    # Played out on the track in real time, one after the other.
    assert stops[0][0] == pytest.approx(10.0 + audio_s + 0.02, abs=0.001)
    assert stops[0][1] == first_id
    assert starts == [(stops[0][0], second_id)]
    assert stops[1][1] == second_id
    assert types([e for _, e in timed])[-1] == "output_audio_buffer.stopped"


def poll_until(
    model: ScriptedModel, type_: str, now: float = 0.0
) -> list[tuple[float, dict[str, Any]]]:
    out: list[tuple[float, dict[str, Any]]] = []
    while (deadline := model.next_deadline()) is not None:
        now = max(now, deadline)
        out.extend((now, e) for e in _valid(model.poll(now)))
        if any(e["type"] == type_ for _, e in out):
            break
    return out


def test_output_audio_buffer_clear_stops_playout_and_truncates() -> None:
    model = _model(webrtc=True)
    feed(model, user_text("hello there"))
    created = feed(model, {"type": "response.create"}, 0.0)
    item_id = first(created, "response.output_item.added")["item"]["id"]
    timed = drain_timed(model, 0.0)
    assert "output_audio_buffer.stopped" in types([e for _, e in timed[-1:]])
    # Replay: a second response cleared mid-playout.
    feed(model, user_text("hello there"), 5.0)
    created = feed(model, {"type": "response.create"}, 5.0)
    item_id = first(created, "response.output_item.added")["item"]["id"]
    while (deadline := model.next_deadline()) is not None and deadline < 5.3:
        model.poll(deadline)
    cleared = feed(model, {"type": "output_audio_buffer.clear"}, 5.3)
    assert types(cleared) == ["output_audio_buffer.cleared"]
    assert cleared[0]["response_id"] == created[0]["response"]["id"]
    assert "output_audio_buffer.stopped" not in types([e for _, e in drain_timed(model, 5.3)])
    # The item is cut where the user stopped hearing it (300 ms).
    bad = feed(
        model,
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 400,
        },
        6.0,
    )
    assert bad[0]["type"] == "error"
    ok = feed(
        model,
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 300,
        },
        6.0,
    )
    assert types(ok) == ["conversation.item.truncated"]


def test_barge_in_clears_audio_still_playing_after_response_done() -> None:
    model = _model(webrtc=True)
    feed(model, user_text("hello there"))
    feed(model, {"type": "response.create"}, 0.0)
    while (deadline := model.next_deadline()) is not None and deadline < 0.5:
        model.poll(deadline)
    assert model.active_response_id is None  # response.done went out; audio still playing
    events = model.append_audio(tone(300), 0.5)
    assert types(events) == ["input_audio_buffer.speech_started", "output_audio_buffer.cleared"]
    assert model.next_deadline() is None
