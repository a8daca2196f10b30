"""duplex.aio — the host API for asyncio applications (SPEC §3.6).

``open_engine`` gives ``asyncio.run`` programs, FastAPI/uvicorn backends, Textual and
Qt-asyncio apps the engine of ``duplex.engine`` with asyncio awaitables: the same method
names, the same typed events, the same errors, the same backpressure. The engine itself
runs in trio's guest mode on the host's loop (see ``_trio_run`` and ``docs/aio.md`` for the
mechanism and its measured cost). The configuration, the errors and the event vocabulary are
those of ``duplex.engine``; they are re-exported here for convenience.
"""

from __future__ import annotations

from duplex.engine import (
    AudioFrame as AudioFrame,
    AudioOut as AudioOut,
    ConversationClosed as ConversationClosed,
    ConversationNotRunning as ConversationNotRunning,
    ConversationStarted as ConversationStarted,
    ConversationStartError as ConversationStartError,
    EngineClosed as EngineClosed,
    EngineConfig as EngineConfig,
    EngineError as EngineError,
    EngineStatistics as EngineStatistics,
    FunctionTool as FunctionTool,
    HandoffNotActive as HandoffNotActive,
    HandoffRequested as HandoffRequested,
    HistoryItem as HistoryItem,
    HostEvent as HostEvent,
    InvalidAudioFrame as InvalidAudioFrame,
    InvalidRequest as InvalidRequest,
    McpApprovalRequested as McpApprovalRequested,
    McpTool as McpTool,
    ReconnectPolicy as ReconnectPolicy,
    ResamplerUnavailable as ResamplerUnavailable,
    SessionConfig as SessionConfig,
    Tool as Tool,
    ToolCallNotActive as ToolCallNotActive,
    ToolCallRequested as ToolCallRequested,
    UnsupportedByDialect as UnsupportedByDialect,
)

from ._engine import (
    AUDIO_AHEAD_MS as AUDIO_AHEAD_MS,
    EVENT_WINDOW as EVENT_WINDOW,
    AsyncioEngine as AsyncioEngine,
    AsyncioEventStream as AsyncioEventStream,
    open_engine as open_engine,
)
from ._trio_run import Mechanism as Mechanism

__all__ = [
    # the asyncio host API
    "open_engine",
    "AsyncioEngine",
    "AsyncioEventStream",
    "Mechanism",
    "EVENT_WINDOW",
    "AUDIO_AHEAD_MS",
    # re-exported from duplex.engine: configuration
    "EngineConfig",
    "EngineStatistics",
    "FunctionTool",
    "McpTool",
    "Tool",
    "HistoryItem",
    "ReconnectPolicy",
    "SessionConfig",
    # re-exported from duplex.engine: events (every other event type: duplex.engine)
    "HostEvent",
    "AudioFrame",
    "AudioOut",
    "ConversationStarted",
    "ConversationClosed",
    "HandoffRequested",
    "ToolCallRequested",
    "McpApprovalRequested",
    # re-exported from duplex.engine: errors
    "EngineError",
    "ConversationNotRunning",
    "ConversationStartError",
    "HandoffNotActive",
    "ToolCallNotActive",
    "InvalidAudioFrame",
    "InvalidRequest",
    "ResamplerUnavailable",
    "UnsupportedByDialect",
    "EngineClosed",
]
