"""The private cattrs converter that moves nested wire structures (items, session configs,
usage, client events) between dicts and the frozen attrs classes.

Invariants:
- Structuring is *strict about types* (a string field given a number is an error, booleans
  are not integers) and *lenient about keys* (unknown keys are ignored): that is what the
  parsers need to tell a mistyped known field (``ParseFailure``) from a newer server adding
  fields (ignored).
- Unstructuring omits ``None`` fields, so builders emit only what they set (the real server
  treats an absent field as "keep" and ``null`` as "clear").
- Hot-path events (audio and transcript deltas) never go through cattrs; the dialect parsers
  handle them by hand. cattrs is for the rare, nested shapes where clarity beats speed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import UnionType
from typing import Any, Final, TypeVar, Union, get_args, get_origin

import attrs
import cattrs

from ._items import ContentPart, ConversationItem, RateLimit, Usage
from ._session import (
    AudioConfig,
    AudioFormat,
    AudioInputConfig,
    AudioOutputConfig,
    FunctionTool,
    InputTranscription,
    McpTool,
    NoiseReduction,
    TurnDetection,
    WireSession,
)

__all__ = ["CONVERTER", "StructureError", "structure", "unknown_paths", "unstructure"]

T = TypeVar("T")


class StructureError(ValueError):
    """A nested wire structure does not fit its class. The message names the field path."""


def merge_extra(out: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge ``extra`` (unmodelled wire fields) into an encoded object: an object in
    ``extra`` merges into the object already at its key, level by level, so
    ``{"audio": {"input": {"transcription": {"delay": "low"}}}}`` adds one field and keeps
    the rest of ``audio``; an object of another ``type`` (``semantic_vad`` over
    ``server_vad``) replaces it whole, as the server does, and so does anything else (a
    value, a list, ``None``)."""
    for key, value in extra.items():
        current = out.get(key)
        if (
            isinstance(value, Mapping)
            and isinstance(current, dict)
            and value.get("type", current.get("type")) == current.get("type")
        ):
            merged = dict(current)
            merge_extra(merged, value)
            out[key] = merged
        elif isinstance(value, Mapping):
            out[key] = _plain(value)
        else:
            out[key] = value


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready copy of a mapping of any kind (a ``MappingProxyType`` included)."""
    return {k: _plain(v) if isinstance(v, Mapping) else v for k, v in value.items()}


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=False)

    def strict(kind: type[Any]) -> Callable[[Any, Any], Any]:
        def hook(value: Any, _: Any) -> Any:
            if type(value) is not kind:
                raise StructureError(f"expected {kind.__name__}, got {type(value).__name__}")
            return value

        return hook

    def structure_float(value: Any, _: Any) -> float:
        # JSON does not distinguish 1 from 1.0; bools are not numbers here.
        if type(value) is float or type(value) is int:
            return float(value)
        raise StructureError(f"expected number, got {type(value).__name__}")

    def structure_dict(value: Any, _: Any) -> dict[str, Any]:
        if type(value) is not dict:
            raise StructureError(f"expected object, got {type(value).__name__}")
        return value

    json_kinds: dict[Any, type[Any]] = {str: str, int: int, float: float, bool: bool}

    def is_json_union(kind: Any) -> bool:
        # "A string or an object" style GA fields (str | dict[str, Any] | None, int | str |
        # None); plain Optional[X] keeps cattrs' own handling.
        args = get_args(kind)
        if get_origin(kind) not in (Union, UnionType) or len(args) < 2:
            return False
        real = [a for a in args if a is not type(None)]
        return len(real) >= 2 and all(a in json_kinds or a == dict[str, Any] for a in real)

    def json_union_factory(kind: Any) -> Callable[[Any, Any], Any]:
        args = get_args(kind)
        allowed = tuple(
            dict if a == dict[str, Any] else json_kinds[a] for a in args if a is not type(None)
        )

        def hook(value: Any, _: Any) -> Any:
            if type(value) in allowed:
                return value
            raise StructureError(
                f"expected {' or '.join(k.__name__ for k in allowed)}, got {type(value).__name__}"
            )

        return hook

    conv.register_structure_hook(str, strict(str))
    conv.register_structure_hook(int, strict(int))
    conv.register_structure_hook(bool, strict(bool))
    conv.register_structure_hook(float, structure_float)
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], structure_dict)

    def tuple_factory(kind: Any) -> Callable[[Any, Any], Any]:
        args = get_args(kind)
        element = args[0] if args else Any

        def hook(value: Any, _: Any) -> tuple[Any, ...]:
            # A JSON string is iterable; without this check "audio" would become 5 letters.
            if type(value) is not list:
                raise StructureError(f"expected array, got {type(value).__name__}")
            return tuple(conv.structure(v, element) for v in value)

        return hook

    def omit_none_factory(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
        # Only None is omitted, never a default value: PCM_24K must still say
        # {"type": "audio/pcm", "rate": 24000}. unknown_fields is parser bookkeeping; extra
        # (unmodelled wire fields) is merged in last.
        skip = {"unknown_fields", "extra", "nulls"}
        names = tuple(a.name for a in attrs.fields(cls) if a.name not in skip)
        has_extra = any(a.name == "extra" for a in attrs.fields(cls))
        has_nulls = any(a.name == "nulls" for a in attrs.fields(cls))
        unstructure_value = conv.unstructure

        def hook(obj: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name in names:
                value = getattr(obj, name)
                if value is not None:
                    out[name] = unstructure_value(value)
            if has_nulls:
                for name in obj.nulls:
                    out[name] = None
            if has_extra and obj.extra:
                merge_extra(out, obj.extra)
            return out

        return hook

    def is_tuple(kind: Any) -> bool:
        return get_origin(kind) is tuple

    def structure_tool(value: Any, _: Any) -> FunctionTool | McpTool:
        # The wire says which kind: {"type": "mcp", ...} is a server, anything else a
        # function (whose own "type" field then says what it is).
        if type(value) is dict and value.get("type") == "mcp":
            return conv.structure(value, McpTool)
        return conv.structure(value, FunctionTool)

    conv.register_structure_hook_func(lambda t: t == FunctionTool | McpTool, structure_tool)
    conv.register_structure_hook_factory(is_tuple, tuple_factory)
    conv.register_structure_hook_factory(is_json_union, json_union_factory)
    conv.register_unstructure_hook_factory(attrs.has, omit_none_factory)
    return conv


CONVERTER: Final = _make_converter()


def structure(value: Any, cls: type[T]) -> T:
    """Structure ``value`` into ``cls`` or raise ``StructureError`` naming what is wrong."""
    if type(value) is not dict:
        raise StructureError(f"{cls.__name__}: expected object, got {type(value).__name__}")
    try:
        return CONVERTER.structure(value, cls)
    except StructureError as exc:
        raise StructureError(f"{cls.__name__}: {exc}") from None
    except (KeyError, TypeError, ValueError, cattrs.BaseValidationError) as exc:
        # A required attribute missing surfaces as TypeError from the generated __init__.
        raise StructureError(f"{cls.__name__}: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 120 else text[:117] + "..."


def unstructure(value: Any) -> Any:
    """The wire form of an attrs value: a dict without ``None`` fields."""
    return CONVERTER.unstructure(value)


# Keys a GA server accepts in ``session`` that duplex does not model: accepted, ignored.
_GA_SESSION_EXTRAS: Final = frozenset(
    {"object", "expires_at", "parallel_tool_calls", "client_secret"}
)
_NESTED: Final[dict[type[Any], dict[str, type[Any]]]] = {
    WireSession: {"audio": AudioConfig},
    AudioConfig: {"input": AudioInputConfig, "output": AudioOutputConfig},
    AudioInputConfig: {"format": AudioFormat},
    AudioOutputConfig: {"format": AudioFormat},
}
_LEAF_CLASSES: Final = (
    AudioFormat, NoiseReduction, InputTranscription, TurnDetection, FunctionTool, McpTool,
    ContentPart, ConversationItem, Usage, RateLimit,
)  # fmt: skip


def unknown_paths(
    raw: Mapping[str, Any],
    cls: type[Any] = WireSession,
    *,
    allowed_extra: frozenset[str] = _GA_SESSION_EXTRAS,
    drop: frozenset[str] = frozenset(),
    prefix: str = "session",
) -> tuple[str, ...]:
    """Dotted paths of keys in ``raw`` that ``cls`` (recursively) does not know.

    ``allowed_extra`` names top-level keys a dialect accepts without modelling them; ``drop``
    names modelled keys the dialect nevertheless does not accept (``conversation_id`` on GA).
    """
    known = {a.name for a in attrs.fields(cls)} - {"unknown_fields", "extra", "nulls"} - drop
    found: list[str] = []
    for key, value in raw.items():
        path = f"{prefix}.{key}"
        if key not in known and key not in allowed_extra:
            found.append(path)
            continue
        child = _NESTED.get(cls, {}).get(key)
        if child is not None and isinstance(value, Mapping):
            found.extend(unknown_paths(value, child, allowed_extra=frozenset(), prefix=path))
    return tuple(found)


assert all(attrs.has(c) for c in _LEAF_CLASSES)
