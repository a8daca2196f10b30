"""Value types carried inside events: conversation items, usage, rate limits, transcript lines.

Field names are the wire's (GA spelling), so the converter needs no renames. Every field the
wire may omit is optional here; a value the dialect does not know is simply not carried
(parsers ignore unknown keys, as the real server adds fields over time).
"""

from __future__ import annotations

from typing import Any, final

import attrs

__all__ = [
    "ContentPart",
    "ConversationItem",
    "RateLimit",
    "TranscriptEntry",
    "Usage",
]


@final
@attrs.frozen(slots=True, kw_only=True)
class ContentPart:
    """One content part of a message item (``input_text``, ``output_audio``, ``text``, …).

    ``audio`` stays base64 here: items only carry audio in ``conversation.item.retrieved``,
    which is not on any hot path, and decoding it would hide the wire shape from tests.
    """

    type: str
    text: str | None = None
    transcript: str | None = None
    audio: str | None = None
    #: ``input_image``: a ``data:<mime>;base64,…`` URL, and optionally ``"auto" | "low" | "high"``
    image_url: str | None = None
    detail: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class ConversationItem:
    """A conversation item: a message, a function call or a function call output, or an MCP
    item (``mcp_call``, ``mcp_list_tools``, ``mcp_approval_request``,
    ``mcp_approval_response``: ``server_label``, ``name``, ``arguments``, ``output``,
    ``error``, ``approval_request_id``, ``approve``, ``reason``)."""

    type: str
    id: str | None = None
    role: str | None = None
    status: str | None = None
    content: tuple[ContentPart, ...] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    server_label: str | None = None
    approval_request_id: str | None = None
    approve: bool | None = None
    reason: str | None = None
    error: dict[str, Any] | None = attrs.field(default=None, hash=False)


@final
@attrs.frozen(slots=True, kw_only=True)
class Usage:
    """Token usage of one response (``response.done``)."""

    total_tokens: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    input_token_details: dict[str, Any] | None = None
    output_token_details: dict[str, Any] | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class RateLimit:
    """One entry of ``rate_limits.updated``."""

    name: str
    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None


@final
@attrs.frozen(slots=True)
class TranscriptEntry:
    """One line of the running transcript: who said it and what (codex-realtime.md §5.6)."""

    role: str
    text: str
