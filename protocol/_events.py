"""The host-visible event vocabulary: one set of events fed by both wire dialects.

Invariants (SPEC §2):
- Every class here is a small frozen attrs value; the wire tag ``TYPE`` is the canonical GA
  spelling (v1 aliases live in the v1 modules). No class knows how to serialise itself: the
  dialect modules do that.
- Parsing always yields exactly one ``ServerEvent``: a typed event, an ``UnknownEvent`` for a
  well-formed event the dialect does not map, or a ``ParseFailure`` for anything malformed.
- ``AudioOut.frame`` carries decoded PCM16; ``ParseFailure.preview`` is bounded and never holds
  audio payloads.
- ``HandoffRequested.active_transcript`` is empty as parsed; the transcript accumulator fills it.
"""

from __future__ import annotations

from typing import Any, ClassVar, final

import attrs

from ._audio import AudioFrame
from ._items import ConversationItem, RateLimit, TranscriptEntry, Usage

__all__ = [
    "AudioInterrupted",
    "AudioOut",
    "ConversationItemAdded",
    "ConversationItemDeleted",
    "ConversationItemDone",
    "ConversationItemTruncated",
    "Error",
    "HandoffRequested",
    "InputAudioCommitted",
    "InputAudioSpeechStarted",
    "InputAudioSpeechStopped",
    "InputTranscriptDelta",
    "InputTranscriptDone",
    "McpApprovalRequested",
    "NoopRequested",
    "OutputAudioDone",
    "OutputTranscriptDelta",
    "OutputTranscriptDone",
    "ParseFailure",
    "RateLimitsUpdated",
    "ResponseCancelled",
    "ResponseCreated",
    "ResponseDone",
    "ServerEvent",
    "SessionCreated",
    "SessionUpdated",
    "ToolCallRequested",
    "UnknownEvent",
]


class ServerEvent:
    """Root of everything a server-event parser returns. Do not subclass outside ``protocol``."""

    __slots__ = ()
    TYPE: ClassVar[str]


@final
@attrs.frozen(slots=True)
class SessionCreated(ServerEvent):
    """The server created the session (always its first event)."""

    TYPE: ClassVar[str] = "session.created"
    session_id: str | None = None


@final
@attrs.frozen(slots=True)
class SessionUpdated(ServerEvent):
    """The server applied a session configuration. ``session_id`` is ``None`` when the
    server's session object carries no id (GA's update shape does not require one)."""

    TYPE: ClassVar[str] = "session.updated"
    session_id: str | None
    instructions: str | None = None


@final
@attrs.frozen(slots=True)
class InputAudioSpeechStarted(ServerEvent):
    """Server VAD heard the user start speaking (the barge-in trigger)."""

    TYPE: ClassVar[str] = "input_audio_buffer.speech_started"
    item_id: str | None = None
    audio_start_ms: int | None = None


@final
@attrs.frozen(slots=True)
class InputAudioSpeechStopped(ServerEvent):
    """Server VAD heard the user stop speaking."""

    TYPE: ClassVar[str] = "input_audio_buffer.speech_stopped"
    item_id: str | None = None
    audio_end_ms: int | None = None


@final
@attrs.frozen(slots=True)
class InputAudioCommitted(ServerEvent):
    """The input audio buffer became a user item."""

    TYPE: ClassVar[str] = "input_audio_buffer.committed"
    item_id: str | None = None
    previous_item_id: str | None = None


@final
@attrs.frozen(slots=True)
class InputTranscriptDelta(ServerEvent):
    """A piece of the transcription of the user's speech."""

    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.delta"
    delta: str
    item_id: str | None = None


@final
@attrs.frozen(slots=True)
class InputTranscriptDone(ServerEvent):
    """The final transcription of one user turn, with what it cost: ``usage`` when the
    transcription model bills tokens, ``audio_seconds`` when it bills audio duration."""

    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.completed"
    text: str
    item_id: str | None = None
    usage: Usage | None = None
    audio_seconds: float | None = None


@final
@attrs.frozen(slots=True)
class OutputTranscriptDelta(ServerEvent):
    """A piece of the model's answer as text (audio transcript or text output)."""

    TYPE: ClassVar[str] = "response.output_audio_transcript.delta"
    delta: str
    item_id: str | None = None
    response_id: str | None = None


@final
@attrs.frozen(slots=True)
class OutputTranscriptDone(ServerEvent):
    """The model's full answer text for one content part."""

    TYPE: ClassVar[str] = "response.output_audio_transcript.done"
    text: str
    item_id: str | None = None
    response_id: str | None = None


@final
@attrs.frozen(slots=True)
class AudioOut(ServerEvent):
    """Model audio, decoded. Over WebRTC it comes from the media track, not from an event."""

    TYPE: ClassVar[str] = "response.output_audio.delta"
    frame: AudioFrame
    item_id: str | None = None
    response_id: str | None = None


@final
@attrs.frozen(slots=True)
class OutputAudioDone(ServerEvent):
    """The model finished an item's audio: no ``AudioOut`` of ``item_id`` follows. (GA
    ``response.output_audio.done``; on WebRTC the engine builds it from the media side.)"""

    TYPE: ClassVar[str] = "response.output_audio.done"
    item_id: str | None = None
    response_id: str | None = None


@final
@attrs.frozen(slots=True)
class AudioInterrupted(ServerEvent):
    """Barge-in: the engine cut ``item_id``'s audio at ``played_ms`` (what the user heard) and
    the host should flush its playback.

    Built by the engine, never parsed: it has no wire form in any dialect, so encoding it
    raises ``LocalProtocolError`` (the round-trip property covers every *wire* class).
    """

    TYPE: ClassVar[str] = "output_audio.interrupted"
    item_id: str
    played_ms: int


@final
@attrs.frozen(slots=True)
class ResponseCreated(ServerEvent):
    """A model response started (the single-active-response slot is now taken)."""

    TYPE: ClassVar[str] = "response.created"
    response_id: str | None = None
    #: The ``metadata`` the response was created with (``Engine.create_response``): how a
    #: host tells an out-of-band response from the default one. Not part of the hash.
    metadata: dict[str, str] | None = attrs.field(default=None, hash=False)


@final
@attrs.frozen(slots=True)
class ResponseCancelled(ServerEvent):
    """A response was cancelled by a ``response.cancelled`` event. GA servers report
    cancellation as ``ResponseDone(status="cancelled")`` instead; both are handled alike."""

    TYPE: ClassVar[str] = "response.cancelled"
    response_id: str | None = None


@final
@attrs.frozen(slots=True)
class ResponseDone(ServerEvent):
    """A response finished; always the last event of a response.

    ``reason`` and ``error_code`` come from the response's ``status_details``: why it
    stopped short (``turn_detected`` and ``client_cancelled`` for ``cancelled``;
    ``max_output_tokens`` and ``content_filter`` for ``incomplete``) and, for ``failed``,
    its error's code — the only place a response-level failure is reported."""

    TYPE: ClassVar[str] = "response.done"
    response_id: str | None = None
    status: str | None = None
    usage: Usage | None = None
    metadata: dict[str, str] | None = attrs.field(default=None, hash=False)  # as on Created
    reason: str | None = None
    error_code: str | None = None


@final
@attrs.frozen(slots=True)
class ConversationItemAdded(ServerEvent):
    """An item entered the conversation (GA ``added``, beta ``created``)."""

    TYPE: ClassVar[str] = "conversation.item.added"
    item: ConversationItem


@final
@attrs.frozen(slots=True)
class ConversationItemDone(ServerEvent):
    """An item is final (and is not a handoff or no-op tool call)."""

    TYPE: ClassVar[str] = "conversation.item.done"
    item_id: str


@final
@attrs.frozen(slots=True)
class ConversationItemTruncated(ServerEvent):
    """The server cut an assistant item's audio (answer to ``conversation.item.truncate``)."""

    TYPE: ClassVar[str] = "conversation.item.truncated"
    item_id: str
    content_index: int = 0
    audio_end_ms: int = 0


@final
@attrs.frozen(slots=True)
class ConversationItemDeleted(ServerEvent):
    """The server removed an item (answer to ``conversation.item.delete``)."""

    TYPE: ClassVar[str] = "conversation.item.deleted"
    item_id: str


@final
@attrs.frozen(slots=True)
class HandoffRequested(ServerEvent):
    """The model delegates work to the host: v1 ``conversation.handoff.requested`` or a v2
    function call of the handoff tool. Reply with the engine's ``send_handoff_output``.

    ``active_transcript`` holds the transcript lines since the previous handoff; the parser
    leaves it empty and the transcript accumulator fills it in.
    """

    TYPE: ClassVar[str] = "conversation.handoff.requested"
    handoff_id: str
    item_id: str
    input_transcript: str
    active_transcript: tuple[TranscriptEntry, ...] = ()


@final
@attrs.frozen(slots=True)
class ToolCallRequested(ServerEvent):
    """The model called one of the host's function tools (v2 ``conversation.item.done`` with
    a ``function_call`` item that is neither the handoff nor the silence tool).

    ``arguments`` is the raw JSON text the model wrote (it may be invalid JSON: the host
    decides). ``response_id`` is ``None`` unless the server names the response on the item
    event (GA does not); the engine knows the active response. The parser reports every call
    it sees; acting on each ``call_id`` once is the engine's rule.
    """

    TYPE: ClassVar[str] = "function_call.requested"
    call_id: str
    name: str
    arguments: str
    item_id: str
    response_id: str | None = None


@final
@attrs.frozen(slots=True)
class McpApprovalRequested(ServerEvent):
    """An MCP server's tool call waits for the host's approval (v2 ``conversation.item.done``
    with an ``mcp_approval_request`` item; the session's ``McpTool`` asked for approval).

    ``item_id`` is the request's id, which the answer names (``approval_request_id``);
    ``arguments`` is the raw JSON text the model wrote. Answering each request once is the
    engine's rule.
    """

    TYPE: ClassVar[str] = "mcp_approval.requested"
    item_id: str
    server_label: str
    name: str
    arguments: str


@final
@attrs.frozen(slots=True)
class NoopRequested(ServerEvent):
    """The model called the ``remain_silent`` tool (v2): acknowledge, say nothing."""

    TYPE: ClassVar[str] = "function_call.remain_silent"
    call_id: str
    item_id: str


@final
@attrs.frozen(slots=True)
class RateLimitsUpdated(ServerEvent):
    """Current rate limits (arrives near ``response.done``)."""

    TYPE: ClassVar[str] = "rate_limits.updated"
    limits: tuple[RateLimit, ...]


@final
@attrs.frozen(slots=True)
class Error(ServerEvent):
    """A server ``error`` event, or one the engine synthesises.

    ``fatal`` is true only for codes after which the session cannot continue
    (``protocol.FATAL_ERROR_CODES``); the parser derives it from ``code``.
    """

    TYPE: ClassVar[str] = "error"
    message: str
    code: str | None = None
    event_id: str | None = None
    fatal: bool = False
    #: The error's class (``invalid_request_error``, ``server_error``, …).
    error_type: str | None = None
    #: The request field the server refused (e.g. ``session.audio.input.format``).
    param: str | None = None


@final
@attrs.frozen(slots=True)
class UnknownEvent(ServerEvent):
    """A well-formed event whose ``type`` the dialect does not map. ``payload`` is the whole
    decoded object, ``type`` included."""

    TYPE: ClassVar[str] = "unknown"
    type: str
    # Excluded from hash (dicts are unhashable) and from repr (it may hold audio).
    payload: dict[str, Any] = attrs.field(hash=False, repr=False)


@final
@attrs.frozen(slots=True)
class ParseFailure(ServerEvent):
    """Input that is not a valid event: bad JSON, not an object, no string ``type``, or a
    known type with a required field missing or mistyped. ``preview`` is at most 200
    characters and never contains audio payloads."""

    TYPE: ClassVar[str] = "parse_failure"
    reason: str
    preview: str
