"""Builders for the client events of turn control and conversation editing (SPEC §3.2): the
input buffer (push-to-talk), responses (cancel, out-of-band ``response.create`` with options),
function-call outputs, images, text items for history replay, item deletion and retrieval,
and WebRTC's playback clear.

Each returns a typed ``ClientEvent`` (encode with ``encode_client_event``); they are the same
in both dialects, except where noted. Invariants: arguments are validated here and a bad one
raises ``LocalProtocolError`` naming it; nothing here reads a clock or makes an id.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from ._client_events import (
    ConversationItemCreate,
    ConversationItemDelete,
    ConversationItemRetrieve,
    InputAudioBufferClear,
    InputAudioBufferCommit,
    OutputAudioBufferClear,
    ResponseCancel,
    ResponseCreate,
)
from ._converter import unstructure
from ._encode_common import require_text
from ._enums import ProtocolVersion, validate_voice
from ._errors import LocalProtocolError
from ._items import ContentPart, ConversationItem
from ._session import Tool
from ._session_config import MAX_OUTPUT_TOKENS, valid_max_output_tokens
from ._tool_rules import validate_tools

__all__ = [
    "IMAGE_MIME_TYPES",
    "clear_audio_event",
    "commit_audio_event",
    "delete_item_event",
    "image_item_event",
    "mcp_approval_event",
    "message_item_event",
    "output_audio_clear_event",
    "response_cancel_event",
    "response_create_event",
    "retrieve_item_event",
    "tool_output_event",
]

#: image types GA accepts in ``input_image``
IMAGE_MIME_TYPES: Final = ("image/png", "image/jpeg", "image/webp", "image/gif")
_CONVERSATION_MODES: Final = ("auto", "none")
_OUTPUT_MODALITIES: Final = (("audio",), ("text",))
_METADATA_LIMIT: Final = 16  # GA: at most 16 key/value pairs
# The content type a message part has per role (GA: assistants speak output_text).
_TEXT_PART: Final = {"user": "input_text", "system": "input_text", "assistant": "output_text"}


def commit_audio_event() -> InputAudioBufferCommit:
    """``input_audio_buffer.commit``: end a push-to-talk turn (needs ≥ 100 ms of audio)."""
    return InputAudioBufferCommit()


def clear_audio_event() -> InputAudioBufferClear:
    """``input_audio_buffer.clear``: drop the audio of an aborted push-to-talk turn."""
    return InputAudioBufferClear()


def response_cancel_event(response_id: str | None = None) -> ResponseCancel:
    """``response.cancel`` of the active response (or of ``response_id``)."""
    if response_id is not None:
        require_text(response_id, "response id")
    return ResponseCancel(response_id=response_id)


def output_audio_clear_event() -> OutputAudioBufferClear:
    """``output_audio_buffer.clear`` (WebRTC/SIP only): stop the server's playback now."""
    return OutputAudioBufferClear()


def response_create_event(
    *,
    instructions: str | None = None,
    conversation: str | None = None,
    metadata: Mapping[str, str] | None = None,
    output_modalities: Sequence[str] | None = None,
    input: Iterable[ConversationItem | str] | None = None,
    tool_choice: str | None = None,
    max_output_tokens: int | str | None = None,
    tools: Iterable[Tool] | None = None,
    voice: str | None = None,
    reserved_tool_names: tuple[str | None, str | None] = (None, None),
) -> ResponseCreate:
    """``response.create``, plain (no arguments) or with per-response options.

    Args:
        instructions: instructions for this response only.
        conversation: ``"auto"`` (the default: the response joins the conversation) or
            ``"none"`` (out-of-band: it is not added to the conversation).
        metadata: up to 16 string pairs the server echoes on the response, so a host can tell
            an out-of-band response's events apart.
        output_modalities: ``("audio",)`` or ``("text",)``.
        input: the items the response sees instead of the conversation: new items, or ids of
            existing items (sent as ``item_reference``).
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` or a function name.
        max_output_tokens: 1 to 4096, or ``"inf"``: this response's output limit.
        tools: the function tools this response may call, *instead of* the session's (an
            empty sequence: none); the names in ``reserved_tool_names`` (the session's
            handoff and silence tools) may not be reused.
        voice: the voice this response speaks with (a GA voice name).
    """
    response: dict[str, Any] = {}
    if instructions is not None:
        response["instructions"] = _text(instructions, "instructions")
    if conversation is not None:
        if conversation not in _CONVERSATION_MODES:
            raise LocalProtocolError(f"conversation must be 'auto' or 'none', got {conversation!r}")
        response["conversation"] = conversation
    if metadata is not None:
        response["metadata"] = _metadata(metadata)
    if output_modalities is not None:
        mods = tuple(output_modalities)
        if mods not in _OUTPUT_MODALITIES:
            raise LocalProtocolError(
                f"output_modalities must be ('audio',) or ('text',), got {output_modalities!r}"
            )
        response["output_modalities"] = list(mods)
    if input is not None:
        response["input"] = [_input_item(entry) for entry in input]
    if tool_choice is not None:
        if tool_choice in ("auto", "none", "required"):
            response["tool_choice"] = tool_choice
        else:
            name = require_text(tool_choice, "tool_choice")
            response["tool_choice"] = {"type": "function", "name": name}
    if max_output_tokens is not None:
        if not valid_max_output_tokens(max_output_tokens):
            raise LocalProtocolError(
                f"max_output_tokens must be 1 to {MAX_OUTPUT_TOKENS} or 'inf', "
                f"got {max_output_tokens!r}"
            )
        response["max_output_tokens"] = max_output_tokens
    if tools is not None:
        handoff, silence = reserved_tool_names
        checked = validate_tools(tools, handoff_tool_name=handoff, silence_tool_name=silence)
        response["tools"] = [unstructure(tool) for tool in checked]
    if voice is not None:
        response["audio"] = {"output": {"voice": validate_voice(ProtocolVersion.V2, voice)}}
    return ResponseCreate(response=response or None)


def tool_output_event(call_id: str, output: str) -> ConversationItemCreate:
    """The ``function_call_output`` item answering the function call ``call_id`` (v2). The
    caller follows it with ``response.create`` through its single-active-response queue."""
    require_text(call_id, "call id")
    return ConversationItemCreate(
        item=ConversationItem(
            type="function_call_output", call_id=call_id, output=_text(output, "tool output")
        )
    )


def mcp_approval_event(
    request_id: str, approve: bool, *, item_id: str, reason: str | None = None
) -> ConversationItemCreate:
    """The ``mcp_approval_response`` item ``item_id`` (GA requires the client to name it)
    answering the MCP approval request ``request_id`` (v2). ``reason`` explains a refusal;
    the API refuses one beside an approval. The caller follows it with ``response.create``
    through its single-active-response queue."""
    require_text(request_id, "approval request id")
    require_text(item_id, "item id")
    if type(approve) is not bool:
        raise LocalProtocolError(f"approve must be True or False, got {approve!r}")
    if reason is not None:
        if approve:
            raise LocalProtocolError("a reason goes with a refusal (approve=False) only")
        reason = _text(reason, "reason")
    return ConversationItemCreate(
        item=ConversationItem(
            type="mcp_approval_response",
            id=item_id,
            approval_request_id=request_id,
            approve=approve,
            reason=reason,
        )
    )


def image_item_event(
    data: bytes, mime_type: str, *, text: str | None = None, detail: str | None = None
) -> ConversationItemCreate:
    """A user message with an ``input_image`` (a ``data:`` URL of ``data``) and, optionally,
    text beside it. ``detail`` is ``"auto"``, ``"low"`` or ``"high"``."""
    if not isinstance(data, bytes | bytearray | memoryview) or not len(data):
        raise LocalProtocolError("image data must be non-empty bytes")
    if mime_type not in IMAGE_MIME_TYPES:
        raise LocalProtocolError(
            f"image mime type {mime_type!r} is not one of {', '.join(IMAGE_MIME_TYPES)}"
        )
    if detail is not None and detail not in ("auto", "low", "high"):
        raise LocalProtocolError(f"image detail must be 'auto', 'low' or 'high', got {detail!r}")
    url = f"data:{mime_type};base64," + base64.b64encode(bytes(data)).decode("ascii")
    parts = [ContentPart(type="input_image", image_url=url, detail=detail)]
    if text is not None:
        parts.append(ContentPart(type="input_text", text=_text(text, "text")))
    return ConversationItemCreate(
        item=ConversationItem(type="message", role="user", content=tuple(parts))
    )


def message_item_event(
    role: str,
    text: str,
    *,
    item_id: str | None = None,
    previous_item_id: str | None = None,
) -> ConversationItemCreate:
    """A ``user``, ``assistant`` or ``system`` text message (history replay, injected
    context). Assistant text is ``output_text``; the others are ``input_text``."""
    part_type = _TEXT_PART.get(role)
    if part_type is None:
        raise LocalProtocolError(f"message role must be user, assistant or system, got {role!r}")
    if item_id is not None:
        require_text(item_id, "item id")
    if previous_item_id is not None:
        require_text(previous_item_id, "previous item id")
    item = ConversationItem(
        type="message",
        id=item_id,
        role=role,
        content=(ContentPart(type=part_type, text=_text(text, "text")),),
    )
    return ConversationItemCreate(item=item, previous_item_id=previous_item_id)


def delete_item_event(item_id: str) -> ConversationItemDelete:
    """``conversation.item.delete``."""
    return ConversationItemDelete(item_id=require_text(item_id, "item id"))


def retrieve_item_event(item_id: str) -> ConversationItemRetrieve:
    """``conversation.item.retrieve`` (answered by ``conversation.item.retrieved``)."""
    return ConversationItemRetrieve(item_id=require_text(item_id, "item id"))


def _text(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise LocalProtocolError(f"{what} must be a string, got {type(value).__name__}")
    return value


def _metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(metadata, Mapping) or len(metadata) > _METADATA_LIMIT:
        raise LocalProtocolError(f"metadata must be a mapping of at most {_METADATA_LIMIT} pairs")
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if type(key) is not str or type(value) is not str:
            raise LocalProtocolError(
                f"metadata keys and values must be strings, got {key!r}: {value!r}"
            )
        out[key] = value
    return out


def _input_item(entry: ConversationItem | str) -> dict[str, Any]:
    if isinstance(entry, str):
        return {"type": "item_reference", "id": require_text(entry, "item reference")}
    if isinstance(entry, ConversationItem):
        payload: dict[str, Any] = unstructure(entry)
        return payload
    raise LocalProtocolError(f"response input entries are items or item ids, got {entry!r}")
