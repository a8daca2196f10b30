"""Engine exceptions and the host-visible lifecycle values.

The tree::

    EngineError
    ├── ConversationNotRunning   send_* / update_prompt with no running conversation
    ├── ConversationStartError   start() failed: bad arguments, connect refused, HTTP status
    └── HandoffNotActive         send_handoff_output for an id the engine is not handling

Messages never contain the API key: transport errors are already redacted at their boundary,
and nothing here formats the config.
"""

from __future__ import annotations

from typing import ClassVar, final

import attrs

__all__ = [
    "ConversationClosed",
    "ConversationNotRunning",
    "ConversationStartError",
    "ConversationStarted",
    "EngineError",
    "HandoffNotActive",
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
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HandoffNotActive(EngineError):
    """``send_handoff_output`` named a handoff the engine is not waiting on."""


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

    Attributes:
        reason: ``"requested"`` (``close()``), ``"transport_closed"`` (the server closed
            normally) or ``"error"`` (a fatal server error, a close code ≥ 4000, a dropped
            connection, a failed sideband join).
        code: the WebSocket close code when there was one.
        error: what went wrong, for ``reason == "error"``.
    """

    TYPE: ClassVar[str] = "conversation.closed"
    reason: str
    code: int | None = None
    error: str | None = None
