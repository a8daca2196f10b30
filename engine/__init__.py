"""duplex.engine — the host API: one interface on every transport and both dialects (SPEC §3).

A host imports everything it needs from here: the engine, its config and errors, the
lifecycle events, and the protocol's event vocabulary and ``AudioFrame``.

How it is built (one inbound event, and one ``send_audio``, each cross at most these files)::

    _engine.py         Engine / open_engine: lifecycle calls, the host queue, events(), the one
                       exception mapping at the boundary (host_exception)
    _conversation.py   one conversation's tasks, in one nursery:
                         reader     transport.receive_batch() → parse → state → host queue
                         writer     outbox → transport.send_text (the only text writer)
                         audio-mux  host audio → whole samples → 24 kHz → outbox | RTP
    _host_calls.py     the host's calls on a conversation (held while reconnecting, then
                       decided by the state machine and queued in the outbox)
    _state_machine.py  ConversationState: every rule (lifecycle, responses, barge-in,
                       handoffs, error policy, what is forwarded); sync, trio-free
    _queues.py         HostQueue (host events) and Outbox (client frames): bounded for
                       producers that may wait, open to structural items
    _errors.py         exceptions and the lifecycle events; _config.py, _host_events.py

Reading never waits on writing: the reader queues the state machine's control messages
without waiting; only the host queue (a slow host) can hold it back.
"""

from __future__ import annotations

from duplex.protocol import (
    AudioFrame as AudioFrame,
    AudioInterrupted as AudioInterrupted,
    AudioOut as AudioOut,
    ContentPartAdded as ContentPartAdded,
    ContentPartDone as ContentPartDone,
    ConversationCreated as ConversationCreated,
    ConversationItemAdded as ConversationItemAdded,
    ConversationItemDeleted as ConversationItemDeleted,
    ConversationItemDone as ConversationItemDone,
    ConversationItemRetrieved as ConversationItemRetrieved,
    ConversationItemTruncated as ConversationItemTruncated,
    CustomVoice as CustomVoice,
    Error as Error,
    FunctionCallArgumentsDelta as FunctionCallArgumentsDelta,
    FunctionCallArgumentsDone as FunctionCallArgumentsDone,
    FunctionTool as FunctionTool,
    HandoffRequested as HandoffRequested,
    InputAudioCleared as InputAudioCleared,
    InputAudioCommitted as InputAudioCommitted,
    InputAudioDtmfReceived as InputAudioDtmfReceived,
    InputAudioSpeechStarted as InputAudioSpeechStarted,
    InputAudioSpeechStopped as InputAudioSpeechStopped,
    InputAudioTimeoutTriggered as InputAudioTimeoutTriggered,
    InputTranscriptDelta as InputTranscriptDelta,
    InputTranscriptDone as InputTranscriptDone,
    InputTranscriptFailed as InputTranscriptFailed,
    InputTranscription as InputTranscription,
    InputTranscriptSegment as InputTranscriptSegment,
    McpApprovalRequested as McpApprovalRequested,
    McpCallArgumentsDelta as McpCallArgumentsDelta,
    McpCallArgumentsDone as McpCallArgumentsDone,
    McpCallCompleted as McpCallCompleted,
    McpCallFailed as McpCallFailed,
    McpCallInProgress as McpCallInProgress,
    McpListToolsCompleted as McpListToolsCompleted,
    McpListToolsFailed as McpListToolsFailed,
    McpListToolsInProgress as McpListToolsInProgress,
    McpTool as McpTool,
    NoopRequested as NoopRequested,
    OutputAudioBufferCleared as OutputAudioBufferCleared,
    OutputAudioBufferStarted as OutputAudioBufferStarted,
    OutputAudioBufferStopped as OutputAudioBufferStopped,
    OutputAudioDone as OutputAudioDone,
    OutputItemAdded as OutputItemAdded,
    OutputItemDone as OutputItemDone,
    OutputTranscriptDelta as OutputTranscriptDelta,
    OutputTranscriptDone as OutputTranscriptDone,
    ParseFailure as ParseFailure,
    PromptReference as PromptReference,
    RateLimitsUpdated as RateLimitsUpdated,
    Reasoning as Reasoning,
    ResponseCancelled as ResponseCancelled,
    ResponseCreated as ResponseCreated,
    ResponseDone as ResponseDone,
    SemanticVad as SemanticVad,
    ServerVad as ServerVad,
    SessionConfig as SessionConfig,
    SessionCreated as SessionCreated,
    SessionUpdated as SessionUpdated,
    Tool as Tool,
    ToolCallRequested as ToolCallRequested,
    Tracing as Tracing,
    TranscriptEntry as TranscriptEntry,
    UnknownEvent as UnknownEvent,
)

from ._config import (
    DEFAULT_BASE_URL as DEFAULT_BASE_URL,
    DEFAULT_MODEL as DEFAULT_MODEL,
    EngineConfig as EngineConfig,
)
from ._engine import (
    Engine as Engine,
    EngineStatistics as EngineStatistics,
    EventStream as EventStream,
    open_engine as open_engine,
)
from ._errors import (
    ConversationClosed as ConversationClosed,
    ConversationNotRunning as ConversationNotRunning,
    ConversationReconnecting as ConversationReconnecting,
    ConversationResumed as ConversationResumed,
    ConversationStarted as ConversationStarted,
    ConversationStartError as ConversationStartError,
    EngineClosed as EngineClosed,
    EngineError as EngineError,
    HandoffNotActive as HandoffNotActive,
    InvalidAudioFrame as InvalidAudioFrame,
    InvalidRequest as InvalidRequest,
    ToolCallNotActive as ToolCallNotActive,
    UnsupportedByDialect as UnsupportedByDialect,
)
from ._history import HistoryItem as HistoryItem
from ._host_events import HostEvent as HostEvent
from ._reconnect import ReconnectPolicy as ReconnectPolicy
from ._resample import ResamplerUnavailable as ResamplerUnavailable
from ._usage import (
    LatencySummary as LatencySummary,
    ResponseLatency as ResponseLatency,
    UsageTotals as UsageTotals,
)

__all__ = [
    # the engine
    "open_engine",
    "Engine",
    "EngineConfig",
    "EngineStatistics",
    "EventStream",
    # long conversations
    "HistoryItem",
    "ReconnectPolicy",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    # statistics: usage and latency
    "UsageTotals",
    "LatencySummary",
    "ResponseLatency",
    # tools and session configuration (SPEC §3.2, §3.3)
    "FunctionTool",
    "McpTool",
    "Tool",
    "SessionConfig",
    "ServerVad",
    "SemanticVad",
    "CustomVoice",
    "InputTranscription",
    "PromptReference",
    "Tracing",
    "Reasoning",
    # errors
    "EngineError",
    "ConversationNotRunning",
    "ConversationStartError",
    "HandoffNotActive",
    "ToolCallNotActive",
    "InvalidRequest",
    "InvalidAudioFrame",
    "ResamplerUnavailable",
    "UnsupportedByDialect",
    "EngineClosed",
    # audio in and out
    "AudioFrame",
    # events: the union, lifecycle, then the protocol vocabulary
    "HostEvent",
    "ConversationStarted",
    "ConversationClosed",
    "ConversationReconnecting",
    "ConversationResumed",
    "SessionCreated",
    "SessionUpdated",
    "InputAudioSpeechStarted",
    "InputAudioSpeechStopped",
    "InputAudioCommitted",
    "InputTranscriptDelta",
    "InputTranscriptDone",
    "OutputTranscriptDelta",
    "OutputTranscriptDone",
    "AudioOut",
    "ResponseCreated",
    "ResponseCancelled",
    "ResponseDone",
    "ConversationItemAdded",
    "ConversationItemDone",
    "ConversationItemTruncated",
    "ConversationItemDeleted",
    "HandoffRequested",
    "NoopRequested",
    "RateLimitsUpdated",
    "Error",
    "UnknownEvent",
    "ParseFailure",
    "OutputAudioDone",
    "AudioInterrupted",
    "ToolCallRequested",
    "McpApprovalRequested",
    "ConversationItemRetrieved",
    "InputAudioCleared",
    "InputAudioTimeoutTriggered",
    "InputAudioDtmfReceived",
    "InputTranscriptSegment",
    "InputTranscriptFailed",
    "McpListToolsInProgress",
    "McpListToolsCompleted",
    "McpListToolsFailed",
    "McpCallInProgress",
    "McpCallCompleted",
    "McpCallFailed",
    # detail and WebRTC-only events (forwarded with forward_unknown_events)
    "ContentPartAdded",
    "ContentPartDone",
    "ConversationCreated",
    "FunctionCallArgumentsDelta",
    "FunctionCallArgumentsDone",
    "McpCallArgumentsDelta",
    "McpCallArgumentsDone",
    "OutputAudioBufferCleared",
    "OutputAudioBufferStarted",
    "OutputAudioBufferStopped",
    "OutputItemAdded",
    "OutputItemDone",
    "TranscriptEntry",
]
