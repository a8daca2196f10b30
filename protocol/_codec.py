"""The package's one version switch: parse and encode entry points for both roles.

- Client role: ``parse_server_event`` (wire → vocabulary) and ``encode_client_event``.
- Server role (the simulator): ``parse_client_event`` and ``encode_server_event``.

Invariants:
- ``parse_*`` never raise for any input ``data``: they return exactly one event, an
  ``UnknownEvent`` or a ``ParseFailure``. (An invalid *version* is a programming error and
  raises ``LocalProtocolError``.)
- ``parse(encode(e)) == e`` for every event the dialect can carry (property-tested).
- ``encode_*`` raise ``LocalProtocolError`` for events the dialect cannot carry (v1 has no
  no-op tool call; v2 has no ``session.create`` or ``conversation.handoff.append``).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from ._client_events import ClientEvent, HandoffAppend, SessionCreate
from ._encode_common import ServerPayload, client_payload
from ._encode_v1 import V1_SERVER_PAYLOADS
from ._encode_v2 import v2_server_payloads
from ._enums import ProtocolVersion, coerce_version
from ._errors import LocalProtocolError
from ._events import ParseFailure, ServerEvent, UnknownEvent
from ._parse_client import ClientHandler
from ._parse_common import FieldError, decode_envelope, preview
from ._parse_v1 import V1_CLIENT_HANDLERS
from ._parse_v2 import V2_CLIENT_HANDLERS
from ._server_parser import (
    DEFAULT_HANDOFF_TOOL_NAME,
    DEFAULT_SILENCE_TOOL_NAME,
    PARSERS,
    check_tool_names,
    server_event_parser,
)

__all__ = [
    "client_event_payload",
    "client_event_types",
    "encode_client_event",
    "encode_server_event",
    "parse_client_event",
    "parse_server_event",
    "server_event_payload",
]

# Keyed by ProtocolVersion; a StrEnum hashes like its value, so "v1"/"v2" hit the same rows
# without a conversion on the hot path.
_CLIENT_HANDLERS: Final[dict[str, dict[str, ClientHandler]]] = {
    ProtocolVersion.V1: V1_CLIENT_HANDLERS,
    ProtocolVersion.V2: V2_CLIENT_HANDLERS,
}
_V1_ONLY_CLIENT: Final = (SessionCreate, HandoffAppend)


def _client_table(version: ProtocolVersion | str) -> dict[str, ClientHandler]:
    table = _CLIENT_HANDLERS.get(version)
    if table is None:
        coerce_version(version)  # raises with a clear message
        raise AssertionError("unreachable")
    return table


def parse_server_event(
    data: str | bytes,
    version: ProtocolVersion | str,
    *,
    handoff_tool_name: str | None = DEFAULT_HANDOFF_TOOL_NAME,
    silence_tool_name: str | None = DEFAULT_SILENCE_TOOL_NAME,
    audio_format: str = "pcm16",
) -> ServerEvent:
    """Parse one server frame into the event vocabulary. Never raises for any ``data``.

    Args:
        data: one WebSocket text frame or data-channel message (``str`` or UTF-8 ``bytes``).
        version: the session's dialect.
        handoff_tool_name: v2 function-call name that means "hand off to the host" (``None``:
            handoff disabled).
        silence_tool_name: v2 function-call name that means "say nothing" (``None``: no
            silence tool).
        audio_format: ``"pcm16"`` (default) or, on v2, ``"pcmu"`` / ``"pcma"``: what the
            session's audio deltas hold (``AudioFrame.encoding``).

    A long-lived caller may hold ``server_event_parser(...)`` instead; this wrapper looks the
    same cached parser up on every call.
    """
    try:
        parser = PARSERS.get((version, handoff_tool_name, silence_tool_name, audio_format))
    except TypeError:  # unhashable arguments: server_event_parser says what is wrong
        parser = None
    if parser is None:  # first use of this configuration (or an invalid one: raises)
        parser = server_event_parser(
            version,
            handoff_tool_name=handoff_tool_name,
            silence_tool_name=silence_tool_name,
            audio_format=audio_format,
        )
    return parser.parse(data)


def parse_client_event(
    data: str | bytes, version: ProtocolVersion | str
) -> ClientEvent | UnknownEvent | ParseFailure:
    """Parse one client frame (server role). Never raises for any ``data``."""
    handlers = _client_table(version)
    obj = decode_envelope(data)
    if isinstance(obj, ParseFailure):
        return obj
    kind: str = obj["type"]
    handler = handlers.get(kind)
    if handler is None:
        return UnknownEvent(kind, obj)
    try:
        return handler(obj)
    except FieldError as exc:
        return ParseFailure(f"{kind}: {exc}", preview(obj))
    except Exception as exc:
        return ParseFailure(f"{kind}: internal parser error {type(exc).__name__}", preview(obj))


def client_event_types(version: ProtocolVersion | str) -> tuple[str, ...]:
    """The client event tags a server of ``version`` accepts (sorted)."""
    return tuple(sorted(_client_table(version)))


def client_event_payload(event: ClientEvent, version: ProtocolVersion | str) -> dict[str, Any]:
    """The wire dict of a client event in ``version``."""
    v = coerce_version(version)
    if v is ProtocolVersion.V2 and isinstance(event, _V1_ONLY_CLIENT):
        raise LocalProtocolError(f"{event.TYPE} exists only in the v1 dialect")
    return client_payload(event)


def encode_client_event(event: ClientEvent, version: ProtocolVersion | str) -> str:
    """JSON text of a client event in ``version``."""
    return orjson.dumps(client_event_payload(event, version)).decode()


# Server role: one payload table per (version, handoff tool, silence tool), like the parser.
_PAYLOAD_CACHE_LIMIT: Final = 64
_PAYLOADS: dict[tuple[ProtocolVersion, str | None, str | None], dict[type[Any], ServerPayload]] = {}


def _payload_table(
    version: ProtocolVersion | str, handoff: str | None, silence: str | None
) -> dict[type[Any], ServerPayload]:
    v = coerce_version(version)
    key = (v, handoff, silence)
    table = _PAYLOADS.get(key)
    if table is None:
        handoff, silence = check_tool_names(handoff, silence)
        table = (
            V1_SERVER_PAYLOADS if v is ProtocolVersion.V1 else v2_server_payloads(handoff, silence)
        )
        if len(_PAYLOADS) >= _PAYLOAD_CACHE_LIMIT:
            _PAYLOADS.clear()
        _PAYLOADS[key] = table
    return table


def server_event_payload(
    event: ServerEvent,
    version: ProtocolVersion | str,
    *,
    handoff_tool_name: str | None = DEFAULT_HANDOFF_TOOL_NAME,
    silence_tool_name: str | None = DEFAULT_SILENCE_TOOL_NAME,
) -> dict[str, Any]:
    """The wire dict of a vocabulary event in ``version`` (server role).

    Raises:
        LocalProtocolError: the dialect cannot carry ``event`` (e.g. ``NoopRequested`` on
            v1, or a ``ParseFailure``, which is not a wire event).
    """
    encode = _payload_table(version, handoff_tool_name, silence_tool_name).get(type(event))
    if encode is None:
        raise LocalProtocolError(
            f"{type(event).__name__} cannot be encoded in the {coerce_version(version)} dialect"
        )
    return encode(event)


def encode_server_event(
    event: ServerEvent,
    version: ProtocolVersion | str,
    *,
    handoff_tool_name: str | None = DEFAULT_HANDOFF_TOOL_NAME,
    silence_tool_name: str | None = DEFAULT_SILENCE_TOOL_NAME,
) -> str:
    """JSON text of a vocabulary event in ``version`` (server role)."""
    payload = server_event_payload(
        event, version, handoff_tool_name=handoff_tool_name, silence_tool_name=silence_tool_name
    )
    return orjson.dumps(payload).decode()
