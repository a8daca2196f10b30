"""Wire form of the GA-only server events (``_ga_events`` plus ``OutputAudioDone``): the v2
parse handlers (client role) and payloads (server role, for the simulator).

Strategy: these events are flat (an envelope of ids, indexes, text, at most one item or
content part), so one table-driven reader and one writer serve them all, derived from each
class's attrs fields. A field's annotation decides how it is read:

- ``str`` / ``int`` / ``float``: required (missing or mistyped → ``ParseFailure``);
- ``str | None``: optional (a mistyped value counts as absent, as everywhere in the parsers);
- ``int`` with a default (the locator indexes): optional, default when absent or mistyped;
- ``ConversationItem`` / ``ContentPart`` (wire keys ``item`` / ``part``): required, structured.

Only two events nest their fields (``conversation.created``'s ``conversation.id`` and
``…transcription.failed``'s ``error``); they are written by hand below, as is the payload of
``response.output_audio.done`` (its locator indexes are not vocabulary fields).

Invariants: handlers raise only ``FieldError``; payloads carry exactly what the parser reads
back (``parse(encode(e)) == e``) plus the constant fields the official models require.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import attrs

from . import _ga_events as ga
from ._converter import StructureError, structure, unstructure
from ._encode_common import ServerPayload, drop_none
from ._events import OutputAudioDone, ServerEvent
from ._items import ContentPart, ConversationItem
from ._parse_common import FieldError, Handler, opt_str, req_dict, req_str

__all__ = ["GA_SERVER_HANDLERS", "GA_SERVER_PAYLOADS"]

_Reader = Callable[[dict[str, Any]], Any]


def _required(key: str, kind: type[Any], what: str) -> _Reader:
    def read(obj: dict[str, Any]) -> Any:
        value = obj.get(key)
        if type(value) is kind:
            return value
        if kind is float and type(value) is int:  # JSON does not tell 1 from 1.0
            return float(value)
        if value is None:
            raise FieldError(f"missing required field '{key}'")
        raise FieldError(f"field '{key}' must be {what}")

    return read


def _optional_str(key: str) -> _Reader:
    return lambda obj: opt_str(obj, key)


def _index(key: str, default: int) -> _Reader:
    def read(obj: dict[str, Any]) -> int:
        value = obj.get(key)
        return value if type(value) is int else default

    return read


def _structured(key: str, cls: type[Any]) -> _Reader:
    def read(obj: dict[str, Any]) -> Any:
        raw = req_dict(obj, key)
        try:
            return structure(raw, cls)
        except StructureError as exc:
            raise FieldError(f"invalid '{key}': {exc}") from None

    return read


_NESTED_KEYS: Final = {
    "ConversationItem": ("item", ConversationItem),
    "ContentPart": ("part", ContentPart),
}


def _reader(field: attrs.Attribute[Any]) -> _Reader:
    # Annotations are strings here (postponed evaluation), e.g. "str | None".
    annotation: Any = field.type
    default: Any = field.default
    if annotation in _NESTED_KEYS:
        key, cls = _NESTED_KEYS[annotation]
        if key != field.name:
            raise AssertionError(f"{field.name}: nested values live under {key!r}")
        return _structured(key, cls)
    if annotation == "str | None":
        return _optional_str(field.name)
    if annotation == "int" and default is not attrs.NOTHING:
        return _index(field.name, default)
    kinds = {"str": (str, "a string"), "int": (int, "an integer"), "float": (float, "a number")}
    if annotation in kinds:
        kind, what = kinds[annotation]
        return _required(field.name, kind, what)
    raise AssertionError(f"no wire reader for {field.name}: {annotation}")


def _handler(cls: type[ServerEvent]) -> Handler:
    readers = tuple(_reader(f) for f in attrs.fields(cls))  # type: ignore[arg-type]

    def handle(obj: dict[str, Any]) -> ServerEvent:
        return cls(*[read(obj) for read in readers])

    return handle


def _payload(cls: type[ServerEvent]) -> ServerPayload:
    names = tuple(f.name for f in attrs.fields(cls))  # type: ignore[arg-type]
    tag = cls.TYPE

    def encode(event: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"type": tag}
        for name in names:
            value = getattr(event, name)
            if value is None:
                continue
            if type(value) is ConversationItem or type(value) is ContentPart:
                value = unstructure(value)
            out[name] = value
        return out

    return encode


# ---- the two nested shapes ----------------------------------------------------------------


def _conversation_created(obj: dict[str, Any]) -> ServerEvent:
    conversation = req_dict(obj, "conversation")
    return ga.ConversationCreated(opt_str(conversation, "id"))


def _conversation_created_payload(e: ga.ConversationCreated) -> dict[str, Any]:
    conversation = drop_none({"id": e.conversation_id, "object": "realtime.conversation"})
    return {"type": e.TYPE, "conversation": conversation}


def _transcription_failed(obj: dict[str, Any]) -> ServerEvent:
    error = req_dict(obj, "error")
    index = obj.get("content_index")
    return ga.InputTranscriptFailed(
        req_str(obj, "item_id"),
        index if type(index) is int else 0,
        opt_str(error, "message"),
        opt_str(error, "code"),
    )


def _transcription_failed_payload(e: ga.InputTranscriptFailed) -> dict[str, Any]:
    error = drop_none({"type": "transcription_error", "code": e.code, "message": e.message})
    return {
        "type": e.TYPE,
        "item_id": e.item_id,
        "content_index": e.content_index,
        "error": error,
    }


def _output_audio_done_payload(e: OutputAudioDone) -> dict[str, Any]:
    # The official model requires the locators; duplex items have one audio part.
    locator = {"response_id": e.response_id, "item_id": e.item_id}
    return {"type": e.TYPE, **drop_none(locator), "output_index": 0, "content_index": 0}


_HAND_WRITTEN: Final[dict[type[ServerEvent], tuple[Handler, ServerPayload]]] = {
    OutputAudioDone: (_handler(OutputAudioDone), _output_audio_done_payload),
    ga.ConversationCreated: (_conversation_created, _conversation_created_payload),
    ga.InputTranscriptFailed: (_transcription_failed, _transcription_failed_payload),
}
_CLASSES: Final[tuple[type[ServerEvent], ...]] = (
    OutputAudioDone,
    *(
        cls
        for name in ga.__all__
        if isinstance(cls := getattr(ga, name), type) and issubclass(cls, ServerEvent)
    ),
)


def _tables() -> tuple[dict[str, Handler], dict[type[ServerEvent], ServerPayload]]:
    handlers: dict[str, Handler] = {}
    payloads: dict[type[ServerEvent], ServerPayload] = {}
    for cls in _CLASSES:
        handler, payload = _HAND_WRITTEN.get(cls) or (_handler(cls), _payload(cls))
        handlers[cls.TYPE] = handler
        payloads[cls] = payload
    # The beta spelling a transitional server may still send (see _parse_v2).
    handlers["response.audio.done"] = handlers[OutputAudioDone.TYPE]
    return handlers, payloads


GA_SERVER_HANDLERS, GA_SERVER_PAYLOADS = _tables()
