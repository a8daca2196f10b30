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
    timed = advance_until(model, "response.done", 10.0)
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


def advance_until(
    model: ScriptedModel, type_: str, now: float = 0.0
) -> list[tuple[float, dict[str, Any]]]:
    """Advance the model's virtual clock deadline by deadline until it emits ``type_``."""
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


# ---------------------------------------------------------------------- turn control


def test_manual_turns_commit_clear_and_errors() -> None:
    model = _model()
    update(
        model,
        audio={"input": {"turn_detection": None, "transcription": {"model": "whisper-1"}}},
    )
    events: list[dict[str, Any]] = []
    for i in range(0, 24_000, 4800):  # 500 ms of speech, no VAD events
        events += feed(model, append((tone(500))[i : i + 4800]))
    assert events == []
    committed = feed(model, {"type": "input_audio_buffer.commit"})
    assert types(committed) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert committed[-1]["transcript"] == "[speech 0.50s]"
    assert model.next_deadline() is None  # no response without response.create
    empty = feed(model, {"type": "input_audio_buffer.commit", "event_id": "e1"})
    assert empty[0]["error"]["code"] == "input_audio_buffer_commit_empty"
    assert empty[0]["error"]["event_id"] == "e1"
    feed(model, append(tone(50)))
    short = feed(model, {"type": "input_audio_buffer.commit"})
    assert "only has 50.00ms" in short[0]["error"]["message"]
    feed(model, append(tone(500)))
    assert types(feed(model, {"type": "input_audio_buffer.clear"})) == [
        "input_audio_buffer.cleared"
    ]
    after_clear = feed(model, {"type": "input_audio_buffer.commit"})
    assert after_clear[0]["error"]["code"] == "input_audio_buffer_commit_empty"
    answer = feed(model, {"type": "response.create"}) + drain(model)
    transcript = first(answer, "response.output_audio_transcript.done")["transcript"]
    assert transcript == "You said: [speech 0.50s]."


def test_cancel_active_and_not_active() -> None:
    model = _model()
    feed(model, user_text("hello"))
    created = feed(model, {"type": "response.create"})
    done = feed(model, {"type": "response.cancel"}, 0.01)
    assert types(done)[-1] == "response.done"
    assert done[-1]["response"]["status"] == "cancelled"
    assert done[-1]["response"]["status_details"]["reason"] == "client_cancelled"
    assert done[-1]["response"]["id"] == created[0]["response"]["id"]
    # Billed for what was produced before the cut, not the whole planned reply.
    whole = _model()
    feed(whole, user_text("hello"))
    finished = feed(whole, {"type": "response.create"}) + drain(whole)
    planned = first(finished, "response.done")["response"]["usage"]
    usage = done[-1]["response"]["usage"]
    assert usage["output_token_details"]["audio_tokens"] == 0  # no audio had gone out
    assert planned["output_token_details"]["audio_tokens"] > 0
    assert usage["output_tokens"] < planned["output_tokens"]
    again = feed(model, {"type": "response.cancel", "event_id": "evt_9"})
    assert again[0]["error"]["code"] == "response_cancel_not_active"
    assert again[0]["error"]["event_id"] == "evt_9"


def test_out_of_band_response_with_metadata_input_and_instructions() -> None:
    model = _model()
    feed(model, user_text("remember the milk"))
    order_before = list(model._order)
    events = feed(
        model,
        {
            "type": "response.create",
            "response": {
                "conversation": "none",
                "metadata": {"topic": "summary"},
                "instructions": "Summarise the conversation.",
                "output_modalities": ["text"],
                "input": [
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "classify this"}],
                    }
                ],
            },
        },
    )
    # A default-conversation response may run beside it.
    events += feed(model, {"type": "response.create"})
    events += drain(model)
    oob = [e for e in events if e.get("response", {}).get("metadata") == {"topic": "summary"}]
    assert [e["type"] for e in oob] == ["response.created", "response.done"]
    oob_id = oob[0]["response"]["id"]
    assert oob[-1]["response"]["conversation_id"] is None
    oob_events = [e for e in events if e.get("response_id") == oob_id]
    text = first(oob_events, "response.output_text.done")["text"]
    assert text == "You said: classify this."
    oob_item = oob[-1]["response"]["output"][0]["id"]
    assert all(e["item"]["id"] != oob_item for e in of(events, "conversation.item.added"))
    # The default response answered the conversation's unanswered text.
    default = [e for e in of(events, "response.done") if e["response"]["id"] != oob_id]
    assert default[0]["response"]["output"][0]["content"][0]["transcript"] == (
        "You said: remember the milk."
    )
    assert oob_item not in model._order
    assert len(model._order) == len(order_before) + 1
    missing = feed(model, {"type": "conversation.item.retrieve", "item_id": oob_item})
    assert missing[0]["error"]["code"] == "item_not_found"


def test_out_of_band_with_item_reference_and_cancel_by_id() -> None:
    model = _model()
    added = feed(model, user_text("first words"))
    item_id = added[0]["item"]["id"]
    feed(model, {"type": "response.create"})
    events = feed(
        model,
        {
            "type": "response.create",
            "response": {
                "conversation": "none",
                "input": [{"type": "item_reference", "id": item_id}],
            },
        },
    )
    oob_id = first(events, "response.created")["response"]["id"]
    assert oob_id != model.active_response_id
    done = feed(model, {"type": "response.cancel", "response_id": oob_id}, 0.01)
    assert types(done)[-1] == "response.done"
    assert done[-1]["response"]["id"] == oob_id
    assert model.active_response_id is not None  # the default response goes on
    bad = feed(
        model,
        {
            "type": "response.create",
            "response": {
                "conversation": "none",
                "input": [{"type": "item_reference", "id": "item_nope"}],
            },
        },
    )
    assert bad[0]["error"]["code"] == "item_not_found"
    bad = feed(model, {"type": "response.create", "response": {"conversation": "other"}})
    assert bad[0]["error"]["param"] == "response.conversation"
    busy = feed(model, {"type": "response.create"})
    assert busy[0]["error"]["code"] == "conversation_already_has_active_response"


def test_item_retrieve_delete_truncate() -> None:
    model = _model()
    added = feed(model, user_text("keep me"))
    item_id = added[0]["item"]["id"]
    got = feed(model, {"type": "conversation.item.retrieve", "item_id": item_id})
    assert got[0]["type"] == "conversation.item.retrieved"
    assert got[0]["item"]["content"][0]["text"] == "keep me"
    events = feed(model, {"type": "response.create"}) + drain(model)
    reply = first(events, "response.output_item.done")["item"]["id"]
    cut = feed(
        model,
        {
            "type": "conversation.item.truncate",
            "item_id": reply,
            "content_index": 0,
            "audio_end_ms": 5,
        },
    )
    assert cut[0]["type"] == "conversation.item.truncated"
    gone = feed(model, {"type": "conversation.item.delete", "item_id": item_id})
    assert types(gone) == ["conversation.item.deleted"]
    again = feed(model, {"type": "conversation.item.retrieve", "item_id": item_id})
    assert again[0]["error"]["code"] == "item_not_found"


def test_idle_timeout_triggers_after_the_response() -> None:
    model = _model()
    td = {"type": "server_vad", "idle_timeout_ms": 5000}
    update(model, audio={"input": {"turn_detection": td}})
    feed(model, append(silence(1000)))
    feed(model, user_text("hello"))
    feed(model, {"type": "response.create"})
    timed = advance_until(model, "input_audio_buffer.timeout_triggered")
    done_at = _at(timed, "response.done")
    fired_at, fired = next((t, e) for t, e in timed if e["type"].endswith("timeout_triggered"))
    assert fired_at == pytest.approx(done_at + 5.0)
    assert fired["audio_start_ms"] == 1000
    assert fired["audio_end_ms"] == 1000
    rest = [e for t, e in timed if t >= fired_at]
    rest += [e for _, e in advance_until(model, "response.done", fired_at)]
    assert "input_audio_buffer.committed" in types(rest)
    reply = first(rest, "response.output_audio_transcript.done")["transcript"]
    assert reply == "Are you still there?"
    # Speech disarms the idle timer; without idle_timeout_ms it never fires.
    model.append_audio(tone(300), fired_at + 1.0)
    assert model.next_deadline() is None
    plain = _model()
    feed(plain, user_text("hello"))
    feed(plain, {"type": "response.create"})
    assert "input_audio_buffer.timeout_triggered" not in types(drain(plain))


# ---------------------------------------------------------------------- honoured session fields


def test_tool_choice_none_forced_and_required() -> None:
    model = _model()
    update(model, tools=[_tool("a"), _tool("b")], tool_choice="none")
    events = ask(model, "call a")
    assert "response.function_call_arguments.done" not in types(events)
    # A function selector works in session.update and per response.
    update(model, tool_choice={"type": "function", "name": "b"})
    events = ask(model, "just talk")
    assert first(events, "response.function_call_arguments.done")["name"] == "b"
    update(model, tool_choice="auto")
    events = ask(model, "just talk", tool_choice={"type": "function", "name": "b"})
    assert first(events, "response.function_call_arguments.done")["name"] == "b"
    events = ask(model, "just talk", tool_choice="required")
    assert first(events, "response.function_call_arguments.done")["name"] == "a"
    events = ask(model, "just talk")
    assert "response.function_call_arguments.done" not in types(events)


def test_max_output_tokens_cuts_the_reply() -> None:
    model = _model()
    update(model, output_modalities=["text"])
    events = ask(model, "a rather long sentence to answer", max_output_tokens=3)
    done = first(events, "response.done")["response"]
    assert done["status"] == "incomplete"
    assert done["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
    assert first(events, "response.output_text.done")["text"] == "You said: a"
    assert done["output"][0]["status"] == "incomplete"
    update(model, max_output_tokens=4096)
    events = ask(model, "short")
    assert first(events, "response.done")["response"]["status"] == "completed"


def test_items_are_inserted_after_previous_item_id() -> None:
    model = _model()
    a = feed(model, user_text("a"))[0]["item"]["id"]
    c = feed(model, user_text("c"))[0]["item"]["id"]
    b = feed(model, {**user_text("b"), "previous_item_id": a})[0]["item"]["id"]
    z = feed(model, {**user_text("z"), "previous_item_id": "root"})[0]["item"]["id"]
    assert [i["id"] for i in model.conversation()] == [z, a, b, c]


def test_response_audio_output_overrides_format_and_voice() -> None:
    model = _model()
    events = ask(
        model,
        "hello",
        audio={"output": {"format": {"type": "audio/pcma"}, "voice": "cedar"}},
    )
    output = first(events, "response.created")["response"]["audio"]["output"]
    assert output == {"format": {"type": "audio/pcma"}, "voice": "cedar"}
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in of(events, "response.output_audio.delta")
    )
    assert abs(len(audio) - len(synthesize("You said: hello.")) // 6) <= 2
    # The session's own format is unchanged for the next response.
    events = ask(model, "hello")
    assert first(events, "response.created")["response"]["audio"]["output"]["format"] == {
        "type": "audio/pcm",
        "rate": 24000,
    }


def test_a_late_transcript_follows_the_response_it_came_before() -> None:
    """``transcript_delay_ms``: the input transcription arrives after the response has
    started, as the real API's asynchronous transcription may; the reply is the same."""
    prompt = {"transcription": {"model": "gpt-4o-transcribe"}}
    events: dict[int, list[dict[str, Any]]] = {}
    for delay in (0, 700):
        model = _model(speech_transcript="book a table", transcript_delay_ms=delay)
        update(model, audio={"input": prompt})
        out: list[dict[str, Any]] = []
        for i, chunk in enumerate(_chunks(silence(300) + tone(600) + silence(400))):
            out += feed(model, append(chunk), now=i * 0.02)
        out += drain(model, 1.3)
        events[delay] = out
    now, late = types(events[0]), types(events[700])
    done = "conversation.item.input_audio_transcription.completed"
    assert now.index(done) < now.index("response.created")
    assert late.index(done) > late.index("response.created")
    assert sorted(now) == sorted(late)  # the same events, only later
    reply = "response.output_audio_transcript.done"
    assert first(events[0], reply)["transcript"] == first(events[700], reply)["transcript"]
    assert first(events[700], done)["transcript"] == "book a table"


def _chunks(pcm: bytes, size: int = 960) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]
