"""The GA server events beyond the core vocabulary: one small frozen class per remaining type
of the official ``RealtimeServerEvent`` union (SPEC §2), so nothing a GA server sends is an
``UnknownEvent``.

Invariants (as in ``_events``):
- ``TYPE`` is the GA wire tag; field names are the wire's (``output_index``, ``content_index``
  …). Required fields are the ones that identify what the event is about (``item_id``,
  ``response_id`` of an output-audio-buffer event, the payload text); locator indexes default
  to 0 because duplex emits single-part items and older servers omit them.
- Classes know nothing about serialisation: ``_ga_wire`` parses and encodes them.
- Items and content parts are the typed ``ConversationItem`` / ``ContentPart`` values.
"""

from __future__ import annotations

from typing import ClassVar, Final, final

import attrs

from ._events import ServerEvent
from ._items import ContentPart, ConversationItem

__all__ = [
    "DETAIL_EVENTS",
    "ContentPartAdded",
    "ContentPartDone",
    "ConversationCreated",
    "ConversationItemRetrieved",
    "FunctionCallArgumentsDelta",
    "FunctionCallArgumentsDone",
    "InputAudioCleared",
    "InputAudioDtmfReceived",
    "InputAudioTimeoutTriggered",
    "InputTranscriptFailed",
    "InputTranscriptSegment",
    "McpCallArgumentsDelta",
    "McpCallArgumentsDone",
    "McpCallCompleted",
    "McpCallFailed",
    "McpCallInProgress",
    "McpListToolsCompleted",
    "McpListToolsFailed",
    "McpListToolsInProgress",
    "OutputAudioBufferCleared",
    "OutputAudioBufferStarted",
    "OutputAudioBufferStopped",
    "OutputItemAdded",
    "OutputItemDone",
]


@final
@attrs.frozen(slots=True)
class ConversationCreated(ServerEvent):
    """The server created the conversation (GA sends it right after ``session.created``)."""

    TYPE: ClassVar[str] = "conversation.created"
    conversation_id: str | None = None


@final
@attrs.frozen(slots=True)
class ConversationItemRetrieved(ServerEvent):
    """The full content of an item (answer to ``conversation.item.retrieve``)."""

    TYPE: ClassVar[str] = "conversation.item.retrieved"
    item: ConversationItem


@final
@attrs.frozen(slots=True)
class InputTranscriptFailed(ServerEvent):
    """Transcribing a user turn failed; the turn itself still counts."""

    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.failed"
    item_id: str
    content_index: int = 0
    message: str | None = None
    code: str | None = None


@final
@attrs.frozen(slots=True)
class InputTranscriptSegment(ServerEvent):
    """One diarized segment of a user turn's transcript (transcription sessions)."""

    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.segment"
    item_id: str
    id: str
    text: str
    start: float
    end: float
    speaker: str | None = None
    content_index: int = 0


@final
@attrs.frozen(slots=True)
class InputAudioCleared(ServerEvent):
    """The input buffer was dropped (answer to ``input_audio_buffer.clear``)."""

    TYPE: ClassVar[str] = "input_audio_buffer.cleared"


@final
@attrs.frozen(slots=True)
class InputAudioTimeoutTriggered(ServerEvent):
    """Server VAD's idle timeout fired: the user said nothing for ``idle_timeout_ms``."""

    TYPE: ClassVar[str] = "input_audio_buffer.timeout_triggered"
    item_id: str
    audio_start_ms: int
    audio_end_ms: int


@final
@attrs.frozen(slots=True)
class InputAudioDtmfReceived(ServerEvent):
    """A telephone keypad press arrived on a SIP call; ``event`` is the key."""

    TYPE: ClassVar[str] = "input_audio_buffer.dtmf_event_received"
    event: str
    received_at: int


@final
@attrs.frozen(slots=True)
class OutputAudioBufferStarted(ServerEvent):
    """WebRTC/SIP: the server started playing a response's audio."""

    TYPE: ClassVar[str] = "output_audio_buffer.started"
    response_id: str


@final
@attrs.frozen(slots=True)
class OutputAudioBufferStopped(ServerEvent):
    """WebRTC/SIP: a response's audio has been played out completely."""

    TYPE: ClassVar[str] = "output_audio_buffer.stopped"
    response_id: str


@final
@attrs.frozen(slots=True)
class OutputAudioBufferCleared(ServerEvent):
    """WebRTC/SIP: the server dropped the rest of a response's audio."""

    TYPE: ClassVar[str] = "output_audio_buffer.cleared"
    response_id: str


@final
@attrs.frozen(slots=True)
class OutputItemAdded(ServerEvent):
    """A response started an output item."""

    TYPE: ClassVar[str] = "response.output_item.added"
    item: ConversationItem
    response_id: str | None = None
    output_index: int = 0


@final
@attrs.frozen(slots=True)
class OutputItemDone(ServerEvent):
    """A response's output item is final. A function call here is *not* a tool call again:
    ``conversation.item.done`` already carried it."""

    TYPE: ClassVar[str] = "response.output_item.done"
    item: ConversationItem
    response_id: str | None = None
    output_index: int = 0


@final
@attrs.frozen(slots=True)
class ContentPartAdded(ServerEvent):
    """An output item gained a content part."""

    TYPE: ClassVar[str] = "response.content_part.added"
    item_id: str
    part: ContentPart
    response_id: str | None = None
    output_index: int = 0
    content_index: int = 0


@final
@attrs.frozen(slots=True)
class ContentPartDone(ServerEvent):
    """A content part of an output item is final."""

    TYPE: ClassVar[str] = "response.content_part.done"
    item_id: str
    part: ContentPart
    response_id: str | None = None
    output_index: int = 0
    content_index: int = 0


@final
@attrs.frozen(slots=True)
class FunctionCallArgumentsDelta(ServerEvent):
    """A piece of a function call's JSON arguments, as the model writes them."""

    TYPE: ClassVar[str] = "response.function_call_arguments.delta"
    call_id: str
    delta: str
    item_id: str | None = None
    response_id: str | None = None
    output_index: int = 0


@final
@attrs.frozen(slots=True)
class FunctionCallArgumentsDone(ServerEvent):
    """A function call's complete arguments. Informational: the call is acted on once, from
    ``conversation.item.done`` (``ToolCallRequested`` / ``HandoffRequested``)."""

    TYPE: ClassVar[str] = "response.function_call_arguments.done"
    call_id: str
    arguments: str
    name: str | None = None
    item_id: str | None = None
    response_id: str | None = None
    output_index: int = 0


@final
@attrs.frozen(slots=True)
class McpListToolsInProgress(ServerEvent):
    """The server is listing an MCP server's tools."""

    TYPE: ClassVar[str] = "mcp_list_tools.in_progress"
    item_id: str


@final
@attrs.frozen(slots=True)
class McpListToolsCompleted(ServerEvent):
    """The server listed an MCP server's tools."""

    TYPE: ClassVar[str] = "mcp_list_tools.completed"
    item_id: str


@final
@attrs.frozen(slots=True)
class McpListToolsFailed(ServerEvent):
    """Listing an MCP server's tools failed."""

    TYPE: ClassVar[str] = "mcp_list_tools.failed"
    item_id: str


@final
@attrs.frozen(slots=True)
class McpCallArgumentsDelta(ServerEvent):
    """A piece of an MCP tool call's JSON arguments."""

    TYPE: ClassVar[str] = "response.mcp_call_arguments.delta"
    item_id: str
    delta: str
    response_id: str | None = None
    output_index: int = 0


@final
@attrs.frozen(slots=True)
class McpCallArgumentsDone(ServerEvent):
    """An MCP tool call's complete arguments."""

    TYPE: ClassVar[str] = "response.mcp_call_arguments.done"
    item_id: str
    arguments: str
    response_id: str | None = None
    output_index: int = 0


@final
@attrs.frozen(slots=True)
class McpCallInProgress(ServerEvent):
    """The server is running an MCP tool call."""

    TYPE: ClassVar[str] = "response.mcp_call.in_progress"
    item_id: str
    output_index: int = 0


@final
@attrs.frozen(slots=True)
class McpCallCompleted(ServerEvent):
    """An MCP tool call finished."""

    TYPE: ClassVar[str] = "response.mcp_call.completed"
    item_id: str
    output_index: int = 0


@final
@attrs.frozen(slots=True)
class McpCallFailed(ServerEvent):
    """An MCP tool call failed."""

    TYPE: ClassVar[str] = "response.mcp_call.failed"
    item_id: str
    output_index: int = 0


#: The GA events that restate, step by step, what the core vocabulary already delivers: a
#: response's output items and content parts opening and closing, function-call and MCP
#: argument streaming (the call itself arrives as ``ToolCallRequested`` / ``HandoffRequested``),
#: and ``conversation.created``. An engine may keep these behind a switch (issue 13: the events
#: a host acts on — output-audio-buffer, idle timeout, transcription segment/failure, item
#: retrieval, MCP list/call status — are forwarded by default). Parsing types them all alike.
DETAIL_EVENTS: Final[frozenset[type[ServerEvent]]] = frozenset(
    {
        ConversationCreated,
        OutputItemAdded,
        OutputItemDone,
        ContentPartAdded,
        ContentPartDone,
        FunctionCallArgumentsDelta,
        FunctionCallArgumentsDone,
        McpCallArgumentsDelta,
        McpCallArgumentsDone,
    }
)
