"""Typed client events (client → server), used by the client to encode and by the simulator
(server role) to parse.

Invariants:
- ``TYPE`` is the wire tag; it is the same in both dialects. Which tags a dialect accepts is
  decided by that dialect's modules (``session.create`` and ``conversation.handoff.append``
  are v1 only).
- ``InputAudioBufferAppend.audio`` is decoded PCM16; base64 exists only on the wire.
- ``event_id`` is the optional client-chosen id the server echoes in ``error.event_id``.
"""

from __future__ import annotations

from typing import Any, ClassVar, final

import attrs

from ._items import ConversationItem
from ._session import WireSession

__all__ = [
    "ClientEvent",
    "ConversationItemCreate",
    "ConversationItemDelete",
    "ConversationItemRetrieve",
    "ConversationItemTruncate",
    "HandoffAppend",
    "InputAudioBufferAppend",
    "InputAudioBufferClear",
    "InputAudioBufferCommit",
    "OutputAudioBufferClear",
    "ResponseCancel",
    "ResponseCreate",
    "SessionCreate",
    "SessionUpdate",
]


class ClientEvent:
    """Root of the typed client events. Do not subclass outside ``protocol``."""

    __slots__ = ()
    TYPE: ClassVar[str]


@final
@attrs.frozen(slots=True, kw_only=True)
class SessionCreate(ClientEvent):
    """v1 handshake: create the quicksilver (or transcription) session."""

    TYPE: ClassVar[str] = "session.create"
    session: WireSession
    event_id: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class SessionUpdate(ClientEvent):
    """Change the session configuration (v2 handshake; prompt changes in both dialects)."""

    TYPE: ClassVar[str] = "session.update"
    session: WireSession
    event_id: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class InputAudioBufferAppend(ClientEvent):
    """Append decoded PCM16 to the server's input buffer."""

    TYPE: ClassVar[str] = "input_audio_buffer.append"
    audio: bytes = attrs.field(repr=lambda pcm: f"<{len(pcm)} bytes>")
    event_id: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class InputAudioBufferCommit(ClientEvent):
    """Turn the input buffer into a user item (needs ≥ 100 ms of audio)."""

    TYPE: ClassVar[str] = "input_audio_buffer.commit"
    event_id: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class InputAudioBufferClear(ClientEvent):
    """Drop the input buffer."""

    TYPE: ClassVar[str] = "input_audio_buffer.clear"
    event_id: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class ConversationItemCreate(ClientEvent):
    """Add an item: a user text message or a function call output."""

    TYPE: ClassVar[str] = "conversation.item.create"
    item: ConversationItem
    previous_item_id: str | None = None
    event_id: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class ConversationItemTruncate(ClientEvent):
    """Cut an assistant item's audio at what the user actually heard."""

    TYPE: ClassVar[str] = "conversation.item.truncate"
    item_id: str
    content_index: int = 0
    audio_end_ms: int
    event_id: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class ConversationItemDelete(ClientEvent):
    """Remove an item."""

    TYPE: ClassVar[str] = "conversation.item.delete"
    item_id: str
    event_id: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class ConversationItemRetrieve(ClientEvent):
    """Ask for an item's full content."""

    TYPE: ClassVar[str] = "conversation.item.retrieve"
    item_id: str
    event_id: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class ResponseCreate(ClientEvent):
    """Ask the model to respond. ``response`` holds optional per-response overrides."""

    TYPE: ClassVar[str] = "response.create"
    response: dict[str, Any] | None = attrs.field(default=None, hash=False)
    event_id: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class ResponseCancel(ClientEvent):
    """Cancel the active response."""

    TYPE: ClassVar[str] = "response.cancel"
    response_id: str | None = None
    event_id: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class OutputAudioBufferClear(ClientEvent):
    """WebRTC only: cut server-side playback."""

    TYPE: ClassVar[str] = "output_audio_buffer.clear"
    event_id: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class HandoffAppend(ClientEvent):
    """v1 handoff reply: text for the handoff the server requested."""

    TYPE: ClassVar[str] = "conversation.handoff.append"
    handoff_id: str
    output_text: str
    event_id: str | None = None
