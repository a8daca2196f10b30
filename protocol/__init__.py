"""duplex.protocol — the sans-IO realtime protocol: typed events, two wire dialects, both roles.

Layout (one concept per private module; this file is the whole public surface):

- ``_events``: the host-visible event vocabulary both dialects feed (SPEC §2).
- ``_client_events``, ``_session``, ``_items``, ``_audio``: the values carried on the wire.
- ``_parse_common`` / ``_parse_v1`` / ``_parse_v2`` / ``_parse_client``: wire → events.
- ``_server_parser``: ``ServerEventParser``, one dispatch table per dialect and tool names.
- ``_encode_common`` / ``_encode_v1`` / ``_encode_v2``: each dialect's wire shapes, events →
  wire dicts (server role) and the dialect-specific client pieces.
- ``_client_builders``: what a client sends, one function per intent for both dialects.
- ``_codec``: the version switch (``parse_server_event`` … ``encode_server_event``).
- ``_urls``, ``_transcript``, ``_handoff``: URLs and headers, the running transcript, handoff
  argument extraction and reply texts.

Nothing here does I/O, reads a clock or generates ids: callers pass those in. The package
imports only the standard library, attrs, cattrs and orjson (a test enforces it).
"""

from __future__ import annotations

from ._audio import (
    WIRE_CHANNELS as WIRE_CHANNELS,
    WIRE_SAMPLE_RATE as WIRE_SAMPLE_RATE,
    AudioFrame as AudioFrame,
    b64decode_pcm as b64decode_pcm,
    b64encode_pcm as b64encode_pcm,
    duration_ms as duration_ms,
    pcm_bytes_for_ms as pcm_bytes_for_ms,
)
from ._client_builders import (
    call_session_payload as call_session_payload,
    handoff_output_events as handoff_output_events,
    noop_reply_event as noop_reply_event,
    prompt_update_event as prompt_update_event,
    response_create_event as response_create_event,
    session_start_event as session_start_event,
    steering_ack_event as steering_ack_event,
    text_item_event as text_item_event,
    truncate_event as truncate_event,
)
from ._client_events import (
    ClientEvent as ClientEvent,
    ConversationItemCreate as ConversationItemCreate,
    ConversationItemDelete as ConversationItemDelete,
    ConversationItemRetrieve as ConversationItemRetrieve,
    ConversationItemTruncate as ConversationItemTruncate,
    HandoffAppend as HandoffAppend,
    InputAudioBufferAppend as InputAudioBufferAppend,
    InputAudioBufferClear as InputAudioBufferClear,
    InputAudioBufferCommit as InputAudioBufferCommit,
    OutputAudioBufferClear as OutputAudioBufferClear,
    ResponseCancel as ResponseCancel,
    ResponseCreate as ResponseCreate,
    SessionCreate as SessionCreate,
    SessionUpdate as SessionUpdate,
)
from ._codec import (
    client_event_payload as client_event_payload,
    client_event_types as client_event_types,
    encode_client_event as encode_client_event,
    encode_server_event as encode_server_event,
    parse_client_event as parse_client_event,
    parse_server_event as parse_server_event,
    server_event_payload as server_event_payload,
)
from ._encode_common import audio_append_text as audio_append_text
from ._enums import (
    DEFAULT_VOICE as DEFAULT_VOICE,
    FATAL_ERROR_CODES as FATAL_ERROR_CODES,
    VOICES as VOICES,
    OutputModality as OutputModality,
    ProtocolVersion as ProtocolVersion,
    SessionMode as SessionMode,
    coerce_version as coerce_version,
    is_fatal_error_code as is_fatal_error_code,
    validate_voice as validate_voice,
)
from ._errors import LocalProtocolError as LocalProtocolError, ProtocolError as ProtocolError
from ._events import (
    AudioInterrupted as AudioInterrupted,
    AudioOut as AudioOut,
    ConversationItemAdded as ConversationItemAdded,
    ConversationItemDeleted as ConversationItemDeleted,
    ConversationItemDone as ConversationItemDone,
    ConversationItemTruncated as ConversationItemTruncated,
    Error as Error,
    HandoffRequested as HandoffRequested,
    InputAudioCommitted as InputAudioCommitted,
    InputAudioSpeechStarted as InputAudioSpeechStarted,
    InputAudioSpeechStopped as InputAudioSpeechStopped,
    InputTranscriptDelta as InputTranscriptDelta,
    InputTranscriptDone as InputTranscriptDone,
    NoopRequested as NoopRequested,
    OutputAudioDone as OutputAudioDone,
    OutputTranscriptDelta as OutputTranscriptDelta,
    OutputTranscriptDone as OutputTranscriptDone,
    ParseFailure as ParseFailure,
    RateLimitsUpdated as RateLimitsUpdated,
    ResponseCancelled as ResponseCancelled,
    ResponseCreated as ResponseCreated,
    ResponseDone as ResponseDone,
    ServerEvent as ServerEvent,
    SessionCreated as SessionCreated,
    SessionUpdated as SessionUpdated,
    ToolCallRequested as ToolCallRequested,
    UnknownEvent as UnknownEvent,
)
from ._ga_events import (
    ContentPartAdded as ContentPartAdded,
    ContentPartDone as ContentPartDone,
    ConversationCreated as ConversationCreated,
    ConversationItemRetrieved as ConversationItemRetrieved,
    FunctionCallArgumentsDelta as FunctionCallArgumentsDelta,
    FunctionCallArgumentsDone as FunctionCallArgumentsDone,
    InputAudioCleared as InputAudioCleared,
    InputAudioDtmfReceived as InputAudioDtmfReceived,
    InputAudioTimeoutTriggered as InputAudioTimeoutTriggered,
    InputTranscriptFailed as InputTranscriptFailed,
    InputTranscriptSegment as InputTranscriptSegment,
    McpCallArgumentsDelta as McpCallArgumentsDelta,
    McpCallArgumentsDone as McpCallArgumentsDone,
    McpCallCompleted as McpCallCompleted,
    McpCallFailed as McpCallFailed,
    McpCallInProgress as McpCallInProgress,
    McpListToolsCompleted as McpListToolsCompleted,
    McpListToolsFailed as McpListToolsFailed,
    McpListToolsInProgress as McpListToolsInProgress,
    OutputAudioBufferCleared as OutputAudioBufferCleared,
    OutputAudioBufferStarted as OutputAudioBufferStarted,
    OutputAudioBufferStopped as OutputAudioBufferStopped,
    OutputItemAdded as OutputItemAdded,
    OutputItemDone as OutputItemDone,
)
from ._handoff import (
    AGENT_FINAL_MESSAGE_PREFIX as AGENT_FINAL_MESSAGE_PREFIX,
    BACKEND_PREFIX as BACKEND_PREFIX,
    FINAL_OUTPUT_TEXT as FINAL_OUTPUT_TEXT,
    STEERING_ACK_TEXT as STEERING_ACK_TEXT,
    USER_PREFIX as USER_PREFIX,
    delegation_text as delegation_text,
    extract_handoff_text as extract_handoff_text,
    prefix_text as prefix_text,
)
from ._items import (
    ContentPart as ContentPart,
    ConversationItem as ConversationItem,
    RateLimit as RateLimit,
    TranscriptEntry as TranscriptEntry,
    Usage as Usage,
)
from ._resample import Resampler as Resampler
from ._server_parser import (
    DEFAULT_HANDOFF_TOOL_NAME as DEFAULT_HANDOFF_TOOL_NAME,
    DEFAULT_SILENCE_TOOL_NAME as DEFAULT_SILENCE_TOOL_NAME,
    ServerEventParser as ServerEventParser,
    server_event_parser as server_event_parser,
)
from ._session import (
    PCM_24K as PCM_24K,
    AudioConfig as AudioConfig,
    AudioFormat as AudioFormat,
    AudioInputConfig as AudioInputConfig,
    AudioOutputConfig as AudioOutputConfig,
    FunctionTool as FunctionTool,
    InputTranscription as InputTranscription,
    NoiseReduction as NoiseReduction,
    SessionConfig as SessionConfig,
    TurnDetection as TurnDetection,
)
from ._transcript import TranscriptAccumulator as TranscriptAccumulator
from ._urls import (
    call_id_from_location as call_id_from_location,
    merge_headers as merge_headers,
    multipart_call_body as multipart_call_body,
    realtime_calls_url as realtime_calls_url,
    realtime_headers as realtime_headers,
    realtime_websocket_url as realtime_websocket_url,
)

__all__ = [name for name in dir() if not name.startswith("_") and name != "annotations"]
