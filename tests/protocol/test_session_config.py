"""The host's ``SessionConfig`` (SPEC §3.3) and the GA ``session.update`` built from it: local
validation with clear errors, every field on the wire, "off" as an explicit null, a type
switch replacing the whole nested object, and fidelity to the official ``openai`` models."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from duplex.protocol import (
    CustomVoice,
    FunctionTool,
    InputTranscription,
    LocalProtocolError,
    McpTool,
    PromptReference,
    Reasoning,
    SemanticVad,
    ServerVad,
    SessionConfig,
    SessionUpdate,
    Tracing,
    client_event_payload,
    encode_client_event,
    parse_client_event,
    session_payload,
    session_start_event,
    session_update_event,
    validate_tools,
)

realtime = pytest.importorskip("openai.types.realtime")

CLOCK = FunctionTool(
    "get_time",
    "The current time in a time zone.",
    {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
)

DOCS = McpTool(
    server_label="docs",
    server_url="https://mcp.example.test/mcp",
    allowed_tools=("search",),
    require_approval={"never": {"tool_names": ["search"]}},
    authorization="secret-token",
    headers={"X-Team": "voice"},
)


def official_session(payload: dict[str, Any]) -> None:
    """Validate against the official request model of the session's type."""
    model = (
        realtime.RealtimeTranscriptionSessionCreateRequest
        if payload["type"] == "transcription"
        else realtime.RealtimeSessionCreateRequest
    )
    model.model_validate(payload)


# --- defaults and the handshake ---------------------------------------------------------------


def test_default_config_builds_the_session_duplex_always_opened() -> None:
    legacy = client_event_payload(session_start_event("v2", instructions="be brief"), "v2")
    assert session_payload(SessionConfig(), instructions="be brief") == legacy["session"]


def test_session_start_event_takes_a_session_config_and_tools() -> None:
    config = SessionConfig(voice="cedar", turn_detection=None)
    event = session_start_event("v2", instructions="x", session=config, tools=[CLOCK])
    assert event == session_update_event(config, instructions="x", tools=[CLOCK])


def test_v1_rejects_session_configuration_and_tools() -> None:
    with pytest.raises(LocalProtocolError, match="v1 dialect carries no session"):
        session_start_event("v1", session=SessionConfig())
    with pytest.raises(LocalProtocolError, match="v1 dialect carries no session"):
        session_start_event("v1", tools=[CLOCK])


# --- every field on the wire -------------------------------------------------------------------


def test_every_field_reaches_the_wire_and_validates_against_the_official_model() -> None:
    config = SessionConfig(
        output_modalities=("text",),
        voice=CustomVoice("voice_123"),
        speed=1.2,
        turn_detection=SemanticVad(eagerness="high"),
        noise_reduction="far_field",
        transcription=InputTranscription(model="whisper-1", language="de", prompt="names"),
        max_output_tokens=512,
        tool_choice="get_time",
        truncation=0.8,
        tracing=Tracing(workflow_name="support", group_id="g1", metadata={"k": "v"}),
        prompt=PromptReference(id="pmpt_1", version="3", variables={"city": "Oslo"}),
        include=["item.input_audio_transcription.logprobs"],
        reasoning=Reasoning("low"),
        extra={"future_field": {"on": True}},
    )
    payload = session_payload(config, instructions="hi", tools=[CLOCK], handoff_tool_name=None)
    audio_in = payload["audio"]["input"]
    assert payload["output_modalities"] == ["text"]
    assert payload["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": {"id": "voice_123"},
        "speed": 1.2,
    }
    assert audio_in["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": "high",
        "create_response": True,
        "interrupt_response": True,
    }
    assert audio_in["noise_reduction"] == {"type": "far_field"}
    assert audio_in["transcription"] == {"model": "whisper-1", "language": "de", "prompt": "names"}
    assert payload["max_output_tokens"] == 512
    assert payload["tool_choice"] == {"type": "function", "name": "get_time"}
    assert payload["truncation"] == {"type": "retention_ratio", "retention_ratio": 0.8}
    assert payload["tracing"] == {
        "workflow_name": "support",
        "group_id": "g1",
        "metadata": {"k": "v"},
    }
    assert payload["prompt"] == {"id": "pmpt_1", "version": "3", "variables": {"city": "Oslo"}}
    assert payload["include"] == ["item.input_audio_transcription.logprobs"]
    assert payload["reasoning"] == {"effort": "low"}
    assert payload["future_field"] == {"on": True}
    assert [t["name"] for t in payload["tools"]] == ["remain_silent", "get_time"]
    del payload["future_field"], payload["reasoning"]  # newer than the installed models
    official_session(payload)


def test_nested_extra_adds_its_fields_and_keeps_the_typed_ones() -> None:
    """Regression (review): ``extra={"audio": …}`` replaced the whole ``audio`` object, so
    setting one unmodelled transcription field wiped the format, VAD and voice."""
    config = SessionConfig(
        voice="cedar",
        transcription=InputTranscription(model="gpt-4o-transcribe", language="de"),
        extra={
            "audio": {"input": {"transcription": {"delay": "low", "language": "fr"}}},
            "parallel_tool_calls": False,
        },
    )
    payload = session_payload(config)
    audio_in = payload["audio"]["input"]
    assert audio_in["transcription"] == {
        "model": "gpt-4o-transcribe",
        "language": "fr",  # a clash of values: extra wins
        "delay": "low",
    }
    assert audio_in["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio_in["turn_detection"]["type"] == "server_vad"
    assert payload["audio"]["output"]["voice"] == "cedar"
    assert payload["parallel_tool_calls"] is False
    assert config.extra["audio"] == {
        "input": {"transcription": {"delay": "low", "language": "fr"}}
    }  # the host's mapping is not changed by the merge


def test_nested_extra_of_another_type_replaces_the_object() -> None:
    """An object whose ``type`` changes is replaced whole, as the server does: semantic VAD
    over the typed server VAD keeps none of its silence settings."""
    config = SessionConfig(
        extra={"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "low"}}}}
    )
    audio_in = session_payload(config)["audio"]["input"]
    assert audio_in["turn_detection"] == {"type": "semantic_vad", "eagerness": "low"}
    assert audio_in["format"] == {"type": "audio/pcm", "rate": 24000}  # the rest kept


def test_off_is_an_explicit_null_not_an_absent_field() -> None:
    config = SessionConfig(turn_detection=None, noise_reduction=None, transcription=None)
    audio_in = session_payload(config)["audio"]["input"]
    assert audio_in["turn_detection"] is None  # manual turns: commit_audio() ends a turn
    assert audio_in["noise_reduction"] is None
    assert audio_in["transcription"] is None
    official_session(session_payload(config))


def test_switching_vad_type_sends_the_whole_new_object() -> None:
    server = session_payload(SessionConfig(turn_detection=ServerVad(silence_duration_ms=800)))
    semantic = session_payload(SessionConfig(turn_detection=SemanticVad(eagerness="low")))
    assert server["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 800
    assert semantic["audio"]["input"]["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": "low",
        "create_response": True,
        "interrupt_response": True,
    }


@pytest.mark.parametrize(("name", "wire"), [("pcmu", "audio/pcmu"), ("pcma", "audio/pcma")])
def test_g711_format_applies_to_both_directions(name: str, wire: str) -> None:
    payload = session_payload(audio_format=name)
    assert payload["audio"]["input"]["format"] == {"type": wire}
    assert payload["audio"]["output"]["format"] == {"type": wire}
    official_session(payload)


def test_transcription_session_carries_only_the_input_side() -> None:
    config = SessionConfig(
        transcription=InputTranscription(model="gpt-4o-transcribe", language="fr")
    )
    payload = session_payload(config, mode="transcription")
    assert set(payload) == {"type", "audio"}
    assert set(payload["audio"]) == {"input"}
    assert "create_response" not in payload["audio"]["input"]["turn_detection"]
    official_session(payload)
    with pytest.raises(LocalProtocolError, match="no tools"):
        session_payload(config, mode="transcription", tools=[CLOCK])


def test_session_update_round_trips_through_the_server_role_parser_with_its_nulls() -> None:
    config = SessionConfig(turn_detection=None, tool_choice="required", max_output_tokens="inf")
    event = session_update_event(config, tools=[CLOCK], instructions="x")
    parsed = parse_client_event(encode_client_event(event, "v2"), "v2")
    assert isinstance(parsed, SessionUpdate)
    assert json.loads(encode_client_event(parsed, "v2")) == json.loads(
        encode_client_event(event, "v2")
    )
    assert parsed.session.unknown_fields == ()


def test_an_mcp_server_reaches_the_wire_beside_the_functions_and_round_trips() -> None:
    payload = session_payload(SessionConfig(), tools=[CLOCK, DOCS], handoff_tool_name=None)
    assert payload["tools"][-1] == {
        "type": "mcp",
        "server_label": "docs",
        "server_url": "https://mcp.example.test/mcp",
        "allowed_tools": ["search"],
        "require_approval": {"never": {"tool_names": ["search"]}},
        "authorization": "secret-token",
        "headers": {"X-Team": "voice"},
    }
    official_session(json.loads(json.dumps(payload)))
    event = session_update_event(SessionConfig(), tools=[CLOCK, DOCS])
    wire = encode_client_event(event, "v2")
    parsed = parse_client_event(wire, "v2")
    assert isinstance(parsed, SessionUpdate)
    assert json.loads(encode_client_event(parsed, "v2")) == json.loads(wire)
    assert parsed.session.tools is not None
    assert isinstance(parsed.session.tools[-1], McpTool)


def test_mcp_credentials_stay_out_of_repr() -> None:
    assert "secret-token" not in repr(DOCS)
    assert "voice" not in repr(DOCS)
    assert "docs" in repr(DOCS)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output_modalities": ("audio", "text")}, "output_modalities"),
        ({"voice": "juniper"}, "not a built-in voice"),
        ({"voice": {"name": "x"}}, "voice id"),
        ({"speed": 2.0}, "speed"),
        ({"noise_reduction": "studio"}, "noise_reduction"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"max_output_tokens": 4097}, "max_output_tokens"),  # the API's limit is 4096
        ({"tool_choice": "call me maybe"}, "tool_choice"),
        ({"truncation": 1.5}, "truncation"),
        ({"truncation": "sometimes"}, "truncation"),
        ({"tracing": "on"}, "tracing"),
        ({"include": ["ok", ""]}, "include"),
        ({"extra": {"type": "realtime"}}, "must not set 'type'"),
        ({"turn_detection": "server_vad"}, "turn_detection"),
    ],
)
def test_invalid_session_values_fail_locally_with_the_field_named(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        SessionConfig(**kwargs)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ServerVad(threshold=1.5), "threshold"),
        (lambda: ServerVad(silence_duration_ms=-1), "silence_duration_ms"),
        (lambda: SemanticVad(eagerness="eager"), "eagerness"),
        (lambda: PromptReference(id=""), "prompt.id"),
        (lambda: Reasoning("max"), "reasoning.effort"),
        (lambda: CustomVoice(""), "voice id"),
    ],
)
def test_invalid_nested_values_fail_locally(build: Any, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        build()


def test_a_dict_voice_is_a_custom_voice() -> None:
    assert SessionConfig(voice={"id": "voice_9"}).voice == CustomVoice("voice_9")


@pytest.mark.parametrize(
    ("tools", "kwargs", "message"),
    [
        ([FunctionTool("bad name")], {}, "1-64 characters"),
        ([CLOCK, CLOCK], {}, "declared twice"),
        ([FunctionTool("codex")], {}, "taken by the handoff"),
        ([FunctionTool("f", "d", {"type": "array"})], {}, "JSON Schema object"),
        ([], {"handoff_tool_name": ""}, "handoff tool name"),
        ([], {"silence_tool_name": "two words"}, "silence tool name"),
        (["get_time"], {}, "FunctionTool or McpTool"),
        ([DOCS, DOCS], {}, "server_label 'docs' is declared twice"),
        ([McpTool(server_label="a b", server_url="https://x")], {}, "server_label"),
        ([McpTool(server_label="a")], {}, "exactly one of server_url and connector_id"),
        ([McpTool(server_label="a", server_url="ftp://x")], {}, "http"),
        (
            [McpTool(server_label="a", server_url="https://x", require_approval="sometimes")],
            {},
            "require_approval",
        ),
        (
            [McpTool(server_label="a", server_url="https://x", allowed_tools="search")],
            {},
            "allowed_tools",
        ),
        (
            [McpTool(server_label="a", server_url="https://x", headers={"k": 1})],
            {},
            "headers",
        ),
    ],
)
def test_invalid_tools_fail_locally(tools: list[Any], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message) as raised:
        validate_tools(tools, **kwargs)
    assert "secret-token" not in str(raised.value)


def test_handoff_tool_name_none_advertises_no_handoff_tool() -> None:
    names = [
        t["name"] for t in session_payload(handoff_tool_name=None, silence_tool_name=None)["tools"]
    ]
    assert names == []
    assert validate_tools([FunctionTool("codex")], handoff_tool_name=None) == (
        FunctionTool("codex"),
    )


# --- property: whatever a host can configure, a GA server parses back whole -------------------


names = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
small_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
vads = (
    st.none()
    | st.builds(
        ServerVad,
        threshold=st.none() | st.floats(0.0, 1.0),
        prefix_padding_ms=st.none() | st.integers(0, 5000),
        silence_duration_ms=st.none() | st.integers(0, 5000),
        idle_timeout_ms=st.none() | st.integers(0, 60_000),
        create_response=st.none() | st.booleans(),
        interrupt_response=st.none() | st.booleans(),
    )
    | st.builds(SemanticVad, eagerness=st.sampled_from(["low", "medium", "high", "auto"]))
)
configs = st.builds(
    SessionConfig,
    output_modalities=st.sampled_from([("audio",), ("text",)]),
    voice=st.none() | st.sampled_from(["marin", "cedar", "alloy"]) | names.map(CustomVoice),
    speed=st.none() | st.floats(0.25, 1.5),
    turn_detection=vads,
    noise_reduction=st.sampled_from([None, "near_field", "far_field"]),
    transcription=st.none()
    | st.builds(
        InputTranscription,
        model=names,
        language=st.none() | st.sampled_from(["en", "de"]),
        prompt=st.none() | small_text,
    ),
    max_output_tokens=st.none() | st.integers(1, 4096) | st.just("inf"),
    tool_choice=st.none() | st.sampled_from(["auto", "none", "required"]),
    truncation=st.none() | st.sampled_from(["auto", "disabled"]) | st.floats(0.01, 1.0),
    tracing=st.none() | st.just("auto") | st.builds(Tracing, workflow_name=small_text),
    prompt=st.none() | st.builds(PromptReference, id=names, version=st.none() | names),
    include=st.none() | st.just(("item.input_audio_transcription.logprobs",)),
    reasoning=st.none() | st.builds(Reasoning, st.sampled_from(["low", "high"])),
)
tool_lists = st.lists(
    st.builds(
        FunctionTool, names.filter(lambda n: n not in ("codex", "remain_silent")), small_text
    ),
    max_size=3,
    unique_by=lambda t: t.name,
)


@settings(max_examples=60)
@given(
    config=configs,
    tools=tool_lists,
    mode=st.sampled_from(["conversational", "transcription"]),
    audio_format=st.sampled_from(["pcm16", "pcmu", "pcma"]),
)
def test_any_valid_config_reaches_a_ga_server_whole(
    config: SessionConfig, tools: list[FunctionTool], mode: str, audio_format: str
) -> None:
    if mode == "transcription":
        tools = []
    event = session_update_event(
        config,
        mode=mode,
        tools=tools,
        audio_format=audio_format,
        instructions=None if mode == "transcription" else "hi",
    )
    text = encode_client_event(event, "v2")
    parsed = parse_client_event(text, "v2")
    assert isinstance(parsed, SessionUpdate)
    assert parsed.session.unknown_fields == ()
    assert json.loads(encode_client_event(parsed, "v2")) == json.loads(text)
    payload = json.loads(text)["session"]
    payload.pop("reasoning", None)  # newer than the installed models
    official_session(payload)
