"""Client-side builders and encoders: the exact wire JSON of SPEC §2 / codex-realtime.md §4, and
``LocalProtocolError`` for every argument a dialect cannot carry."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from duplex.protocol import (
    AGENT_FINAL_MESSAGE_PREFIX,
    BACKEND_PREFIX,
    STEERING_ACK_TEXT,
    AudioFrame,
    AudioOut,
    ConversationItemDelete,
    ConversationItemTruncate,
    Error,
    HandoffAppend,
    InputAudioBufferAppend,
    LocalProtocolError,
    NoopRequested,
    ParseFailure,
    ProtocolError,
    ProtocolVersion,
    SessionCreate,
    SessionUpdate,
    WireSession,
    audio_append_text,
    call_session_payload,
    encode_client_event,
    encode_server_event,
    handoff_output_events,
    noop_reply_event,
    parse_client_event,
    prompt_update_event,
    response_create_event,
    session_start_event,
    steering_ack_event,
    text_item_event,
    truncate_event,
)
from duplex.protocol._client_events import ClientEvent

VERSIONS = ["v1", "v2"]
PCM_FORMAT = {"type": "audio/pcm", "rate": 24000}


def wire(event: ClientEvent, version: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(encode_client_event(event, version))
    return decoded


def tool(session: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [t for t in session["tools"] if t["name"] == name]
    assert len(matches) == 1, session["tools"]
    found: dict[str, Any] = matches[0]
    return found


# --- v1 handshake --------------------------------------------------------------------------


def test_v1_session_start_is_session_create_with_quicksilver_shape() -> None:
    event = session_start_event("v1", instructions="backend prompt", conversation_id="conv_1")
    assert isinstance(event, SessionCreate)
    assert wire(event, "v1") == {
        "type": "session.create",
        "session": {
            "type": "quicksilver",
            "instructions": "backend prompt",
            "conversation_id": "conv_1",
            "audio": {"input": {"format": PCM_FORMAT}, "output": {"voice": "cove"}},
        },
    }


def test_v1_session_start_omits_conversation_id_when_not_given() -> None:
    session = wire(session_start_event("v1", instructions="p"), "v1")["session"]
    assert "conversation_id" not in session
    assert "tools" not in session
    assert "tool_choice" not in session
    assert "turn_detection" not in session["audio"]["input"]
    assert "format" not in session["audio"]["output"]


def test_v1_session_start_accepts_a_v1_voice() -> None:
    session = wire(session_start_event("v1", voice="breeze"), "v1")["session"]
    assert session["audio"]["output"] == {"voice": "breeze"}


def test_v1_transcription_session_uses_type_transcription_without_instructions_or_output() -> None:
    event = session_start_event(
        "v1", mode="transcription", instructions="ignored", conversation_id="conv_t"
    )
    assert wire(event, "v1") == {
        "type": "session.create",
        "session": {
            "type": "transcription",
            "conversation_id": "conv_t",
            "audio": {"input": {"format": PCM_FORMAT}},
        },
    }


# --- v2 handshake --------------------------------------------------------------------------


def test_v2_conversational_session_start_is_session_update_with_ga_shape() -> None:
    event = session_start_event(ProtocolVersion.V2, instructions="backend prompt")
    assert isinstance(event, SessionUpdate)
    decoded = wire(event, "v2")
    assert decoded["type"] == "session.update"
    session = decoded["session"]
    assert set(session) == {
        "type",
        "instructions",
        "output_modalities",
        "audio",
        "tools",
        "tool_choice",
    }
    assert session["type"] == "realtime"
    assert session["instructions"] == "backend prompt"
    assert session["output_modalities"] == ["audio"]
    assert session["audio"] == {
        "input": {
            "format": PCM_FORMAT,
            "noise_reduction": {"type": "near_field"},
            "transcription": {"model": "gpt-4o-mini-transcribe"},
            "turn_detection": {
                "type": "server_vad",
                "interrupt_response": True,
                "create_response": True,
                "silence_duration_ms": 500,
            },
        },
        "output": {"format": PCM_FORMAT, "voice": "marin"},
    }
    assert session["tool_choice"] == "auto"


def test_v2_session_advertises_handoff_tool_named_codex_with_one_string_prompt() -> None:
    session = wire(session_start_event("v2"), "v2")["session"]
    handoff = tool(session, "codex")
    assert handoff["type"] == "function"
    assert isinstance(handoff["description"], str)
    assert handoff["description"]
    params = handoff["parameters"]
    assert params["type"] == "object"
    assert list(params["properties"]) == ["prompt"]
    assert params["properties"]["prompt"]["type"] == "string"
    assert params["required"] == ["prompt"]
    assert params["additionalProperties"] is False


def test_v2_session_advertises_remain_silent_tool_by_default() -> None:
    session = wire(session_start_event("v2"), "v2")["session"]
    assert [t["name"] for t in session["tools"]] == ["codex", "remain_silent"]
    silent = tool(session, "remain_silent")
    assert silent["type"] == "function"
    assert silent["parameters"] == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }


def test_v2_session_without_silence_tool_when_silence_tool_name_is_none() -> None:
    session = wire(session_start_event("v2", silence_tool_name=None), "v2")["session"]
    assert [t["name"] for t in session["tools"]] == ["codex"]
    assert session["tool_choice"] == "auto"


def test_v2_session_uses_custom_handoff_and_silence_tool_names() -> None:
    event = session_start_event(
        "v2", handoff_tool_name="background_agent", silence_tool_name="hush"
    )
    session = wire(event, "v2")["session"]
    assert [t["name"] for t in session["tools"]] == ["background_agent", "hush"]
    assert list(tool(session, "background_agent")["parameters"]["properties"]) == ["prompt"]


def test_v2_text_output_modality_still_sends_audio_output_block() -> None:
    session = wire(session_start_event("v2", output_modality="text"), "v2")["session"]
    assert session["output_modalities"] == ["text"]
    assert session["audio"]["output"]["voice"] == "marin"


def test_v2_session_start_accepts_a_v2_voice() -> None:
    session = wire(session_start_event("v2", voice="cedar"), "v2")["session"]
    assert session["audio"]["output"]["voice"] == "cedar"


def test_v2_transcription_session_omits_instructions_output_tools_and_turn_detection() -> None:
    event = session_start_event("v2", mode="transcription", instructions="ignored")
    assert wire(event, "v2") == {
        "type": "session.update",
        "session": {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": PCM_FORMAT,
                    "transcription": {"model": "gpt-4o-mini-transcribe"},
                }
            },
        },
    }


def test_v2_transcription_session_uses_custom_transcription_model() -> None:
    event = session_start_event("v2", mode="transcription", transcription_model="whisper-1")
    session = wire(event, "v2")["session"]
    assert session["audio"]["input"]["transcription"] == {"model": "whisper-1"}


@pytest.mark.parametrize("version", VERSIONS)
def test_session_start_parses_back_as_the_same_client_event(version: str) -> None:
    # The simulator (server role) reads exactly what the client builder sends.
    event = session_start_event(version, instructions="p")
    assert parse_client_event(encode_client_event(event, version), version) == event


# --- call session (WebRTC) -----------------------------------------------------------------


def test_call_session_payload_v1_matches_codex_core_expectation() -> None:
    event = session_start_event("v1", instructions="backend prompt\n\nstartup context")
    assert call_session_payload(event, "realtime-test-model") == {
        "audio": {"input": {"format": PCM_FORMAT}, "output": {"voice": "cove"}},
        "type": "quicksilver",
        "model": "realtime-test-model",
        "instructions": "backend prompt\n\nstartup context",
    }


def test_call_session_payload_v2_is_the_handshake_session_plus_model() -> None:
    event = session_start_event("v2", instructions="p")
    payload = call_session_payload(event, "gpt-realtime")
    assert payload == {**wire(event, "v2")["session"], "model": "gpt-realtime"}


def test_call_session_payload_without_model_omits_model() -> None:
    event = session_start_event("v2")
    assert "model" not in call_session_payload(event, None)


# --- prompt updates ------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "session_type"), [("v1", "quicksilver"), ("v2", "realtime")])
def test_prompt_update_is_session_update_with_only_type_and_instructions(
    version: str, session_type: str
) -> None:
    event = prompt_update_event(version, "new prompt")
    assert wire(event, version) == {
        "type": "session.update",
        "session": {"type": session_type, "instructions": "new prompt"},
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_prompt_update_in_transcription_mode_is_rejected(version: str) -> None:
    with pytest.raises(LocalProtocolError, match="instructions"):
        prompt_update_event(version, "x", mode="transcription")


# --- audio ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_audio_append_encodes_only_base64_audio(version: str) -> None:
    pcm = bytes(range(256)) * 4
    assert wire(InputAudioBufferAppend(audio=pcm), version) == {
        "type": "input_audio_buffer.append",
        "audio": base64.b64encode(pcm).decode(),
    }


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("pcm", [b"", b"\x01\x02", bytes(range(256)) * 19])
def test_audio_append_text_decodes_to_the_same_json_as_the_encoded_event(
    version: str, pcm: bytes
) -> None:
    assert json.loads(audio_append_text(pcm)) == wire(InputAudioBufferAppend(audio=pcm), version)


@pytest.mark.parametrize("version", VERSIONS)
def test_audio_append_text_parses_back_to_the_pcm(version: str) -> None:
    pcm = b"\x10\x00\xf0\xff" * 240
    parsed = parse_client_event(audio_append_text(pcm), version)
    assert parsed == InputAudioBufferAppend(audio=pcm)


# --- text items ----------------------------------------------------------------------------


def test_v1_text_item_is_unprefixed_user_input_text() -> None:
    assert wire(text_item_event("v1", "hello agent"), "v1") == {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hello agent"}],
        },
    }


def test_v1_text_item_ignores_user_prefix_request() -> None:
    item = wire(text_item_event("v1", "hi", user_prefix=True), "v1")["item"]
    assert item["content"] == [{"type": "input_text", "text": "hi"}]


def test_v2_text_item_is_unprefixed_by_default() -> None:
    item = wire(text_item_event("v2", "hello"), "v2")["item"]
    assert item == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "hello"}],
    }


def test_v2_text_item_has_user_prefix_only_when_asked() -> None:
    item = wire(text_item_event("v2", "hello", user_prefix=True), "v2")["item"]
    assert item["content"] == [{"type": "input_text", "text": "[USER] hello"}]


def test_v2_text_item_user_prefix_is_not_doubled_or_added_to_empty_text() -> None:
    again = wire(text_item_event("v2", "[USER] hi", user_prefix=True), "v2")["item"]
    assert again["content"][0]["text"] == "[USER] hi"
    empty = wire(text_item_event("v2", "", user_prefix=True), "v2")["item"]
    assert empty["content"][0]["text"] == ""


# --- handoff replies -----------------------------------------------------------------------


def test_v1_final_handoff_reply_is_handoff_append_with_agent_final_message_prefix() -> None:
    events = handoff_output_events("v1", "handoff_1", "hello from background agent", final=True)
    assert [wire(e, "v1") for e in events] == [
        {
            "type": "conversation.handoff.append",
            "handoff_id": "handoff_1",
            "output_text": '"Agent Final Message":\n\nhello from background agent',
        }
    ]
    assert AGENT_FINAL_MESSAGE_PREFIX == '"Agent Final Message":\n\n'


def test_v1_progress_handoff_reply_is_unprefixed_handoff_append() -> None:
    events = handoff_output_events("v1", "handoff_1", "still working", final=False)
    assert events == [HandoffAppend(handoff_id="handoff_1", output_text="still working")]
    assert wire(events[0], "v1")["output_text"] == "still working"


def test_v2_final_handoff_reply_is_function_call_output() -> None:
    events = handoff_output_events("v2", "call_1", "delegated result", final=True)
    assert [wire(e, "v2") for e in events] == [
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": "call_1",
                "output": "delegated result",
            },
        }
    ]


def test_v2_progress_handoff_reply_is_backend_prefixed_user_message() -> None:
    events = handoff_output_events("v2", "call_1", "compiling", final=False)
    assert [wire(e, "v2") for e in events] == [
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "[BACKEND] compiling"}],
            },
        }
    ]
    assert BACKEND_PREFIX == "[BACKEND] "


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("final", [True, False])
def test_handoff_reply_with_empty_handoff_id_is_rejected(version: str, final: bool) -> None:
    with pytest.raises(LocalProtocolError, match="handoff id"):
        handoff_output_events(version, "", "text", final=final)


def test_v2_steering_ack_is_function_call_output_with_the_steering_text() -> None:
    assert wire(steering_ack_event("v2", "call_2"), "v2") == {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "call_2", "output": STEERING_ACK_TEXT},
    }


def test_v2_noop_reply_is_function_call_output_with_empty_output() -> None:
    assert wire(noop_reply_event("v2", "call_3"), "v2") == {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "call_3", "output": ""},
    }


@pytest.mark.parametrize("builder", [steering_ack_event, noop_reply_event])
def test_v2_only_reply_builders_reject_an_empty_call_id(builder: Any) -> None:
    with pytest.raises(LocalProtocolError, match="non-empty"):
        builder("v2", "")


@pytest.mark.parametrize("builder", [steering_ack_event, noop_reply_event])
def test_v2_only_reply_builders_are_rejected_on_v1(builder: Any) -> None:
    with pytest.raises(LocalProtocolError, match="v2"):
        builder("v1", "call_1")


# --- other client events -------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_response_create_is_bare(version: str) -> None:
    assert wire(response_create_event(), version) == {"type": "response.create"}


def test_truncate_at_positive_ms_is_truncate_of_content_zero() -> None:
    event = truncate_event("item_a", 1234)
    assert isinstance(event, ConversationItemTruncate)
    assert wire(event, "v2") == {
        "type": "conversation.item.truncate",
        "item_id": "item_a",
        "content_index": 0,
        "audio_end_ms": 1234,
    }


def test_truncate_at_zero_ms_becomes_delete() -> None:
    event = truncate_event("item_a", 0)
    assert event == ConversationItemDelete(item_id="item_a")
    assert wire(event, "v2") == {"type": "conversation.item.delete", "item_id": "item_a"}


def test_truncate_rejects_negative_ms_and_empty_item_id() -> None:
    with pytest.raises(LocalProtocolError, match="audio_end_ms"):
        truncate_event("item_a", -1)
    with pytest.raises(LocalProtocolError, match="item id"):
        truncate_event("", 10)


# --- bad arguments -------------------------------------------------------------------------


def test_v2_voice_on_v1_is_rejected_naming_the_voice() -> None:
    with pytest.raises(LocalProtocolError, match="`marin` is not supported for v1"):
        session_start_event("v1", voice="marin")


def test_v1_voice_on_v2_is_rejected_naming_the_voice() -> None:
    with pytest.raises(LocalProtocolError, match="`cove` is not supported for v2"):
        session_start_event("v2", voice="cove")


def test_text_output_modality_on_v1_is_rejected() -> None:
    with pytest.raises(LocalProtocolError, match="requires realtime v2"):
        session_start_event("v1", output_modality="text")


@pytest.mark.parametrize("bad", ["v3", "V1", "", "2"])
def test_unknown_version_string_is_rejected_everywhere(bad: str) -> None:
    calls: list[Any] = [
        lambda: session_start_event(bad),
        lambda: prompt_update_event(bad, "x"),
        lambda: text_item_event(bad, "x"),
        lambda: handoff_output_events(bad, "h", "x", final=True),
        lambda: encode_client_event(response_create_event(), bad),
        lambda: encode_server_event(AudioOut(AudioFrame(b"")), bad),
        lambda: parse_client_event("{}", bad),
    ]
    for call in calls:
        with pytest.raises(LocalProtocolError, match="unknown protocol version"):
            call()


def test_unknown_mode_and_modality_strings_are_rejected() -> None:
    with pytest.raises(LocalProtocolError, match="session mode"):
        session_start_event("v2", mode="chat")
    with pytest.raises(LocalProtocolError, match="output modality"):
        session_start_event("v2", output_modality="video")


def test_empty_tool_names_are_rejected() -> None:
    with pytest.raises(LocalProtocolError, match="handoff tool name"):
        session_start_event("v2", handoff_tool_name="")
    with pytest.raises(LocalProtocolError, match="silence tool name"):
        session_start_event("v2", silence_tool_name="")


def test_encoding_session_create_in_v2_is_rejected() -> None:
    event = SessionCreate(session=WireSession(type="realtime"))
    with pytest.raises(LocalProtocolError, match=r"session\.create exists only in the v1"):
        encode_client_event(event, "v2")


def test_encoding_handoff_append_in_v2_is_rejected() -> None:
    event = HandoffAppend(handoff_id="h", output_text="x")
    with pytest.raises(LocalProtocolError, match=r"conversation\.handoff\.append exists only"):
        encode_client_event(event, "v2")


def test_encoding_noop_requested_in_v1_is_rejected() -> None:
    with pytest.raises(LocalProtocolError, match="NoopRequested cannot be encoded in the v1"):
        encode_server_event(NoopRequested("call_1", "item_1"), "v1")


@pytest.mark.parametrize("version", VERSIONS)
def test_encoding_parse_failure_is_rejected(version: str) -> None:
    with pytest.raises(LocalProtocolError, match="ParseFailure cannot be encoded"):
        encode_server_event(ParseFailure("invalid JSON", "x"), version)


@pytest.mark.parametrize("version", VERSIONS)
def test_an_error_without_a_class_is_encoded_with_the_required_one(version: str) -> None:
    """Regression (review): ``error.type`` is required on the GA wire; an ``Error`` built
    without ``error_type`` was encoded with ``"type": null``."""
    wire = json.loads(encode_server_event(Error("boom", "server_error"), version))
    assert wire["error"]["type"] == "invalid_request_error"
    wire = json.loads(encode_server_event(Error("x", None, None, False, "server_error"), version))
    assert wire["error"]["type"] == "server_error"


def test_local_protocol_error_is_a_protocol_error_with_message() -> None:
    with pytest.raises(ProtocolError) as info:
        session_start_event("v2", voice="cove")
    assert isinstance(info.value, LocalProtocolError)
    assert "cove" in info.value.message


@pytest.mark.parametrize("event_id", ["evt_1", "évt 1", 'evt"1', "evt\\1", "evt\n1", "evt\x001"])
def test_append_text_with_event_id_round_trips_or_is_rejected(event_id: str) -> None:
    # The pre-encoded fast path splices event_id into JSON text unescaped; it must never
    # produce a frame the parser rejects. (Currently quotes and backslashes are rejected but
    # control characters, which JSON strings must escape, slip through.)
    from duplex.protocol import audio_append_text as append_text

    rejection = ""
    try:
        text = append_text(b"\x01\x00", event_id)
    except LocalProtocolError as exc:
        rejection = str(exc)
    if rejection:
        assert "event_id" in rejection
        assert event_id not in ("evt_1", "évt 1")
        return
    parsed = parse_client_event(text, "v2")
    assert parsed == InputAudioBufferAppend(audio=b"\x01\x00", event_id=event_id)
