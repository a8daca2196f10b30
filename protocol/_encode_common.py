"""What both dialects share when building frames: client-event encoding, the server-role
payloads whose shape is the same in v1 and v2, and small argument checks.

Invariants:
- Builders and encoders raise ``LocalProtocolError`` for arguments the dialect cannot carry;
  they never produce a frame the matching parser would reject.
- Payload functions return plain dicts (so the simulator can add ``event_id`` or locator
  fields before dumping); ``encode_*`` in ``_codec`` turn them into JSON text.
- Audio leaves as base64 only here, at the edge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson

from ._audio import b64encode_pcm
from ._client_events import ClientEvent, InputAudioBufferAppend
from ._converter import unstructure
from ._errors import LocalProtocolError
from ._events import (
    ConversationItemAdded,
    ConversationItemDeleted,
    ConversationItemTruncated,
    Error,
    InputAudioCommitted,
    InputAudioSpeechStarted,
    InputAudioSpeechStopped,
    InputTranscriptDone,
    RateLimitsUpdated,
    ResponseCancelled,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    UnknownEvent,
)

__all__ = [
    "COMMON_SERVER_PAYLOADS",
    "ServerPayload",
    "audio_append_text",
    "client_payload",
    "drop_none",
    "require_text",
    "transcription_usage",
]

# vocabulary event -> wire dict
ServerPayload = Callable[[Any], dict[str, Any]]


def require_text(value: str, what: str) -> str:
    """``value`` if it is a non-empty string, else ``LocalProtocolError`` naming ``what``."""
    if not isinstance(value, str) or not value:
        raise LocalProtocolError(f"{what} must be a non-empty string, got {value!r}")
    return value


def drop_none(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` without keys whose value is ``None``."""
    return {k: v for k, v in payload.items() if v is not None}


def client_payload(event: ClientEvent) -> dict[str, Any]:
    """The wire dict of a client event (same shape in both dialects)."""
    body: dict[str, Any] = {"type": event.TYPE}
    fields = unstructure(event)
    if isinstance(event, InputAudioBufferAppend):
        fields["audio"] = b64encode_pcm(event.audio)
    body.update(fields)
    return body


def audio_append_text(pcm: bytes, event_id: str | None = None) -> str:
    """JSON text of ``input_audio_buffer.append`` without a dict or a JSON encoder in between:
    this is the WebSocket audio upload hot path, and base64 needs no JSON escaping."""
    if event_id is None:
        return '{"type":"input_audio_buffer.append","audio":"' + b64encode_pcm(pcm) + '"}'
    # The id is caller-chosen text: let the JSON encoder escape it.
    return (
        '{"type":"input_audio_buffer.append","event_id":'
        + orjson.dumps(event_id).decode()
        + ',"audio":"'
        + b64encode_pcm(pcm)
        + '"}'
    )


def _speech_started(e: InputAudioSpeechStarted) -> dict[str, Any]:
    return drop_none({"type": e.TYPE, "item_id": e.item_id, "audio_start_ms": e.audio_start_ms})


def _speech_stopped(e: InputAudioSpeechStopped) -> dict[str, Any]:
    return drop_none({"type": e.TYPE, "item_id": e.item_id, "audio_end_ms": e.audio_end_ms})


def _committed(e: InputAudioCommitted) -> dict[str, Any]:
    # GA always sends previous_item_id, null for the first item.
    return drop_none({"type": e.TYPE, "item_id": e.item_id}) | {
        "previous_item_id": e.previous_item_id
    }


def _response(response_id: str | None, status: str, **extra: Any) -> dict[str, Any]:
    return drop_none({"id": response_id, "object": "realtime.response", "status": status, **extra})


def _response_created(e: ResponseCreated) -> dict[str, Any]:
    response = _response(e.response_id, "in_progress", output=[], metadata=e.metadata)
    return {"type": e.TYPE, "response": response}


def _response_cancelled(e: ResponseCancelled) -> dict[str, Any]:
    return {"type": e.TYPE, "response": _response(e.response_id, "cancelled")}


def transcription_usage(e: InputTranscriptDone) -> dict[str, Any] | None:
    """``usage`` of ``…input_audio_transcription.completed``: tokens or audio duration."""
    if e.usage is not None:
        return {"type": "tokens", **unstructure(e.usage)}
    if e.audio_seconds is not None:
        return {"type": "duration", "seconds": e.audio_seconds}
    return None


def _response_done(e: ResponseDone) -> dict[str, Any]:
    usage = unstructure(e.usage) if e.usage is not None else None
    details = None
    if e.reason is not None or e.error_code is not None:
        failure = None if e.error_code is None else {"type": "error", "code": e.error_code}
        details = drop_none({"type": e.status, "reason": e.reason, "error": failure})
    response = drop_none(
        {
            "id": e.response_id,
            "object": "realtime.response",
            "status": e.status,
            "status_details": details,
            "usage": usage,
            "metadata": e.metadata,
        }
    )
    return {"type": e.TYPE, "response": response}


def _item_added(e: ConversationItemAdded) -> dict[str, Any]:
    return {"type": e.TYPE, "previous_item_id": None, "item": unstructure(e.item)}


def _item_truncated(e: ConversationItemTruncated) -> dict[str, Any]:
    return {
        "type": e.TYPE,
        "item_id": e.item_id,
        "content_index": e.content_index,
        "audio_end_ms": e.audio_end_ms,
    }


def _item_deleted(e: ConversationItemDeleted) -> dict[str, Any]:
    return {"type": e.TYPE, "item_id": e.item_id}


def _rate_limits(e: RateLimitsUpdated) -> dict[str, Any]:
    return {"type": e.TYPE, "rate_limits": [unstructure(limit) for limit in e.limits]}


def _error(e: Error) -> dict[str, Any]:
    # fatal is not on the wire: the parser derives it from the code.
    return {
        "type": e.TYPE,
        "error": {
            # Required on the wire: a synthesised Error without one gets the usual class.
            "type": "invalid_request_error" if e.error_type is None else e.error_type,
            "code": e.code,
            "message": e.message,
            "param": e.param,
            "event_id": e.event_id,
        },
    }


def _unknown(e: UnknownEvent) -> dict[str, Any]:
    return {**e.payload, "type": e.type}


COMMON_SERVER_PAYLOADS: Final[dict[type[ServerEvent], ServerPayload]] = {
    InputAudioSpeechStarted: _speech_started,
    InputAudioSpeechStopped: _speech_stopped,
    InputAudioCommitted: _committed,
    ResponseCreated: _response_created,
    ResponseCancelled: _response_cancelled,
    ResponseDone: _response_done,
    ConversationItemAdded: _item_added,
    ConversationItemTruncated: _item_truncated,
    ConversationItemDeleted: _item_deleted,
    RateLimitsUpdated: _rate_limits,
    Error: _error,
    UnknownEvent: _unknown,
}
