"""``ServerEventParser``: the client role's parser of server frames, for one dialect and one
pair of tool names.

Why an object: in v2 only ``conversation.item.done`` depends on the session's tool names (a
``function_call`` of the handoff tool is a ``HandoffRequested``, of the silence tool a
``NoopRequested``, of any other tool a ``ToolCallRequested``). The parser builds its dispatch
table once, with the names bound into that one handler, so every other handler takes just the
decoded frame. ``server_event_parser()`` hands out one cached instance per
(version, handoff tool, silence tool); ``parse_server_event()`` is the SPEC's functional
wrapper over it.

Invariants:
- ``parse()`` never raises for any ``data``: it returns a typed event, an ``UnknownEvent`` or a
  ``ParseFailure`` (a handler bug becomes a ``ParseFailure`` too, never the host's crash).
- Invalid *arguments* (an unknown version, an empty tool name, one name for both tools) are
  programming errors and raise ``LocalProtocolError`` when the parser is built.
- Instances are immutable and hold no per-frame state, so one instance may serve any number of
  sessions with the same configuration.
"""

from __future__ import annotations

from typing import Any, Final, final

from orjson import JSONDecodeError, loads

from ._audio import encoding_of
from ._enums import ProtocolVersion, coerce_version
from ._errors import LocalProtocolError
from ._events import ParseFailure, ServerEvent, UnknownEvent
from ._parse_common import FieldError, Handler, decode_envelope, preview
from ._parse_v1 import V1_SERVER_HANDLERS
from ._parse_v2 import v2_server_handlers

__all__ = [
    "DEFAULT_HANDOFF_TOOL_NAME",
    "DEFAULT_SILENCE_TOOL_NAME",
    "PARSERS",
    "ServerEventParser",
    "server_event_parser",
]

DEFAULT_HANDOFF_TOOL_NAME: Final = "codex"
DEFAULT_SILENCE_TOOL_NAME: Final = "remain_silent"


def check_tool_names(
    handoff_tool_name: str | None, silence_tool_name: str | None
) -> tuple[str | None, str | None]:
    """The two names with ``""`` read as ``None`` (no such tool; engines of the first release
    pass ``""`` for a disabled silence tool). Raises ``LocalProtocolError`` unless each is a
    string or ``None`` and the two differ (one call cannot mean both "hand off" and "say
    nothing")."""
    for what, name in (("handoff", handoff_tool_name), ("silence", silence_tool_name)):
        if name is not None and not isinstance(name, str):
            raise LocalProtocolError(f"{what} tool name must be a string or None, got {name!r}")
    handoff_tool_name = handoff_tool_name or None
    silence_tool_name = silence_tool_name or None
    if handoff_tool_name is not None and handoff_tool_name == silence_tool_name:
        raise LocalProtocolError(
            f"the handoff and silence tools cannot share the name {handoff_tool_name!r}"
        )
    return handoff_tool_name, silence_tool_name


@final
class ServerEventParser:
    """Parses server frames of one dialect into the event vocabulary.

    Args:
        version: the session's dialect.
        handoff_tool_name: v2 function name meaning "hand off to the host" (``None`` or
            ``""``: the session has no handoff tool, so such a call is an ordinary tool call).
        silence_tool_name: v2 function name meaning "say nothing" (``None`` or ``""``: no
            silence tool).
        audio_format: the session's audio format: ``"pcm16"`` (24 kHz PCM16, the default), or
            ``"pcmu"`` / ``"pcma"`` (8 kHz G.711, v2 only; frames pass through untranscoded).

    v1 has no tools; the names are accepted and ignored there.
    """

    __slots__ = ("_handlers", "audio_format", "handoff_tool_name", "silence_tool_name", "version")

    version: ProtocolVersion
    handoff_tool_name: str | None
    silence_tool_name: str | None
    audio_format: str
    _handlers: dict[str, Handler]

    def __init__(
        self,
        version: ProtocolVersion | str,
        *,
        handoff_tool_name: str | None = DEFAULT_HANDOFF_TOOL_NAME,
        silence_tool_name: str | None = DEFAULT_SILENCE_TOOL_NAME,
        audio_format: str = "pcm16",
    ) -> None:
        handoff_tool_name, silence_tool_name = check_tool_names(
            handoff_tool_name, silence_tool_name
        )
        self.version = coerce_version(version)
        encoding_of(audio_format)  # raises for an unknown format
        self.handoff_tool_name = handoff_tool_name
        self.silence_tool_name = silence_tool_name
        self.audio_format = audio_format
        if self.version is ProtocolVersion.V1:
            if audio_format != "pcm16":
                raise LocalProtocolError("the v1 dialect carries only PCM16 audio")
            self._handlers = V1_SERVER_HANDLERS
        else:
            self._handlers = v2_server_handlers(handoff_tool_name, silence_tool_name, audio_format)

    def __repr__(self) -> str:
        return (
            f"ServerEventParser({self.version.value!r}, "
            f"handoff_tool_name={self.handoff_tool_name!r}, "
            f"silence_tool_name={self.silence_tool_name!r}, "
            f"audio_format={self.audio_format!r})"
        )

    @property
    def event_types(self) -> frozenset[str]:
        """The wire tags this parser maps to typed events (everything else is unknown)."""
        return frozenset(self._handlers)

    def parse(self, data: str | bytes) -> ServerEvent:
        """Parse one server frame (a WebSocket text frame or data-channel message, ``str`` or
        UTF-8 ``bytes``). Never raises."""
        # The envelope checks of decode_envelope, inlined for the well-formed case (the hot
        # path); anything unusual takes the full path for its ParseFailure.
        try:
            obj = loads(data)
        except (JSONDecodeError, TypeError):
            obj = None
        kind = obj.get("type") if type(obj) is dict else None
        if type(kind) is not str:
            failure = decode_envelope(data)  # the same checks, now for the reason and preview
            if isinstance(failure, ParseFailure):
                return failure
            return ParseFailure("malformed frame", preview(data))
        handler = self._handlers.get(kind)
        if handler is None:
            return UnknownEvent(kind, obj)
        try:
            return handler(obj)
        except FieldError as exc:
            return ParseFailure(f"{kind}: {exc}", preview(obj))
        except Exception as exc:  # a bug in a handler must not become the host's crash
            reason = f"{kind}: internal parser error {type(exc).__name__}"
            return ParseFailure(reason, preview(obj))


# One parser per configuration. Bounded: a caller cycling through made-up tool names must
# not grow memory without limit (real sessions use one or two configurations).
_CACHE_LIMIT: Final = 64
#: the cache behind ``server_event_parser`` (read directly by ``parse_server_event``)
PARSERS: dict[tuple[Any, str | None, str | None, str], ServerEventParser] = {}


def server_event_parser(
    version: ProtocolVersion | str,
    *,
    handoff_tool_name: str | None = DEFAULT_HANDOFF_TOOL_NAME,
    silence_tool_name: str | None = DEFAULT_SILENCE_TOOL_NAME,
    audio_format: str = "pcm16",
) -> ServerEventParser:
    """The shared ``ServerEventParser`` for this configuration (built on first use)."""
    # A StrEnum hashes and compares like its value, so "v2" and ProtocolVersion.V2 share a row.
    key = (version, handoff_tool_name, silence_tool_name, audio_format)
    try:
        parser = PARSERS.get(key)
    except TypeError:  # an unhashable argument: say what is wrong with it
        coerce_version(version)
        check_tool_names(handoff_tool_name, silence_tool_name)
        encoding_of(audio_format)
        raise
    if parser is None:
        parser = ServerEventParser(
            version,
            handoff_tool_name=handoff_tool_name,
            silence_tool_name=silence_tool_name,
            audio_format=audio_format,
        )
        if len(PARSERS) >= _CACHE_LIMIT:
            PARSERS.clear()
        PARSERS[key] = parser
    return parser
