"""``HostEvent``: the closed union of everything ``Engine.events()`` yields.

Hosts ``match`` on it; because it is a union of concrete final classes (not a base class),
``mypy --strict`` checks attribute access per case and can prove a ``match`` exhaustive with
``typing.assert_never``. Every class the engine may forward must be listed here; a test
checks that the union and ``duplex.engine.__all__`` agree.
"""

from __future__ import annotations

from typing import TypeAlias

from duplex.protocol import (
    AudioOut,
    ConversationItemAdded,
    ConversationItemDeleted,
    ConversationItemDone,
    ConversationItemTruncated,
    Error,
    HandoffRequested,
    InputAudioCommitted,
    InputAudioSpeechStarted,
    InputAudioSpeechStopped,
    InputTranscriptDelta,
    InputTranscriptDone,
    NoopRequested,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    ParseFailure,
    RateLimitsUpdated,
    ResponseCancelled,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
    UnknownEvent,
)

from ._errors import ConversationClosed, ConversationStarted

__all__ = ["HostEvent"]

HostEvent: TypeAlias = (
    ConversationStarted
    | ConversationClosed
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
)
