"""Golden wire fixtures for both dialects and both roles (SPEC §2, codex-realtime.md §5, §11.1).

Layout: ``data/<version>/<file>.json``, each file a JSON list of cases::

    {"name": "...", "note": "optional provenance", "options": {"handoff_tool_name": "..."},
     "frame": <wire JSON object, or a raw string sent as-is>,
     "expect": {"class": "AudioOut", "fields": {...}}}
    {"name": "...", "frame": ..., "expect": {"class": "ParseFailure", "reason_contains": "..."}}

Files named ``client_*.json`` hold client frames parsed with ``parse_client_event`` (server
role); every other file holds server frames parsed with ``parse_server_event``.

Matching rules:
- ``class`` is the exact class name of the parsed event.
- Every listed field must match; every attribute *not* listed must equal its default (so a
  stray ``item_id`` is caught). ``UnknownEvent.payload`` must equal the decoded frame.
- Values compare in plain JSON form: attrs values become dicts (all fields), tuples become
  lists, ``bytes`` become ``{"len": n, "b64": "..."}`` and an ``AudioFrame`` becomes
  ``{"pcm_len", "pcm_b64", "sample_rate", "channels"}``. Nested dicts match as *subsets*.
- A ``ParseFailure``'s reason must contain ``reason_contains`` (the field it names) and its
  preview is at most 200 characters.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from duplex import protocol
from duplex.protocol import (
    AudioFrame,
    ParseFailure,
    ProtocolVersion,
    UnknownEvent,
    parse_client_event,
    parse_server_event,
)
from duplex.protocol._parse_v1 import V1_CLIENT_HANDLERS, V1_SERVER_HANDLERS
from duplex.protocol._parse_v2 import V2_CLIENT_HANDLERS, V2_SERVER_HANDLERS

DATA = Path(__file__).parent / "data"
PREVIEW_LIMIT = 200


def _load_cases() -> list[Any]:
    params: list[Any] = []
    for path in sorted(DATA.glob("v*/*.json")):
        version = path.parent.name
        role = "client" if path.name.startswith("client") else "server"
        for case in json.loads(path.read_text()):
            case_id = f"{version}/{path.stem}/{case['name']}"
            params.append(pytest.param(version, role, case, id=case_id))
    return params


CASES = _load_cases()


def _frame_text(frame: Any) -> str:
    return frame if isinstance(frame, str) else json.dumps(frame)


def _plain(value: Any) -> Any:
    if isinstance(value, AudioFrame):
        return {
            "pcm_len": len(value.pcm),
            "pcm_b64": base64.b64encode(value.pcm).decode(),
            "sample_rate": value.sample_rate,
            "channels": value.channels,
        }
    if isinstance(value, bytes):
        return {"len": len(value), "b64": base64.b64encode(value).decode()}
    if attrs.has(type(value)):
        cls: Any = type(value)
        return {a.name: _plain(getattr(value, a.name)) for a in attrs.fields(cls)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _matches(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    # JSON has no int/float distinction for whole numbers, but bool is never a number.
    return type(expected) is bool is type(actual) or (
        type(expected) is not bool and type(actual) is not bool and expected == actual
    )


def _parse(version: str, role: str, case: dict[str, Any]) -> object:
    data = _frame_text(case["frame"])
    if role == "client":
        assert "options" not in case, "client frames take no parser options"
        return parse_client_event(data, version)
    return parse_server_event(data, version, **case.get("options", {}))


@pytest.mark.parametrize(("version", "role", "case"), CASES)
def test_golden_wire_fixture_parses_to_expected_event(
    version: str, role: str, case: dict[str, Any]
) -> None:
    event = _parse(version, role, case)
    expect = case["expect"]
    assert type(event).__name__ == expect["class"], event

    if isinstance(event, ParseFailure):
        assert expect["reason_contains"] in event.reason, event.reason
        assert len(event.preview) <= PREVIEW_LIMIT
        return

    fields: dict[str, Any] = expect.get("fields", {})
    cls: Any = type(event)
    names = {a.name for a in attrs.fields(cls)}
    assert set(fields) <= names, f"fixture lists unknown fields {set(fields) - names}"
    for attribute in attrs.fields(cls):
        actual = getattr(event, attribute.name)
        if attribute.name in fields:
            expected = fields[attribute.name]
            assert _matches(expected, _plain(actual)), (attribute.name, expected, actual)
        elif isinstance(event, UnknownEvent) and attribute.name == "payload":
            assert actual == json.loads(_frame_text(case["frame"]))
        else:
            assert attribute.default is not attrs.NOTHING, (
                f"fixture must list required field {attribute.name!r}"
            )
            default = attribute.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()
            assert actual == default, (attribute.name, actual)


def _fixture_types(version: str, role: str, *, parsed_ok: bool) -> set[str]:
    found: set[str] = set()
    for path in (DATA / version).glob("*.json"):
        if path.name.startswith("client") != (role == "client"):
            continue
        for case in json.loads(path.read_text()):
            frame = case["frame"]
            is_failure = case["expect"]["class"] == "ParseFailure"
            typed = isinstance(frame, dict) and isinstance(frame.get("type"), str)
            if typed and is_failure != parsed_ok:
                found.add(frame["type"])
    return found


TABLES: list[Any] = [
    pytest.param("v1", "server", V1_SERVER_HANDLERS, id="v1-server"),
    pytest.param("v2", "server", V2_SERVER_HANDLERS, id="v2-server"),
    pytest.param("v1", "client", V1_CLIENT_HANDLERS, id="v1-client"),
    pytest.param("v2", "client", V2_CLIENT_HANDLERS, id="v2-client"),
]


@pytest.mark.parametrize(("version", "role", "table"), TABLES)
def test_fixtures_parse_every_mapped_event_type_of_the_dialect(
    version: str, role: str, table: dict[str, Any]
) -> None:
    covered = _fixture_types(version, role, parsed_ok=True)
    missing = sorted(set(table) - covered)
    assert not missing, f"no successful {version} {role} fixture for {missing}"


@pytest.mark.parametrize(("version", "role", "table"), TABLES)
def test_fixtures_cover_a_required_field_miss_for_every_type_with_required_fields(
    version: str, role: str, table: dict[str, Any]
) -> None:
    # A type has required fields iff its bare frame does not parse.
    parse = parse_client_event if role == "client" else parse_server_event
    strict = {
        kind
        for kind in table
        if isinstance(parse(json.dumps({"type": kind}), version), ParseFailure)
    }
    covered = _fixture_types(version, role, parsed_ok=False)
    missing = sorted(strict - covered)
    assert not missing, f"no {version} {role} ParseFailure fixture for {missing}"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_unknown_fixture_types_are_really_unmapped_in_the_dialect(version: str) -> None:
    tables: dict[tuple[str, str], dict[str, Any]] = {
        ("v1", "server"): V1_SERVER_HANDLERS,
        ("v2", "server"): V2_SERVER_HANDLERS,
        ("v1", "client"): V1_CLIENT_HANDLERS,
        ("v2", "client"): V2_CLIENT_HANDLERS,
    }
    for path in (DATA / version).glob("*.json"):
        role = "client" if path.name.startswith("client") else "server"
        for case in json.loads(path.read_text()):
            if case["expect"]["class"] == "UnknownEvent":
                assert case["frame"]["type"] not in tables[(version, role)], case["name"]


def test_fixture_directories_match_protocol_versions() -> None:
    assert {p.name for p in DATA.iterdir() if p.is_dir()} == {v.value for v in ProtocolVersion}
    assert protocol.parse_server_event is parse_server_event


# codex-realtime.md §11.1 parser tests, mirrored by name (case name or note) in the fixtures.
CODEX_PARSER_TESTS = [
    "parse_session_updated_event",
    "parse_audio_delta_event",
    "parse_conversation_item_added_event",
    "parse_conversation_item_done_event",
    "parse_handoff_requested_event",
    "parse_input_transcript_delta_event",
    "parse_v1_input_audio_transcription_delta_event",
    "parse_v1_input_audio_transcription_completed_event",
    "parse_output_transcript_delta_event",
    "parse_v1_output_audio_transcript_delta_event",
    "parse_v1_output_audio_transcript_done_event",
    "parse_v1_item_done_output_text_event",
    "parse_realtime_v2_handoff_tool_call_event",
    "parse_realtime_v2_noop_tool_call_event",
    "parse_realtime_v2_input_audio_transcription_delta_event",
    "parse_realtime_v2_output_audio_transcript_done_event",
    "parse_realtime_v2_output_text_done_event",
    "parse_realtime_v2_conversation_item_created_event",
    "parse_realtime_v2_item_done_output_text_event",
    "parse_realtime_v2_output_audio_delta_defaults_audio_shape",
    "parse_realtime_v2_response_audio_delta_with_item_id",
    "parse_realtime_v2_speech_started_event",
    "parse_realtime_v2_response_cancelled_event",
    "parse_realtime_v2_response_created_event",
    "parse_realtime_v2_response_done_event",
]


@pytest.mark.parametrize("codex_test", CODEX_PARSER_TESTS)
def test_fixtures_mirror_the_codex_parser_test(codex_test: str) -> None:
    mentions = [
        f"{path.parent.name}/{case['name']}"
        for path in DATA.glob("v*/*.json")
        for case in json.loads(path.read_text())
        if codex_test == case["name"] or codex_test in case.get("note", "")
    ]
    assert mentions, f"no fixture mirrors codex {codex_test}"
