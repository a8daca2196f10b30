"""``ServerEventParser``: one dispatch table per (dialect, handoff tool, silence tool), cached,
and ``parse_server_event`` as the SPEC's wrapper over it."""

from __future__ import annotations

import json

import pytest

from duplex.protocol import (
    ConversationItemDone,
    HandoffRequested,
    LocalProtocolError,
    McpApprovalRequested,
    NoopRequested,
    ProtocolVersion,
    ServerEventParser,
    parse_server_event,
    server_event_parser,
)


def call_done(name: str, call_id: str = "call_1", item_id: str = "item_1") -> str:
    item = {
        "id": item_id,
        "type": "function_call",
        "name": name,
        "call_id": call_id,
        "arguments": json.dumps({"prompt": "book a table"}),
    }
    return json.dumps({"type": "conversation.item.done", "item": item})


def test_cached_parser_is_shared_per_configuration_and_version_spelling() -> None:
    a = server_event_parser("v2", handoff_tool_name="codex", silence_tool_name="remain_silent")
    b = server_event_parser(ProtocolVersion.V2)
    assert a is b
    assert server_event_parser("v2", handoff_tool_name="agent") is not a


def test_parser_routes_function_calls_by_its_tool_names() -> None:
    parser = ServerEventParser("v2", handoff_tool_name="agent", silence_tool_name="hush")
    assert parser.parse(call_done("agent")) == HandoffRequested("call_1", "item_1", "book a table")
    assert parser.parse(call_done("hush")) == NoopRequested("call_1", "item_1")


def test_an_mcp_approval_request_item_asks_the_host_and_an_incomplete_one_is_just_an_item() -> None:
    item = {
        "id": "mcpr_1",
        "type": "mcp_approval_request",
        "server_label": "docs",
        "name": "search",
        "arguments": '{"q": "trio"}',
    }
    frame = json.dumps({"type": "conversation.item.done", "item": item})
    assert parse_server_event(frame, "v2") == McpApprovalRequested(
        "mcpr_1", "docs", "search", '{"q": "trio"}'
    )
    del item["server_label"]
    frame = json.dumps({"type": "conversation.item.done", "item": item})
    assert parse_server_event(frame, "v2") == ConversationItemDone("mcpr_1")


def test_handoff_tool_name_none_disables_the_handoff() -> None:
    event = parse_server_event(call_done("codex"), "v2", handoff_tool_name=None)
    assert not isinstance(event, HandoffRequested)


def test_empty_silence_tool_name_means_no_silence_tool() -> None:
    # The first-release engine passes "" for a disabled silence tool.
    event = parse_server_event(call_done(""), "v2", silence_tool_name="")
    assert not isinstance(event, NoopRequested)
    assert ServerEventParser("v2", silence_tool_name="").silence_tool_name is None


def test_v1_parser_ignores_tool_names() -> None:
    frame = json.dumps({"type": "conversation.item.done", "item": {"id": "i"}})
    assert server_event_parser("v1", handoff_tool_name=None).parse(frame) == (
        ConversationItemDone("i")
    )


@pytest.mark.parametrize(
    ("handoff", "silence", "message"),
    [
        ("same", "same", "cannot share"),
        (3, None, "must be a string"),
        (None, ["x"], "must be a string"),
    ],
)
def test_invalid_tool_names_raise_a_local_protocol_error(
    handoff: object, silence: object, message: str
) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        server_event_parser("v2", handoff_tool_name=handoff, silence_tool_name=silence)  # type: ignore[arg-type]


def test_unknown_version_raises_a_local_protocol_error() -> None:
    with pytest.raises(LocalProtocolError, match="unknown protocol version"):
        server_event_parser("v9")
    with pytest.raises(LocalProtocolError, match="unknown protocol version"):
        parse_server_event("{}", ["v2"])  # type: ignore[arg-type]


def test_parser_event_types_name_the_mapped_tags() -> None:
    types = server_event_parser("v2").event_types
    assert "response.output_audio.delta" in types
    assert "conversation.handoff.requested" not in types
