"""Every GA server event type is typed (SPEC §2, issue 13): the official ``openai`` package's
``RealtimeServerEvent`` union is the list, and what duplex encodes in the server role (the
simulator's output) validates against the same official models."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import pytest

from duplex.protocol import (
    ParseFailure,
    ServerEvent,
    UnknownEvent,
    encode_server_event,
    parse_server_event,
    server_event_parser,
)

realtime = pytest.importorskip("openai.types.realtime")
pydantic = pytest.importorskip("pydantic")

DATA = Path(__file__).parent / "data" / "v2"
GA_FIXTURES = DATA / "server_ga_events.json"


def union_members(annotation: Any) -> list[Any]:
    """The classes of a (possibly Annotated, possibly nested) Union."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return union_members(typing.get_args(annotation)[0])
    if origin is typing.Union:
        return [m for arg in typing.get_args(annotation) for m in union_members(arg)]
    return [annotation]


def wire_tag(model: Any) -> str:
    (tag,) = typing.get_args(model.model_fields["type"].annotation)
    return str(tag)


GA_TAGS = sorted(wire_tag(m) for m in union_members(realtime.RealtimeServerEvent))


def fixture_frames() -> dict[str, list[dict[str, Any]]]:
    """Successful v2 server fixtures by wire type."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in DATA.glob("server_*.json"):
        for case in json.loads(path.read_text()):
            frame = case["frame"]
            if isinstance(frame, dict) and case["expect"]["class"] not in (
                "ParseFailure",
                "UnknownEvent",
            ):
                found.setdefault(str(frame.get("type")), []).append(case)
    return found


FRAMES = fixture_frames()


def test_the_official_union_is_the_size_the_spec_names() -> None:
    assert len(GA_TAGS) >= 40
    assert len(set(GA_TAGS)) == len(GA_TAGS)


@pytest.mark.parametrize("tag", GA_TAGS)
def test_every_official_server_event_type_parses_to_a_typed_event(tag: str) -> None:
    assert tag in server_event_parser("v2").event_types
    cases = FRAMES.get(tag)
    assert cases, f"no golden v2 fixture for {tag}"
    for case in cases:
        event = parse_server_event(json.dumps(case["frame"]), "v2", **case.get("options", {}))
        assert isinstance(event, ServerEvent)
        assert not isinstance(event, UnknownEvent | ParseFailure), event


def ga_cases() -> list[Any]:
    return [
        pytest.param(case, id=case["name"])
        for case in json.loads(GA_FIXTURES.read_text())
        if case["expect"]["class"] != "ParseFailure" and "options" not in case
    ]


@pytest.mark.parametrize("case", ga_cases())
def test_server_role_encoding_validates_against_the_official_models(case: dict[str, Any]) -> None:
    adapter = pydantic.TypeAdapter(realtime.RealtimeServerEvent)
    event = parse_server_event(json.dumps(case["frame"]), "v2")
    text = encode_server_event(event, "v2")
    # The simulator stamps event_id on every payload before dumping (it owns the ids).
    payload = {"event_id": "evt_test", **json.loads(text)}
    if payload["type"] != "response.audio.done":  # beta alias: parsed, never encoded
        adapter.validate_python(payload)
    assert parse_server_event(text, "v2") == event


def test_ga_fixture_frames_are_valid_official_events() -> None:
    # The generated fixtures copy the official shapes; the beta alias and the frames that
    # exercise leniency (a missing field, an extra one) are the deliberate exceptions.
    adapter = pydantic.TypeAdapter(realtime.RealtimeServerEvent)
    lenient = {
        "beta_audio_done_alias_is_output_audio_done",
        "function_call_of_the_handoff_tool_is_a_tool_call_when_handoff_is_disabled",
        "tool_call_reads_a_response_id_beside_the_item",
        "tool_call_without_arguments_has_empty_arguments",
        "unknown_fields_of_a_ga_event_are_ignored",
    }
    for case in json.loads(GA_FIXTURES.read_text()):
        if case["expect"]["class"] != "ParseFailure" and case["name"] not in lenient:
            adapter.validate_python(case["frame"])


def test_detail_events_are_typed_ga_events_a_host_rarely_acts_on() -> None:
    from duplex.protocol import (
        DETAIL_EVENTS,
        ContentPartDone,
        InputAudioTimeoutTriggered,
        OutputAudioBufferStopped,
        OutputItemDone,
    )

    assert {OutputItemDone, ContentPartDone} <= DETAIL_EVENTS
    assert not {OutputAudioBufferStopped, InputAudioTimeoutTriggered} & DETAIL_EVENTS
