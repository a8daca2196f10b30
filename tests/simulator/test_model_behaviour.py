"""The scripted model's real-server behaviours, driven by raw client JSON: typed nested objects
in ``session.update``, G.711 audio, function calls for declared tools, turn control,
out-of-band responses, history. Every v2 event is also validated against the ``openai``
package's ``RealtimeServerEvent`` models."""

from __future__ import annotations

import json
from typing import Any

import pydantic
from openai.types.realtime import RealtimeServerEvent

from duplex.protocol import ProtocolVersion, SessionMode
from duplex.simulator import IdGenerator, ScriptedModel, SimulatorConfig
from duplex.simulator._wire import ClientFrame, decode_client_frame

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
