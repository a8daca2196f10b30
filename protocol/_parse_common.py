"""What both dialects share when parsing: the envelope, bounded previews, field readers and
the handlers for events whose shape is the same in v1 and v2.

Strategy: a frame is decoded once with orjson; its ``type`` selects a handler from the
dialect's table; the handler reads the fields it needs and builds one event. Handlers raise
``FieldError`` for a missing or mistyped *required* field, and the dispatcher turns that into a
``ParseFailure``; optional fields of the wrong type are treated as absent, because servers add
and loosen fields over time and that must not cost the host an event.

Invariants:
- Nothing here raises out of the package's ``parse_*`` entry points.
- ``preview()`` output is at most ``PREVIEW_LIMIT`` characters and never carries audio: known
  audio keys are replaced by their length and any long base64-looking run is elided.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Final, TypeGuard

import orjson

from ._converter import StructureError, structure
from ._enums import is_fatal_error_code
from ._events import (
    ConversationItemAdded,
    ConversationItemDeleted,
    ConversationItemDone,
    ConversationItemTruncated,
    Error,
    InputAudioCommitted,
    InputAudioSpeechStarted,
    InputAudioSpeechStopped,
    InputTranscriptDone,
    OutputTranscriptDone,
    ParseFailure,
    RateLimitsUpdated,
    ResponseCancelled,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
)
from ._items import ConversationItem, RateLimit, Usage

__all__ = [
    "COMMON_SERVER_HANDLERS",
    "PREVIEW_LIMIT",
    "FieldError",
    "Handler",
    "decode_envelope",
    "input_done",
    "opt_int",
    "opt_str",
    "output_done_text",
    "output_done_transcript",
    "preview",
    "req_dict",
    "req_str",
]

PREVIEW_LIMIT: Final = 200
# Keys whose string values are audio (base64) in either direction.
AUDIO_KEYS: Final = frozenset({"delta", "audio", "data"})
_B64_RUN: Final = re.compile(r"[A-Za-z0-9+/]{32,}={0,2}")
# The value after an audio key in raw text, even a short or unterminated one.
_AUDIO_VALUE: Final = re.compile(r'("(?:delta|audio|data)"\s*:\s*")([^"]*)("?)')
_SCAN_LIMIT: Final = 4 * PREVIEW_LIMIT

# decoded frame -> event; raises FieldError for a missing or mistyped required field
Handler = Callable[[dict[str, Any]], ServerEvent]


class FieldError(Exception):
    """A required field is missing or mistyped; the message is the ParseFailure reason."""


def preview(data: str | bytes | dict[str, Any]) -> str:
    """A short, audio-free rendering of a bad frame for logs and ``ParseFailure``."""
    if isinstance(data, dict):
        # Rendered depth-limited first: the frame may nest arbitrarily deep or be huge.
        text = orjson.dumps(_shallow(data, 0)).decode()
    else:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    cut = len(text) > _SCAN_LIMIT
    text = text[:_SCAN_LIMIT]
    if cut:
        # A base64 run straddling the cut could be shorter than the elision threshold.
        text = text.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    text = _AUDIO_VALUE.sub(lambda m: f"{m.group(1)}<{len(m.group(2))} chars>{m.group(3)}", text)
    text = _B64_RUN.sub(lambda m: f"<{len(m.group())} base64 chars>", text)
    if len(text) > PREVIEW_LIMIT or cut:
        text = text[: PREVIEW_LIMIT - 1] + "…"
    return text


def _shallow(value: Any, depth: int, key: str = "") -> Any:
    if isinstance(value, str):
        if key in AUDIO_KEYS:
            return f"<{len(value)} chars>"
        return value if len(value) <= 60 else value[:57] + "..."
    if isinstance(value, dict):
        if depth >= 2:
            return f"{{{len(value)} keys}}"
        return {str(k)[:40]: _shallow(v, depth + 1, str(k)) for k, v in list(value.items())[:12]}
    if isinstance(value, list):
        if depth >= 2:
            return f"[{len(value)} items]"
        return [_shallow(v, depth + 1) for v in value[:3]] + (["..."] if len(value) > 3 else [])
    if isinstance(value, bool | float) or value is None:
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else "<big int>"
    return repr(value)[:40]


def decode_envelope(data: str | bytes) -> dict[str, Any] | ParseFailure:
    """Decode one frame into a dict with a string ``type``, or say why it is not one."""
    try:
        obj = orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError):
        return ParseFailure("invalid JSON", preview(data if isinstance(data, str | bytes) else ""))
    if type(obj) is not dict:
        return ParseFailure(f"expected a JSON object, got {_json_kind(obj)}", preview(data))
    kind = obj.get("type")
    if type(kind) is not str:
        reason = "missing 'type'" if kind is None else "'type' is not a string"
        return ParseFailure(reason, preview(obj))
    return obj


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"


def req_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if type(value) is not str:
        raise FieldError(_field_problem(key, value, "string"))
    return value


def req_dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if type(value) is not dict:
        raise FieldError(_field_problem(key, value, "object"))
    return value


def _field_problem(key: str, value: object, expected: str) -> str:
    if value is None:
        return f"missing required field '{key}'"
    return f"field '{key}' must be a {expected}, got {_json_kind(value)}"


def opt_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if type(value) is str else None


def opt_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if type(value) is int else None


def _response_id(obj: dict[str, Any]) -> str | None:
    # GA nests the id in "response"; some servers put "response_id" at the top level.
    response = obj.get("response")
    if type(response) is dict:
        rid = response.get("id")
        if type(rid) is str:
            return rid
    return opt_str(obj, "response_id")


def session_created(obj: dict[str, Any]) -> ServerEvent:
    session = obj.get("session")
    return SessionCreated(opt_str(session, "id") if type(session) is dict else None)


def session_updated(obj: dict[str, Any]) -> ServerEvent:
    session = req_dict(obj, "session")
    return SessionUpdated(opt_str(session, "id"), opt_str(session, "instructions"))


def error(obj: dict[str, Any]) -> ServerEvent:
    # Message precedence follows the Rust original: top-level message, then error.message,
    # then the error object itself serialised.
    detail = obj.get("error")
    detail = detail if type(detail) is dict else None
    message = opt_str(obj, "message")
    if message is None and detail is not None:
        message = opt_str(detail, "message")
    if message is None:
        if obj.get("error") is None:
            raise FieldError("missing required field 'error'")
        # Depth-limited: an error value may nest arbitrarily deep.
        message = orjson.dumps(_shallow(obj["error"], 0)).decode()
    if detail is not None:
        code = opt_str(detail, "code")
        event_id = opt_str(detail, "event_id")
        error_type = opt_str(detail, "type")
        param = opt_str(detail, "param")
    else:
        code = opt_str(obj, "code")
        event_id = error_type = param = None
    return Error(message, code, event_id, is_fatal_error_code(code), error_type, param)


def speech_started(obj: dict[str, Any]) -> ServerEvent:
    return InputAudioSpeechStarted(opt_str(obj, "item_id"), opt_int(obj, "audio_start_ms"))


def speech_stopped(obj: dict[str, Any]) -> ServerEvent:
    return InputAudioSpeechStopped(opt_str(obj, "item_id"), opt_int(obj, "audio_end_ms"))


def committed(obj: dict[str, Any]) -> ServerEvent:
    return InputAudioCommitted(opt_str(obj, "item_id"), opt_str(obj, "previous_item_id"))


def _metadata(response: object) -> dict[str, str] | None:
    """A response's ``metadata``: its string pairs (anything else in it is dropped), or None."""
    if type(response) is not dict:
        return None
    raw = response.get("metadata")
    if type(raw) is not dict:
        return None
    return {k: v for k, v in raw.items() if type(k) is str and type(v) is str}


def response_created(obj: dict[str, Any]) -> ServerEvent:
    return ResponseCreated(_response_id(obj), _metadata(obj.get("response")))


def response_cancelled(obj: dict[str, Any]) -> ServerEvent:
    return ResponseCancelled(_response_id(obj))


def response_done(obj: dict[str, Any]) -> ServerEvent:
    # Function calls inside response.output are deliberately not handoffs: the item events
    # already delivered them, and acting twice would answer one call_id twice.
    response = obj.get("response")
    status = usage = reason = error_code = None
    if type(response) is dict:
        status = opt_str(response, "status")
        raw_usage = response.get("usage")
        if type(raw_usage) is dict:
            try:
                usage = structure(raw_usage, Usage)
            except StructureError:
                usage = None
        details = response.get("status_details")
        if type(details) is dict:
            reason = opt_str(details, "reason")
            failure = details.get("error")
            if type(failure) is dict:
                error_code = opt_str(failure, "code")
    return ResponseDone(_response_id(obj), status, usage, _metadata(response), reason, error_code)


def item(obj: dict[str, Any]) -> ConversationItem:
    raw = req_dict(obj, "item")
    try:
        return structure(raw, ConversationItem)
    except StructureError as exc:
        raise FieldError(f"invalid 'item': {exc}") from None


def item_added(obj: dict[str, Any]) -> ServerEvent:
    return ConversationItemAdded(item(obj))


def item_done(obj: dict[str, Any]) -> ServerEvent:
    raw = req_dict(obj, "item")
    return ConversationItemDone(_item_id(raw))


def _item_id(raw: dict[str, Any]) -> str:
    item_id = raw.get("id")
    if type(item_id) is not str:
        raise FieldError(_field_problem("item.id", item_id, "string"))
    return item_id


def item_truncated(obj: dict[str, Any]) -> ServerEvent:
    return ConversationItemTruncated(
        req_str(obj, "item_id"),
        opt_int(obj, "content_index") or 0,
        opt_int(obj, "audio_end_ms") or 0,
    )


def item_deleted(obj: dict[str, Any]) -> ServerEvent:
    return ConversationItemDeleted(req_str(obj, "item_id"))


def rate_limits(obj: dict[str, Any]) -> ServerEvent:
    raw = obj.get("rate_limits")
    if type(raw) is not list:
        raise FieldError(_field_problem("rate_limits", raw, "array"))
    try:
        limits = tuple(structure(entry, RateLimit) for entry in raw)
    except StructureError as exc:
        raise FieldError(f"invalid 'rate_limits': {exc}") from None
    return RateLimitsUpdated(limits)


def _is_duration(value: object) -> TypeGuard[float]:
    return (
        isinstance(value, (int, float))
        and type(value) is not bool
        and math.isfinite(value)
        and value >= 0
    )


def input_done(obj: dict[str, Any]) -> ServerEvent:
    usage: Usage | None = None
    seconds: float | None = None
    raw = obj.get("usage")
    if type(raw) is dict:  # a malformed usage is dropped: the transcript is what matters
        if raw.get("type") == "duration":
            value = raw.get("seconds")
            if _is_duration(value):
                seconds = float(value)
        else:
            try:
                usage = structure(raw, Usage)
            except StructureError:
                usage = None
    return InputTranscriptDone(req_str(obj, "transcript"), opt_str(obj, "item_id"), usage, seconds)


def output_done_transcript(obj: dict[str, Any]) -> ServerEvent:
    return OutputTranscriptDone(
        req_str(obj, "transcript"), opt_str(obj, "item_id"), opt_str(obj, "response_id")
    )


def output_done_text(obj: dict[str, Any]) -> ServerEvent:
    return OutputTranscriptDone(
        req_str(obj, "text"), opt_str(obj, "item_id"), opt_str(obj, "response_id")
    )


COMMON_SERVER_HANDLERS: Final[dict[str, Handler]] = {
    "session.created": session_created,
    "transcription_session.created": session_created,
    "session.updated": session_updated,
    "transcription_session.updated": session_updated,
    "error": error,
    "input_audio_buffer.speech_started": speech_started,
    "input_audio_buffer.speech_stopped": speech_stopped,
    "input_audio_buffer.committed": committed,
    "response.created": response_created,
    "response.cancelled": response_cancelled,
    "response.done": response_done,
    "conversation.item.added": item_added,
    "conversation.item.created": item_added,
    "conversation.item.truncated": item_truncated,
    "conversation.item.deleted": item_deleted,
    "rate_limits.updated": rate_limits,
}
