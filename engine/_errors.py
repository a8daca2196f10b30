"""Engine exceptions and the host-visible lifecycle values.

The tree::

    EngineError
    ├── ConversationNotRunning   send_* / update_prompt with no running conversation
    ├── ConversationStartError   start() failed: bad arguments, connect refused, HTTP status
    ├── HandoffNotActive         send_handoff_output for an id the engine is not handling
    ├── ToolCallNotActive        send_tool_output for a call not waiting (unknown or answered)
    ├── InvalidRequest           values the protocol cannot carry: update_session, create_response,
    │                            send_image, send_event (also a ValueError)
    ├── UnsupportedByDialect     a call the dialect or session mode cannot express
    ├── InvalidAudioFrame        send_audio with sample_rate/channels <= 0 (also a ValueError)
    └── EngineClosed             any call after the ``open_engine`` block has exited

Trio and transport exceptions never reach the host: ``_boundary.host_exception`` maps them once,
at the engine boundary (one table), to these, to the host's own exception, or to the
``Cancelled`` of the scope that cancelled.

Messages never contain the API key: transport errors are already redacted at their boundary,
messages the engine builds from server text pass through ``clean_text`` (control characters
escaped, the key redacted), and nothing here formats the config.
"""

from __future__ import annotations

from typing import ClassVar, final

import attrs

__all__ = [
    "ConversationClosed",
    "ConversationNotRunning",
    "ConversationStartError",
    "ConversationStarted",
    "EngineClosed",
    "EngineError",
    "HandoffNotActive",
    "InvalidAudioFrame",
    "InvalidRequest",
    "ToolCallNotActive",
    "UnsupportedByDialect",
]


class EngineError(Exception):
    """Root of the engine's exceptions."""


class ConversationNotRunning(EngineError):
    """An operation needs a running conversation and there is none."""

    def __init__(self, message: str = "conversation is not running") -> None:
        super().__init__(message)


class ConversationStartError(EngineError):
    """``start()`` failed. No conversation runs and no ``ConversationClosed`` is emitted.

    Attributes:
        status: the HTTP status when the server refused (401, 403, 5xx …), else ``None``.
        url: the URL that was being connected to (never with a secret), when known.

    ``__cause__`` holds the underlying transport error, when there was one.
    """

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class HandoffNotActive(EngineError):
    """``send_handoff_output`` named a handoff the engine is not waiting on."""


class ToolCallNotActive(EngineError):
    """``send_tool_output`` named a call that is not waiting for an output: never requested
    by the model in this conversation, or already answered. Nothing was sent."""


class InvalidRequest(EngineError, ValueError):
    """A host call was given values the protocol cannot carry: a session configuration the
    session cannot take (an invalid or clashing tool, instructions on a transcription
    session …), bad ``create_response`` options, an image of an unsupported type, a raw event
    without a string ``type``. The message names the value; nothing was sent and the
    conversation is unchanged. A ``ValueError`` too."""


class UnsupportedByDialect(EngineError):
    """The call cannot be expressed by the conversation's dialect or session mode (text input
    to a transcription session, tools on v1, …). Nothing was sent."""


class InvalidAudioFrame(EngineError, ValueError):
    """``send_audio`` was given a frame with ``sample_rate <= 0`` or ``channels <= 0``. The
    frame is refused (nothing queued); the conversation goes on. A ``ValueError`` too, so a
    host's generic argument check catches it."""


class EngineClosed(EngineError):
    """The engine's ``open_engine`` block has exited; the engine takes no more calls."""

    def __init__(
        self, message: str = "the engine is closed (its open_engine block has exited)"
    ) -> None:
        super().__init__(message)


@final
@attrs.frozen(slots=True)
class ConversationStarted:
    """A conversation is connected and its handshake was sent.

    Attributes:
        session_id: the client-side session id (sent as ``x-session-id``). The server's own
            ``sess_…`` id arrives later in ``SessionCreated``/``SessionUpdated``.
        version: the wire dialect.
        transport: ``"websocket"`` or ``"webrtc"``.
    """

    TYPE: ClassVar[str] = "conversation.started"
    session_id: str
    version: str
    transport: str


@final
@attrs.frozen(slots=True)
class ConversationClosed:
    """The last event of a conversation; emitted exactly once per started conversation
    (never for one replaced by ``start()``).

    One rule on every transport:

    - ``reason``: ``"requested"`` (``close()``), ``"transport_closed"`` (the peer closed
      cleanly: a close frame with a code below 4000, a data channel or call that ended), or
      ``"error"`` (a fatal server error, a close code ≥ 4000, a dropped connection, a
      keepalive timeout, a failed sideband join, an engine fault).
    - ``code``: the close code as a plain ``int`` when the transport reported one (a WebSocket
      close frame; 1006 for a drop without one), else ``None``.
    - ``error``: what went wrong, set **only** for ``reason == "error"`` (``None`` otherwise,
      even when the peer's close frame carried a reason text). Control characters are
      escaped and the API key is redacted.
    """

    TYPE: ClassVar[str] = "conversation.closed"
    reason: str
    code: int | None = None
    error: str | None = None


@final
@attrs.frozen(slots=True)
class ConversationReconnecting:
    """The connection was lost (or the session is being rotated) and the engine is opening a
    new one; the conversation has not ended (``EngineConfig.reconnect``, SPEC §3.5).

    Attributes:
        attempt: the connection attempt this event announces (1 for the first).
        reason: why: ``"rotation"`` (the session reached ``ReconnectPolicy.max_session_s``),
            ``"session_expired"`` (the server's cap), or what ended the connection
            (``"connection closed with code 1011"``, ``"transport failed: …"``).
    """

    TYPE: ClassVar[str] = "conversation.reconnecting"
    attempt: int
    reason: str


@final
@attrs.frozen(slots=True)
class ConversationResumed:
    """A new connection is up, its handshake and the replayed history are sent: the
    conversation goes on. Nothing of the previous connection reaches the host after it.

    Attributes:
        session_id: the conversation's client-side session id (unchanged by a reconnect).
        attempt: the attempt that succeeded.
        replayed: how many history items the new session was given.
    """

    TYPE: ClassVar[str] = "conversation.resumed"
    session_id: str
    attempt: int = 1
    replayed: int = 0
