"""Parsing client events for the server role (the simulator), shared by both dialects.

Each handler turns a decoded frame into one typed ``ClientEvent`` or raises ``FieldError``.
Which tags a dialect accepts is decided by the tables in ``_parse_v1`` / ``_parse_v2``; a tag
missing there becomes ``UnknownEvent`` so a strict server can answer ``invalid_value``.

``session.create`` / ``session.update`` record the keys the dialect does not know in
``WireSession.unknown_fields`` (GA answers those with ``unknown_parameter``): beta spellings
such as ``session.voice`` or ``session.input_audio_format`` on a GA session, and v1's
``conversation_id`` on GA.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import attrs

from ._audio import b64decode_pcm
from ._client_events import (
    ClientEvent,
    ConversationItemCreate,
    ConversationItemDelete,
    ConversationItemRetrieve,
    ConversationItemTruncate,
    HandoffAppend,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCommit,
    OutputAudioBufferClear,
    ResponseCancel,
    ResponseCreate,
    SessionCreate,
    SessionUpdate,
)
from ._converter import StructureError, structure, unknown_paths
from ._parse_common import FieldError, item, opt_str, req_dict, req_str
from ._session import WireSession

__all__ = ["COMMON_CLIENT_HANDLERS", "ClientHandler", "handoff_append", "session_handler"]

ClientHandler = Callable[[dict[str, Any]], ClientEvent]


def _append(obj: dict[str, Any]) -> ClientEvent:
    audio = req_str(obj, "audio")
    try:
        pcm = b64decode_pcm(audio)
    except ValueError:
        raise FieldError("'audio' is not valid base64") from None
    return InputAudioBufferAppend(audio=pcm, event_id=opt_str(obj, "event_id"))


def _commit(obj: dict[str, Any]) -> ClientEvent:
    return InputAudioBufferCommit(event_id=opt_str(obj, "event_id"))


def _clear(obj: dict[str, Any]) -> ClientEvent:
    return InputAudioBufferClear(event_id=opt_str(obj, "event_id"))


def _output_clear(obj: dict[str, Any]) -> ClientEvent:
    return OutputAudioBufferClear(event_id=opt_str(obj, "event_id"))


def _item_create(obj: dict[str, Any]) -> ClientEvent:
    return ConversationItemCreate(
        item=item(obj),
        previous_item_id=opt_str(obj, "previous_item_id"),
        event_id=opt_str(obj, "event_id"),
    )


def _truncate(obj: dict[str, Any]) -> ClientEvent:
    audio_end_ms = obj.get("audio_end_ms")
    if type(audio_end_ms) is not int:
        raise FieldError("field 'audio_end_ms' must be an integer")
    content_index = obj.get("content_index", 0)
    if type(content_index) is not int:
        raise FieldError("field 'content_index' must be an integer")
    return ConversationItemTruncate(
        item_id=req_str(obj, "item_id"),
        content_index=content_index,
        audio_end_ms=audio_end_ms,
        event_id=opt_str(obj, "event_id"),
    )


def _delete(obj: dict[str, Any]) -> ClientEvent:
    return ConversationItemDelete(
        item_id=req_str(obj, "item_id"), event_id=opt_str(obj, "event_id")
    )


def _retrieve(obj: dict[str, Any]) -> ClientEvent:
    return ConversationItemRetrieve(
        item_id=req_str(obj, "item_id"), event_id=opt_str(obj, "event_id")
    )


def _response_create(obj: dict[str, Any]) -> ClientEvent:
    response = obj.get("response")
    if response is not None and type(response) is not dict:
        raise FieldError("field 'response' must be an object")
    return ResponseCreate(response=response, event_id=opt_str(obj, "event_id"))


def _response_cancel(obj: dict[str, Any]) -> ClientEvent:
    return ResponseCancel(
        response_id=opt_str(obj, "response_id"), event_id=opt_str(obj, "event_id")
    )


def handoff_append(obj: dict[str, Any]) -> ClientEvent:
    """``conversation.handoff.append`` (v1 only)."""
    return HandoffAppend(
        handoff_id=req_str(obj, "handoff_id"),
        output_text=req_str(obj, "output_text"),
        event_id=opt_str(obj, "event_id"),
    )


_GA_DROPS: Final = frozenset({"conversation_id"})
# GA-only session fields: a v1 session reports them as unknown (and ignores them).
_V1_DROPS: Final = frozenset(
    {"max_output_tokens", "truncation", "tracing", "prompt", "include", "reasoning"}
)


_NULLABLE_INPUT: Final = ("noise_reduction", "transcription", "turn_detection")


def _with_nulls(session: WireSession, raw: dict[str, Any]) -> WireSession:
    """Record which ``audio.input`` fields the client sent as JSON null (GA's "off").

    ``extra`` and ``nulls`` are bookkeeping, not wire keys: whatever a client sent under those
    names is dropped here (and reported as unknown by ``unknown_paths``)."""
    if session.extra is not None:
        session = attrs.evolve(session, extra=None)
    audio = raw.get("audio")
    given = audio.get("input") if type(audio) is dict else None
    if type(given) is not dict or session.audio is None or session.audio.input is None:
        return session
    nulls = tuple(k for k in _NULLABLE_INPUT if k in given and given[k] is None)
    if nulls == session.audio.input.nulls:
        return session
    audio_in = attrs.evolve(session.audio.input, nulls=nulls)
    return attrs.evolve(session, audio=attrs.evolve(session.audio, input=audio_in))


def session_handler(*, create: bool, ga: bool) -> ClientHandler:
    """The handler for ``session.create`` (``create``) or ``session.update`` of a dialect."""

    def handle(obj: dict[str, Any]) -> ClientEvent:
        raw = req_dict(obj, "session")
        try:
            session = structure(raw, WireSession)
        except StructureError as exc:
            raise FieldError(f"invalid 'session': {exc}") from None
        session = _with_nulls(session, raw)
        unknown = (
            unknown_paths(raw, drop=_GA_DROPS)
            if ga
            else unknown_paths(raw, allowed_extra=frozenset(), drop=_V1_DROPS)
        )
        if unknown:
            session = attrs.evolve(session, unknown_fields=unknown)
        event_id = opt_str(obj, "event_id")
        if create:
            return SessionCreate(session=session, event_id=event_id)
        return SessionUpdate(session=session, event_id=event_id)

    return handle


COMMON_CLIENT_HANDLERS: Final[dict[str, ClientHandler]] = {
    "input_audio_buffer.append": _append,
    "input_audio_buffer.commit": _commit,
    "input_audio_buffer.clear": _clear,
    "output_audio_buffer.clear": _output_clear,
    "conversation.item.create": _item_create,
    "conversation.item.truncate": _truncate,
    "conversation.item.delete": _delete,
    "conversation.item.retrieve": _retrieve,
    "response.create": _response_create,
    "response.cancel": _response_cancel,
}
