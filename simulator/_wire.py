"""The simulator's one door to the protocol codec: client frames in, server frames out.

``decode_client_frame`` turns one inbound WebSocket/data-channel message into either a typed
client event (with its raw decoded dict) or a ``Rejection`` — the ``error`` the real server
would answer with. ``dump_event`` serialises a server event dict.

Why the simulator builds its own server dicts instead of encoding vocabulary events with
``protocol.encode_server_event``: a real response carries many events that are not in the
host-visible vocabulary (``response.output_item.added``, ``response.content_part.*``,
``response.function_call_arguments.*``, …) and fields the vocabulary drops (``output_index``,
``content_index``, full items). The simulator must produce the server's *full* shape; the
client-side codec is checked against it, not the other way round.

Invariants:
- never raises for any input;
- the rejection codes and messages are the real server's (openai-realtime-protocol.md §7.2):
  missing ``type`` → ``invalid_event``, unknown type → ``invalid_value``/``param: "type"``,
  GA ``session.update`` without ``session.type`` → ``missing_required_parameter``.
"""

from __future__ import annotations

from typing import Any

import attrs
import orjson

from duplex.protocol import (
    ClientEvent,
    ParseFailure,
    ProtocolVersion,
    UnknownEvent,
    client_event_types,
    parse_client_event,
)

__all__ = ["ClientFrame", "Rejection", "decode_client_frame", "dump_event"]


@attrs.frozen
class ClientFrame:
    """A client event the simulator understood: the typed event and its decoded JSON."""

    event: ClientEvent
    raw: dict[str, Any] = attrs.field(repr=False)


@attrs.frozen
class Rejection:
    """A frame the server refuses with an ``error`` event (the connection stays up)."""

    code: str | None
    message: str
    param: str | None = None
    client_event_id: str | None = None
    #: the client's ``type`` when it had one (recorded so tests can see rejected frames)
    type: str | None = None


def _event_id(obj: dict[str, Any]) -> str | None:
    value = obj.get("event_id")
    return value if isinstance(value, str) else None


def decode_client_frame(data: str | bytes, version: ProtocolVersion) -> ClientFrame | Rejection:
    """Classify one inbound message. See the module docstring."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Rejection(
            "invalid_json",
            "We could not parse the JSON body of your request. The Realtime API expects each "
            "message to be a JSON object.",
        )
    if not isinstance(obj, dict):
        return Rejection(
            "invalid_event", "Expected an object, but got " + type(obj).__name__ + " instead."
        )
    eid = _event_id(obj)
    kind = obj.get("type")
    if kind is None:
        return Rejection("invalid_event", "The 'type' field is missing.", client_event_id=eid)
    if not isinstance(kind, str):
        return Rejection(
            "invalid_type",
            "Invalid type for 'type': expected a string.",
            param="type",
            client_event_id=eid,
        )
    if (
        version is ProtocolVersion.V2
        and kind == "session.update"
        and isinstance(obj.get("session"), dict)
        and "type" not in obj["session"]
    ):
        return Rejection(
            "missing_required_parameter",
            "Missing required parameter: 'session.type'.",
            param="session.type",
            client_event_id=eid,
            type=kind,
        )
    parsed = parse_client_event(data, version)
    if isinstance(parsed, UnknownEvent):
        accepted = client_event_types(version)
        return Rejection(
            "invalid_value",
            f"Invalid value: '{kind}'. Supported values are: "
            + ", ".join(f"'{t}'" for t in accepted)
            + ".",
            param="type",
            client_event_id=eid,
            type=kind,
        )
    if isinstance(parsed, ParseFailure):
        return Rejection(
            "invalid_value",
            f"Invalid '{kind}' event: {parsed.reason}.",
            client_event_id=eid,
            type=kind,
        )
    return ClientFrame(parsed, obj)


def dump_event(event: dict[str, Any]) -> str:
    """JSON text of one server event."""
    return orjson.dumps(event).decode()
