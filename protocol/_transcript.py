"""The running transcript of a connection and the ``active_transcript`` of each handoff.

``TranscriptAccumulator`` is codex's ``update_active_transcript`` (codex-realtime.md §5.6):
one instance per connection sees every parsed server event, in order, and fills
``HandoffRequested.active_transcript`` with the lines said since the previous handoff.

Invariants:
- Roles are exactly ``"user"`` (input transcription) and ``"assistant"`` (model output).
- No entry ever has empty text: empty deltas and empty ``…Done`` texts are ignored.
- Only the *last* entry ever changes, and only while no "new entry" flag of its role is set.
  A handoff sets both flags, so every entry a handoff has carried is frozen from then on:
  concatenating the ``active_transcript`` of all handoffs, in order, gives exactly the first
  entries of ``entries`` — nothing is carried twice and nothing is skipped.
- ``observe`` returns its argument itself (``is``) for every event except
  ``HandoffRequested``, which comes back as a new value (events are frozen).

Decisions where codex is silent or Rust-specific:
- The transcript is kept for the life of the connection, as codex does; it is text only, so
  even hours of speech stay in the low megabytes.
- The open (last) entry is held as a list of delta pieces and joined on demand, so a long
  turn costs O(n) rather than the O(n²) of repeated string concatenation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import attrs

from ._events import (
    HandoffRequested,
    InputAudioSpeechStarted,
    InputTranscriptDelta,
    InputTranscriptDone,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    ResponseCreated,
    ServerEvent,
)
from ._items import TranscriptEntry

__all__ = ["TranscriptAccumulator"]

_USER: Final = "user"
_ASSISTANT: Final = "assistant"


class TranscriptAccumulator:
    """Per-connection running transcript; feed it every server event with ``observe``."""

    __slots__ = (
        "_closed",
        "_handoff_mark",
        "_new_input",
        "_new_output",
        "_open_parts",
        "_open_role",
    )

    def __init__(self) -> None:
        # Entries that can no longer change, then the one open entry (if any) as pieces.
        self._closed: list[TranscriptEntry] = []
        self._open_role: str | None = None
        self._open_parts: list[str] = []
        # How many entries earlier handoffs have already carried.
        self._handoff_mark = 0
        # "The next text of this role starts a new entry" (codex new_input/output_entry).
        self._new_input = False
        self._new_output = False

    @property
    def entries(self) -> tuple[TranscriptEntry, ...]:
        """The whole transcript so far, oldest first."""
        if self._open_role is None:
            return tuple(self._closed)
        return (*self._closed, TranscriptEntry(self._open_role, "".join(self._open_parts)))

    def observe(self, event: ServerEvent) -> ServerEvent:
        """Update the transcript from ``event``; return it, with ``active_transcript`` filled
        in if it is a ``HandoffRequested``."""
        # One dict lookup on the hot path: most events (audio above all) stop here.
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return event
        return handler(self, event)

    def _on_speech_started(self, event: InputAudioSpeechStarted) -> ServerEvent:
        self._new_input = True
        return event

    def _on_response_created(self, event: ResponseCreated) -> ServerEvent:
        self._new_output = True
        return event

    def _on_input_delta(self, event: InputTranscriptDelta) -> ServerEvent:
        if event.delta:
            self._add(_USER, event.delta, force_new=self._new_input, replace=False)
            self._new_input = False
        return event

    def _on_output_delta(self, event: OutputTranscriptDelta) -> ServerEvent:
        if event.delta:
            self._add(_ASSISTANT, event.delta, force_new=self._new_output, replace=False)
            self._new_output = False
        return event

    def _on_input_done(self, event: InputTranscriptDone) -> ServerEvent:
        if event.text:
            self._add(_USER, event.text, force_new=self._new_input, replace=True)
            self._new_input = False
        return event

    def _on_output_done(self, event: OutputTranscriptDone) -> ServerEvent:
        if event.text:
            self._add(_ASSISTANT, event.text, force_new=self._new_output, replace=True)
            self._new_output = False
        return event

    def _on_handoff(self, event: HandoffRequested) -> ServerEvent:
        self._close_open()
        text = event.input_transcript.strip()
        # The model's own summary of the request is worth keeping, but not twice: it usually
        # repeats what input transcription already recorded.
        if text and not any(
            entry.role == _USER and entry.text.strip() == text for entry in self._closed
        ):
            self._closed.append(TranscriptEntry(_USER, text))
        active = tuple(self._closed[self._handoff_mark :])
        self._handoff_mark = len(self._closed)
        self._new_input = True
        self._new_output = True
        return attrs.evolve(event, active_transcript=active)

    def _add(self, role: str, text: str, *, force_new: bool, replace: bool) -> None:
        # The open entry is always the last one: a push closes it, and after a handoff
        # (which closes it too) both flags force the next text of either role to push.
        if not force_new and self._open_role == role:
            if replace:
                self._open_parts = [text]
            else:
                self._open_parts.append(text)
            return
        self._close_open()
        self._open_role = role
        self._open_parts = [text]

    def _close_open(self) -> None:
        if self._open_role is not None:
            self._closed.append(TranscriptEntry(self._open_role, "".join(self._open_parts)))
            self._open_role = None
            self._open_parts = []


_HANDLERS: Final[dict[type[ServerEvent], Callable[[TranscriptAccumulator, Any], ServerEvent]]] = {
    InputAudioSpeechStarted: TranscriptAccumulator._on_speech_started,
    ResponseCreated: TranscriptAccumulator._on_response_created,
    InputTranscriptDelta: TranscriptAccumulator._on_input_delta,
    OutputTranscriptDelta: TranscriptAccumulator._on_output_delta,
    InputTranscriptDone: TranscriptAccumulator._on_input_done,
    OutputTranscriptDone: TranscriptAccumulator._on_output_done,
    HandoffRequested: TranscriptAccumulator._on_handoff,
}
