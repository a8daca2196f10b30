"""The v2 (Realtime GA) dialect, building side: the ``session.update`` handshake with the
handoff function tool, prompt updates, text items, handoff replies as
``function_call_output`` items, and the server-role payloads in GA shape.

Invariants:
- The conversational session advertises the handoff tool (one string parameter ``prompt``,
  ``tool_choice: "auto"``) and, unless disabled, the ``remain_silent`` no-op tool.
- GA payloads carry the locator fields the official models require (``output_index``,
  ``content_index``); duplex emits single-part items, so both are 0 unless the caller adds
  its own before dumping.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from ._audio import G711_SAMPLE_RATE, WIRE_CHANNELS, WIRE_SAMPLE_RATE, b64encode_pcm
from ._client_events import ClientEvent, ConversationItemCreate
from ._control_builders import tool_output_event
from ._encode_common import (
    COMMON_SERVER_PAYLOADS,
    ServerPayload,
    drop_none,
    require_text,
    transcription_usage,
)
from ._enums import SessionMode
from ._errors import LocalProtocolError
from ._events import (
    AudioOut,
    ConversationItemDone,
    HandoffRequested,
    InputTranscriptDelta,
    InputTranscriptDone,
    McpApprovalRequested,
    NoopRequested,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    ToolCallRequested,
)
from ._ga_wire import GA_SERVER_PAYLOADS
from ._handoff import BACKEND_PREFIX, USER_PREFIX, prefix_text
from ._items import ContentPart, ConversationItem
from ._session import (
    FunctionTool,
)

__all__ = [
    "V2_SERVER_PAYLOADS",
    "handoff_tool",
    "silence_tool",
    "v2_server_payloads",
    "v2_handoff_output",
    "v2_session_type",
    "v2_text_item",
]

HANDOFF_TOOL_DESCRIPTION: Final = (
    "Send the user's request to the background agent. Pass the user's own words along "
    "without rephrasing. If the agent is busy, the request steers its current task."
)
SILENCE_TOOL_DESCRIPTION: Final = (
    "Call this when the best response is to say nothing. It has no user-visible effect."
)


def handoff_tool(name: str) -> FunctionTool:
    """The handoff function tool: one required string parameter ``prompt``."""
    return FunctionTool(
        name=require_text(name, "handoff tool name"),
        description=HANDOFF_TOOL_DESCRIPTION,
        parameters={
            "type": "object",
            "properties": {
                "prompt": {"type": "string", "description": "The user request, verbatim."}
            },
            "required": ["prompt"],
            "additionalProperties": False,
        },
    )


def silence_tool(name: str) -> FunctionTool:
    """The ``remain_silent`` no-op tool (no parameters)."""
    return FunctionTool(
        name=require_text(name, "silence tool name"),
        description=SILENCE_TOOL_DESCRIPTION,
        parameters={"type": "object", "properties": {}, "additionalProperties": False},
    )


def v2_session_type(mode: SessionMode) -> str:
    return "transcription" if mode is SessionMode.TRANSCRIPTION else "realtime"


def v2_text_item(text: str, *, user_prefix: bool) -> ConversationItemCreate:
    """A user text message, optionally with the ``[USER] `` prefix (off by default, SPEC §3)."""
    body = prefix_text(text, USER_PREFIX) if user_prefix else text
    return ConversationItemCreate(
        item=ConversationItem(
            type="message", role="user", content=(ContentPart(type="input_text", text=body),)
        )
    )


def v2_handoff_output(handoff_id: str, text: str, *, final: bool) -> list[ClientEvent]:
    """Final: ``function_call_output`` for the call. Progress: a ``[BACKEND] `` user message
    (the call stays open until the final reply). The caller requests ``response.create``."""
    require_text(handoff_id, "handoff id")
    if final:
        return [tool_output_event(handoff_id, text)]
    return [
        ConversationItemCreate(
            item=ConversationItem(
                type="message",
                role="user",
                content=(ContentPart(type="input_text", text=prefix_text(text, BACKEND_PREFIX)),),
            )
        )
    ]


# ---- server role: GA payloads -------------------------------------------------------


def _locator(item_id: str | None, response_id: str | None) -> dict[str, Any]:
    return drop_none(
        {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
    )


def _session_created(e: SessionCreated) -> dict[str, Any]:
    session = drop_none({"id": e.session_id, "type": "realtime", "object": "realtime.session"})
    return {"type": e.TYPE, "session": session}


def _session_updated(e: SessionUpdated) -> dict[str, Any]:
    session = drop_none(
        {
            "id": e.session_id,
            "type": "realtime",
            "object": "realtime.session",
            "instructions": e.instructions,
        }
    )
    return {"type": e.TYPE, "session": session}


def _audio(e: AudioOut) -> dict[str, Any]:
    frame = e.frame
    payload = {"type": e.TYPE, **_locator(e.item_id, e.response_id)}
    payload["delta"] = b64encode_pcm(frame.pcm)
    # GA audio is 24 kHz mono PCM16 (8 kHz mono for G.711, which the session's format names);
    # a shape field appears only when it says otherwise.
    if frame.sample_rate != (WIRE_SAMPLE_RATE if frame.encoding == "pcm16" else G711_SAMPLE_RATE):
        payload["sample_rate"] = frame.sample_rate
    if frame.channels != WIRE_CHANNELS:
        payload["channels"] = frame.channels
    return payload


def _input_delta(e: InputTranscriptDelta) -> dict[str, Any]:
    return drop_none({"type": e.TYPE, "item_id": e.item_id, "content_index": 0, "delta": e.delta})


def _input_done(e: InputTranscriptDone) -> dict[str, Any]:
    return drop_none(
        {
            "type": e.TYPE,
            "item_id": e.item_id,
            "content_index": 0,
            "transcript": e.text,
            "usage": transcription_usage(e),
        }
    )


def _output_delta(e: OutputTranscriptDelta) -> dict[str, Any]:
    return {"type": e.TYPE, **_locator(e.item_id, e.response_id), "delta": e.delta}


def _output_done(e: OutputTranscriptDone) -> dict[str, Any]:
    return {"type": e.TYPE, **_locator(e.item_id, e.response_id), "transcript": e.text}


def _item_done(e: ConversationItemDone) -> dict[str, Any]:
    item = {
        "id": e.item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [],
    }
    return {"type": e.TYPE, "previous_item_id": None, "item": item}


def _function_call_done(call_id: str, item_id: str, name: str, arguments: str) -> dict[str, Any]:
    item = {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call",
        "status": "completed",
        "name": name,
        "call_id": call_id,
        "arguments": arguments,
    }
    return {"type": "conversation.item.done", "previous_item_id": None, "item": item}


def _tool_call(e: ToolCallRequested) -> dict[str, Any]:
    payload = _function_call_done(e.call_id, e.item_id, e.name, e.arguments)
    if e.response_id is not None:  # not a GA field; the parser reads it back if present
        payload["response_id"] = e.response_id
    return payload


def _mcp_approval(e: McpApprovalRequested) -> dict[str, Any]:
    item = {
        "id": e.item_id,
        "object": "realtime.item",
        "type": "mcp_approval_request",
        "server_label": e.server_label,
        "name": e.name,
        "arguments": e.arguments,
    }
    return {"type": "conversation.item.done", "previous_item_id": None, "item": item}


def _handoff_payload(handoff_tool_name: str | None) -> ServerPayload:
    def handoff(e: HandoffRequested) -> dict[str, Any]:
        if handoff_tool_name is None:
            raise LocalProtocolError("HandoffRequested needs a handoff tool; it is disabled")
        arguments = orjson.dumps({"prompt": e.input_transcript}).decode()
        return _function_call_done(e.handoff_id, e.item_id, handoff_tool_name, arguments)

    return handoff


def _noop_payload(silence_tool_name: str | None) -> ServerPayload:
    def noop(e: NoopRequested) -> dict[str, Any]:
        if silence_tool_name is None:
            raise LocalProtocolError("NoopRequested needs a silence tool; it is disabled")
        return _function_call_done(e.call_id, e.item_id, silence_tool_name, "{}")

    return noop


def v2_server_payloads(
    handoff_tool_name: str | None, silence_tool_name: str | None
) -> dict[type[ServerEvent], ServerPayload]:
    """The v2 server-role payload table for a session with these tool names (``None``: the
    session has no such tool, so the matching event cannot be encoded)."""
    return {
        **V2_SERVER_PAYLOADS,
        HandoffRequested: _handoff_payload(handoff_tool_name),
        NoopRequested: _noop_payload(silence_tool_name),
    }


V2_SERVER_PAYLOADS: Final[dict[type[ServerEvent], ServerPayload]] = {
    **COMMON_SERVER_PAYLOADS,
    SessionCreated: _session_created,
    SessionUpdated: _session_updated,
    AudioOut: _audio,
    InputTranscriptDelta: _input_delta,
    InputTranscriptDone: _input_done,
    OutputTranscriptDelta: _output_delta,
    OutputTranscriptDone: _output_done,
    ConversationItemDone: _item_done,
    ToolCallRequested: _tool_call,
    McpApprovalRequested: _mcp_approval,
    **GA_SERVER_PAYLOADS,
}
