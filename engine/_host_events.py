"""``HostEvent``: the closed union of everything ``Engine.events()`` yields.

Hosts ``match`` on it; because it is a union of concrete final classes (not a base class),
``mypy --strict`` checks attribute access per case and can prove a ``match`` exhaustive with
``typing.assert_never``. Every class the engine may forward must be listed here; a test
checks that the union and ``duplex.engine.__all__`` agree.
"""

from __future__ import annotations

from typing import TypeAlias

from duplex.protocol import (
    AudioInterrupted,
    AudioOut,
    ContentPartAdded,
    ContentPartDone,
    ConversationCreated,
    ConversationItemAdded,
    ConversationItemDeleted,
    ConversationItemDone,
    ConversationItemRetrieved,
    ConversationItemTruncated,
    Error,
    FunctionCallArgumentsDelta,
    FunctionCallArgumentsDone,
    HandoffRequested,
    InputAudioCleared,
    InputAudioCommitted,
    InputAudioDtmfReceived,
    InputAudioSpeechStarted,
    InputAudioSpeechStopped,
    InputAudioTimeoutTriggered,
    InputTranscriptDelta,
    InputTranscriptDone,
    InputTranscriptFailed,
    InputTranscriptSegment,
    McpApprovalRequested,
    McpCallArgumentsDelta,
    McpCallArgumentsDone,
    McpCallCompleted,
    McpCallFailed,
    McpCallInProgress,
    McpListToolsCompleted,
    McpListToolsFailed,
    McpListToolsInProgress,
    NoopRequested,
    OutputAudioBufferCleared,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    OutputAudioDone,
    OutputItemAdded,
    OutputItemDone,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    ParseFailure,
    RateLimitsUpdated,
    ResponseCancelled,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
    ToolCallRequested,
    UnknownEvent,
)

from ._errors import (
    ConversationClosed,
    ConversationReconnecting,
    ConversationResumed,
    ConversationStarted,
)

__all__ = ["HostEvent"]

HostEvent: TypeAlias = (
    ConversationStarted
    | ConversationClosed
    | ConversationReconnecting
    | ConversationResumed
    | SessionCreated
    | SessionUpdated
    | InputAudioSpeechStarted
    | InputAudioSpeechStopped
    | InputAudioCommitted
    | InputTranscriptDelta
    | InputTranscriptDone
    | OutputTranscriptDelta
    | OutputTranscriptDone
    | AudioOut
    | ResponseCreated
    | ResponseCancelled
    | ResponseDone
    | ConversationItemAdded
    | ConversationItemDone
    | ConversationItemTruncated
    | ConversationItemDeleted
    | HandoffRequested
    | NoopRequested
    | RateLimitsUpdated
    | Error
    | UnknownEvent
    | ParseFailure
    # forwarded by default since the full GA vocabulary (issue 13)
    | OutputAudioDone
    | AudioInterrupted
    | ToolCallRequested
    | McpApprovalRequested
    | ConversationItemRetrieved
    | InputAudioCleared
    | InputAudioTimeoutTriggered
    | InputAudioDtmfReceived
    | InputTranscriptSegment
    | InputTranscriptFailed
    | McpListToolsInProgress
    | McpListToolsCompleted
    | McpListToolsFailed
    | McpCallInProgress
    | McpCallCompleted
    | McpCallFailed
    # forwarded only with EngineConfig.forward_unknown_events (detail and WebRTC-only events)
    | ContentPartAdded
    | ContentPartDone
    | ConversationCreated
    | FunctionCallArgumentsDelta
    | FunctionCallArgumentsDone
    | McpCallArgumentsDelta
    | McpCallArgumentsDone
    | OutputAudioBufferCleared
    | OutputAudioBufferStarted
    | OutputAudioBufferStopped
    | OutputItemAdded
    | OutputItemDone
)
