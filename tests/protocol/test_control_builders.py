"""Client events for turn control and conversation editing (SPEC §3.2): their wire shape, the
validation of their arguments, and fidelity to the official ``openai`` client-event models."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from duplex.protocol import (
    ClientEvent,
    ContentPart,
    ConversationItem,
    FunctionTool,
    LocalProtocolError,
    clear_audio_event,
    commit_audio_event,
    delete_item_event,
    encode_client_event,
    image_item_event,
    mcp_approval_event,
    message_item_event,
    output_audio_clear_event,
    parse_client_event,
    response_cancel_event,
    response_create_event,
    retrieve_item_event,
    tool_output_event,
)

realtime = pytest.importorskip("openai.types.realtime")
pydantic = pytest.importorskip("pydantic")

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def wire(event: ClientEvent) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(encode_client_event(event, "v2"))
    return payload


EVENTS = [
    pytest.param(commit_audio_event(), id="commit"),
    pytest.param(clear_audio_event(), id="clear"),
    pytest.param(response_cancel_event(), id="cancel"),
    pytest.param(response_cancel_event("resp_1"), id="cancel-by-id"),
    pytest.param(output_audio_clear_event(), id="output-clear"),
    pytest.param(response_create_event(), id="response-create"),
    pytest.param(
        response_create_event(
            instructions="Summarise.",
            conversation="none",
            metadata={"purpose": "summary"},
            output_modalities=["text"],
            max_output_tokens=200,
            # (Item references are checked below: the SDK's event model predates them.)
            input=[
                ConversationItem(
                    type="message",
                    role="user",
                    content=(ContentPart(type="input_text", text="and this"),),
                ),
            ],
            tool_choice="none",
        ),
        id="response-create-out-of-band",
    ),
    pytest.param(
        response_create_event(
            tools=[FunctionTool("lookup_order", "An order's state.", {"type": "object"})],
            tool_choice="lookup_order",
            voice="cedar",
        ),
        id="response-create-tools-and-voice",
    ),
    pytest.param(tool_output_event("call_1", '{"time": "12:00"}'), id="tool-output"),
    pytest.param(mcp_approval_event("mcpr_1", True, item_id="item_ok"), id="mcp-approve"),
    pytest.param(
        mcp_approval_event("mcpr_1", False, item_id="item_no", reason="not today"),
        id="mcp-refuse",
    ),
    pytest.param(image_item_event(PNG, "image/png", text="what is this?"), id="image"),
    pytest.param(message_item_event("user", "hi"), id="user-text"),
    pytest.param(message_item_event("assistant", "hello", item_id="item_a"), id="assistant-text"),
    pytest.param(message_item_event("system", "be brief", previous_item_id="root"), id="system"),
    pytest.param(delete_item_event("item_1"), id="delete"),
    pytest.param(retrieve_item_event("item_1"), id="retrieve"),
]


@pytest.mark.parametrize("event", EVENTS)
def test_builder_output_validates_against_the_official_client_event_models(
    event: ClientEvent,
) -> None:
    adapter = pydantic.TypeAdapter(realtime.RealtimeClientEvent)
    adapter.validate_python(wire(event))


@pytest.mark.parametrize("event", EVENTS)
def test_builder_output_round_trips_through_the_server_role_parser(event: ClientEvent) -> None:
    assert parse_client_event(encode_client_event(event, "v2"), "v2") == event


def test_plain_response_create_has_no_response_object() -> None:
    assert wire(response_create_event()) == {"type": "response.create"}


def test_out_of_band_response_options_are_on_the_wire() -> None:
    payload = wire(
        response_create_event(
            conversation="none", metadata={"k": "v"}, input=["item_1"], tool_choice="get_time"
        )
    )
    assert payload["response"] == {
        "conversation": "none",
        "metadata": {"k": "v"},
        "input": [{"type": "item_reference", "id": "item_1"}],
        "tool_choice": {"type": "function", "name": "get_time"},
    }


def test_response_tools_replace_the_sessions_and_voice_is_the_output_voice() -> None:
    tool = FunctionTool("lookup_order", None, {"type": "object", "properties": {}})
    payload = wire(response_create_event(tools=[tool], voice="marin"))
    assert payload["response"] == {
        "tools": [
            {"type": "function", "name": "lookup_order", "parameters": tool.parameters},
        ],
        "audio": {"output": {"voice": "marin"}},
    }
    # An empty list is a response that may call no tool (not "the session's tools").
    assert wire(response_create_event(tools=[]))["response"] == {"tools": []}


def test_image_item_is_a_data_url_of_the_bytes() -> None:
    part = wire(image_item_event(PNG, "image/png"))["item"]["content"][0]
    assert part["type"] == "input_image"
    prefix = "data:image/png;base64,"
    assert part["image_url"].startswith(prefix)
    assert base64.b64decode(part["image_url"][len(prefix) :]) == PNG


def test_assistant_history_text_is_output_text() -> None:
    assert wire(message_item_event("assistant", "x"))["item"]["content"][0]["type"] == (
        "output_text"
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: response_create_event(conversation="some"), "conversation"),
        (lambda: response_create_event(metadata={"k": 1}), "metadata"),  # type: ignore[dict-item]
        (lambda: response_create_event(metadata={str(i): "v" for i in range(17)}), "at most 16"),
        (lambda: response_create_event(output_modalities=["audio", "text"]), "output_modalities"),
        (lambda: response_create_event(input=[3]), "items or item ids"),  # type: ignore[list-item]
        (lambda: response_create_event(max_output_tokens=4097), "max_output_tokens"),
        (lambda: response_create_event(max_output_tokens=0), "max_output_tokens"),
        (lambda: response_create_event(max_output_tokens="lots"), "max_output_tokens"),
        (lambda: response_create_event(tools=["get_time"]), "FunctionTool"),  # type: ignore[list-item]
        (lambda: response_create_event(tools=[FunctionTool("a b")]), "tool name"),
        (lambda: response_create_event(tools=[FunctionTool("t"), FunctionTool("t")]), "twice"),
        (
            lambda: response_create_event(
                tools=[FunctionTool("hand_off")], reserved_tool_names=("hand_off", None)
            ),
            "handoff or silence",
        ),
        (lambda: response_create_event(voice="robot"), "voice"),
        (lambda: image_item_event(b"", "image/png"), "non-empty bytes"),
        (lambda: image_item_event(PNG, "image/tiff"), "mime type"),
        (lambda: image_item_event(PNG, "image/png", detail="max"), "detail"),
        (lambda: message_item_event("tool", "x"), "role"),
        (lambda: tool_output_event("", "x"), "call id"),
        (lambda: mcp_approval_event("", True, item_id="i"), "approval request id"),
        (lambda: mcp_approval_event("r", True, item_id=""), "item id"),
        (lambda: mcp_approval_event("r", "yes", item_id="i"), "True or False"),  # type: ignore[arg-type]
        (lambda: mcp_approval_event("r", True, item_id="i", reason="why"), "refusal"),
        (lambda: delete_item_event(""), "item id"),
        (lambda: retrieve_item_event(""), "item id"),
        (lambda: response_cancel_event(""), "response id"),
    ],
)
def test_invalid_builder_arguments_fail_locally(build: Any, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        build()
