"""The response clock: the records of a queued response and the timeline that plays them out.

A model response is not sent at once: the builders (``_response_builders``) queue it as timed
``_Step``s on a ``_Response``, and this module's ``ResponseClock`` releases them. ``poll(now)``
returns what is due, ``next_deadline()`` says when to call it again, and ``take_audio()`` hands
WebRTC audio to the media track. The same timeline carries what is not a response step: the
WebRTC playout edges (``output_audio_buffer.started`` / ``.stopped`` of a ``_Playout``), the
idle timer (``input_audio_buffer.timeout_triggered``, armed and fired by ``_input_audio``) and
input transcriptions held back by ``transcript_delay_ms``.

``ResponseClock`` is the base of ``ScriptedModel``'s mixins (``_model`` describes the layers):
it declares the state it reads, ``ScriptedModel.__init__`` sets it. It also holds the event
constructors every layer uses, ``_ev``, ``_stamp`` and the public ``error`` (an ``error``
event in the real server's shape), through which every event the model returns gets its fresh
``event_id``.

Invariants:
- events come out in due order; on a tie a playout's ``started`` goes before a response's
  steps, its ``stopped`` after them, then the idle timer, then held-back transcriptions;
- at most one response holds the default conversation's slot (``_active``); out-of-band
  responses (``_oob``) run beside it; when a response's last step is polled its slot is free;
- WebRTC playout is computed, not guessed from the response: a ``_Playout`` ends one track
  frame (``_TRACK_FRAME_S``) after its last sample, normally well after ``response.done``. A
  barge-in or ``output_audio_buffer.clear`` drops every playout (``_clear_playout``) and
  answers ``output_audio_buffer.cleared`` instead of ``stopped``.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final, Literal

import attrs

from ._audio import FRAME_MS, SAMPLE_RATE
from ._config import IdGenerator

__all__ = ["Event", "ResponseClock"]

Event = dict[str, Any]

#: the track sends 20 ms frames: the last sample leaves at most one frame after it was due
_TRACK_FRAME_S: Final = FRAME_MS / 1000.0


@attrs.define
class _Step:
    """One queued event of a streaming response and what it carries."""

    due: float
    event: Event
    pcm: bytes = b""
    transcript: str = ""


@attrs.define
class _Response:
    id: str
    kind: Literal["message", "function_call", "handoff", "mcp"]
    modality: str
    item_id: str
    item: Event
    previous_item_id: str | None
    steps: deque[_Step] = attrs.field(factory=deque)
    #: finished MCP items the response produced before its own item (``_mcp``), and the
    #: conversation item before the first of them
    lead: list[Event] = attrs.field(factory=list)
    lead_previous: str | None = None
    audio_bytes_sent: int = 0
    #: bytes per second of this response's audio (PCM16 24 kHz, or G.711 8 kHz)
    bytes_per_s: int = 2 * SAMPLE_RATE
    transcript_sent: str = ""
    usage: Event = attrs.field(factory=dict)
    #: ``False`` for an out-of-band (``conversation: "none"``) response
    in_conversation: bool = True
    metadata: Event | None = None
    #: the response's ``audio.output`` overrides (format, voice)
    output: Event | None = None


@attrs.define
class _Playout:
    """A response's audio on the WebRTC track: when it starts and when its last sample left."""

    response_id: str
    item_id: str
    start: float
    end: float
    started_sent: bool = False


class ResponseClock:
    """The timeline of ``ScriptedModel``'s responses (see the module docstring)."""

    ids: IdGenerator
    webrtc: bool
    _active: _Response | None
    _oob: list[_Response]
    _playing: deque[_Playout]
    _assistant_audio_ms: dict[str, int]
    _audio_emitted: bool
    _audio_out: list[bytes]
    #: when ``input_audio_buffer.timeout_triggered`` fires (``idle_timeout_ms``), if armed
    _idle_deadline: float | None
    #: input transcription events held back (``SimulatorConfig.transcript_delay_ms``), in
    #: commit order, each with when it is due
    _late_transcripts: deque[tuple[float, list[Event]]]

    def _on_idle(self, now: float) -> list[Event]:
        """The idle timer fired (``_input_audio``)."""
        raise NotImplementedError

    def _arm_idle(self, at: float) -> None:
        """The last response finished (playing) at ``at`` (``_input_audio``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ clock

    def _live(self) -> list[_Response]:
        live = [r for r in self._oob if r.steps]
        if self._active is not None and self._active.steps:
            live.insert(0, self._active)
        return live

    def _next(self) -> tuple[float, int, _Response | None] | None:
        """The earliest pending thing: (due, tie rank, response or ``None`` for playout).
        On a tie ``started`` goes first and ``stopped`` after the response's own steps."""
        best: tuple[float, int, _Response | None] | None = None
        cand: tuple[float, int, _Response | None]
        for r in self._live():
            cand = (r.steps[0].due, 1, r)
            if best is None or cand[:2] < best[:2]:
                best = cand
        if self._playing:
            p = self._playing[0]
            cand = (p.start, 0, None) if not p.started_sent else (p.end, 2, None)
            if best is None or cand[:2] < best[:2]:
                best = cand
        if self._idle_deadline is not None:
            cand = (self._idle_deadline, 3, None)
            if best is None or cand[:2] < best[:2]:
                best = cand
        if self._late_transcripts:
            cand = (self._late_transcripts[0][0], 4, None)
            if best is None or cand[:2] < best[:2]:
                best = cand
        return best

    def poll(self, now: float) -> list[Event]:
        """Events that are due at ``now``."""
        out: list[Event] = []
        while (nxt := self._next()) is not None and nxt[0] <= now:
            response = nxt[2]
            if nxt[1] == 3:
                self._idle_deadline = None
                out.extend(self._on_idle(nxt[0]))
                continue
            if nxt[1] == 4:
                out.extend(self._late_transcripts.popleft()[1])
                continue
            if response is None:
                out.extend(self._playout_edge())
                continue
            step = response.steps.popleft()
            response.transcript_sent += step.transcript
            if step.pcm:
                response.audio_bytes_sent += len(step.pcm)
                self._assistant_audio_ms[response.item_id] = (
                    response.audio_bytes_sent * 1000 // response.bytes_per_s
                )
                self._audio_emitted = True
                if self.webrtc:
                    self._audio_out.append(step.pcm)
            if step.event:
                out.append(self._stamp(step.event))
            if not response.steps:
                self._finish(response)
                if response.in_conversation and not any(
                    p.response_id == response.id for p in self._playing
                ):
                    self._arm_idle(step.due)
        return out

    def _playout_edge(self) -> list[Event]:
        p = self._playing[0]
        if not p.started_sent:
            p.started_sent = True
            return [self._ev("output_audio_buffer.started", response_id=p.response_id)]
        self._playing.popleft()
        if not self._playing and self._active is None:
            self._arm_idle(p.end)
        return [self._ev("output_audio_buffer.stopped", response_id=p.response_id)]

    def _finish(self, response: _Response) -> None:
        if response is self._active:
            self._active = None
        elif response in self._oob:
            self._oob.remove(response)

    def next_deadline(self) -> float | None:
        """When ``poll`` next has something to return, or ``None``."""
        nxt = self._next()
        return None if nxt is None else nxt[0]

    def take_audio(self) -> list[bytes]:
        """Model audio produced since the last call (WebRTC only; 24 kHz mono PCM16)."""
        out, self._audio_out = self._audio_out, []
        return out

    # ------------------------------------------------------------------ events

    def _ev(self, type_: str, **fields: Any) -> Event:
        return {"type": type_, "event_id": self.ids.event(), **fields}

    def _stamp(self, event: Event) -> Event:
        return {"type": event["type"], "event_id": self.ids.event(), **event}

    def error(
        self,
        code: str | None,
        message: str,
        *,
        param: str | None = None,
        client_event_id: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> Event:
        """An ``error`` event in the real server's shape (openai-realtime-protocol.md §3.2)."""
        return self._ev(
            "error",
            error={
                "type": error_type,
                "code": code,
                "message": message,
                "param": param,
                "event_id": client_event_id,
            },
        )

    # ------------------------------------------------------------------ playout

    def _clear_playout(self, now: float | None) -> list[Event]:
        """Drop every queued playout (barge-in, ``output_audio_buffer.clear``); the item that
        was playing is truncated at what was heard when ``now`` is known."""
        self._audio_out.clear()
        if not self._playing:
            return []
        current = self._playing[0]
        if now is not None and current.started_sent:
            heard_ms = round(max(0.0, now - current.start) * 1000)
            known = self._assistant_audio_ms.get(current.item_id)
            if known is not None:
                self._assistant_audio_ms[current.item_id] = min(known, heard_ms)
        self._playing.clear()
        return [self._ev("output_audio_buffer.cleared", response_id=current.response_id)]
