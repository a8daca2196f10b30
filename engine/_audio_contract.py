"""``TrackAudio``: the WebRTC media track turned into the host's audio contract (SPEC §3.4).

Over WebSocket every model audio chunk is an event that names its item and response, and the
server's ``response.output_audio.done`` / ``response.done`` follow the last chunk. Over WebRTC
the audio is a media track that never stops (the transport delivers 20 ms frames for the
whole call: digital silence between replies, streamed by the server or filled in for its
DTX pauses), carries no ids, and plays in real time — so the response's
events arrive long before its audio. This class, owned by ``ConversationState`` on an
audio-native transport, makes the track look like the WebSocket stream:

- ``AudioOut`` only for model audio of an item, tagged with its item and response id; nothing
  while the model is silent.
- ``OutputAudioDone(item_id, response_id)`` after the item's last ``AudioOut``.
- ``ResponseDone`` of a response with audio is held back until its audio is out.

How item boundaries are found on the track (three signals, each covering the others' gaps):

1. **Which response is on the track**: ``output_audio_buffer.started(response_id)`` (the
   server began playing it) and ``output_audio_buffer.stopped`` (it has been played out) /
   ``.cleared`` (barge-in or ``output_audio_buffer.clear`` dropped the rest). The response's
   audio item ids come from the event channel: the assistant item added while the response is
   active, transcript deltas, ``content_part.added`` and the server's own
   ``response.output_audio.done`` (which over WebRTC only says "generation finished", so it is
   swallowed here and rebuilt at the end of playout).
2. **Where its sound starts and ends: the track's energy.** Events travel on the data channel
   (or the sideband socket) while the audio goes through the jitter buffer and the Opus
   decoder, so ``started`` usually arrives a few frames *before* the first voiced frame and
   ``stopped`` a few frames before the last one. Frames are classed as voiced when a sample
   exceeds ``SILENCE_PEAK`` (≈ -54 dBFS): leading silence after ``started`` is dropped, quiet
   frames inside the reply are held and released when sound resumes (pauses are part of the
   reply), and after ``stopped`` a run of ``END_QUIET_FRAMES`` quiet frames ends the item (or
   ``DRAIN_FRAMES`` voiced frames, whichever comes first). A shorter pause after ``stopped``
   is still inside the reply: the track lags the events by the jitter buffer, more under load,
   and ending at the first quiet frame cut the reply's last words at a pause between them.
   So trailing and idle silence never reaches the host.
   **The next reply while one drains.** When the host asks for another reply while one
   plays (a second text, a tool answer), the server queues it behind the first and sends
   ``stopped(A)`` and ``started(B)`` together — ahead of the track, whose last frames of A
   are still in the jitter buffer. B's ``started`` is remembered and applied when A ends (a
   third ``started`` meanwhile ends the waiting one unheard; ``cleared``/``stopped`` of the
   waiting one end it). A then ends by the rules above or, since B may follow with only a
   short gap, at its first quiet frame once the measured lead has passed: the frames from a
   reply's ``started`` to its first voiced frame (when nothing played before it) measure how
   far the events lead the track, so A still owns that many frames after its ``stopped``;
   without any quiet frame it hands over ``SUCCESSOR_SLACK_FRAMES`` later. So B's audio is
   never A's tail, and A loses no frame to B unless the lag grew by more than that slack
   between A's start and end.
3. **Fallbacks, all bounded by the track's own clock** (20 ms frames; the transport's
   liveness watch ends a call whose track stops): a voiced frame while nothing is playing
   starts the oldest response known to have audio (a server that sends no buffer events);
   a response whose ``response.done`` arrived ends after ``IMPLICIT_END_FRAMES`` quiet frames
   without ``stopped`` (also when none of its audio ever sounded); the transport's end
   releases everything held (``flush``).

Invariants:
- Every ``AudioOut`` produced here has an ``item_id`` and a ``response_id``.
- For each response: its ``AudioOut``s, then one ``OutputAudioDone`` per audio item, then its
  ``ResponseDone`` — each exactly once. Other events (rate limits, the next turn's input
  events, the next response's ``ResponseCreated`` and transcript) may overtake a held
  ``ResponseDone``; nothing else is reordered. So where a WebSocket gives ``ResponseDone(A)``
  before ``ResponseCreated(B)``, a WebRTC host may see B's first events while A's audio
  still plays: the events lead the track. (Holding B's events behind A's end was tried and
  withdrawn: out-of-band responses then waited for the spoken reply's playout, and every
  way an end can be lost — a double end, a fatal error, a rotation — stranded them.)
- Nothing waits forever: every hold ends on the track's own clock (``END_QUIET_FRAMES``,
  ``DRAIN_FRAMES``, ``SUCCESSOR_SLACK_FRAMES``, ``IMPLICIT_END_FRAMES``) or at the
  transport's end (``flush``).
- Memory is bounded: held quiet frames by ``MAX_HELD_QUIET``, remembered responses by
  ``REMEMBERED``.
"""

from __future__ import annotations

import sys
from array import array
from collections import deque
from typing import Any, Final

from duplex.protocol import (
    AudioFrame,
    AudioOut,
    ContentPartAdded,
    ConversationItemAdded,
    OutputAudioBufferCleared,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    OutputAudioDone,
    OutputTranscriptDelta,
    ResponseCancelled,
    ResponseCreated,
    ResponseDone,
)

__all__ = [
    "DRAIN_FRAMES",
    "END_QUIET_FRAMES",
    "IMPLICIT_END_FRAMES",
    "SILENCE_PEAK",
    "SUCCESSOR_SLACK_FRAMES",
    "AudioEnds",
    "TrackAudio",
    "is_voiced",
]

#: A frame whose every sample is within ±SILENCE_PEAK is quiet (≈ -54 dBFS: Opus-coded digital
#: silence decodes to a few LSBs of noise at most; speech peaks are thousands).
SILENCE_PEAK: Final = 64
#: After ``stopped``, the item ends after this many voiced frames at the most (the jitter
#: buffer's depth on loopback is 1–3 frames; 25 frames = 500 ms covers a real network)...
DRAIN_FRAMES: Final = 25
#: ...or at this many quiet frames in a row: longer than the pauses between words (the
#: simulator's speech has pauses of up to 5 frames), so the reply's end is its last voiced
#: frame; ``ResponseDone`` therefore comes up to 160 ms after the last audio.
END_QUIET_FRAMES: Final = 8
#: A response whose ``response.done`` arrived ends after this many quiet frames even when no
#: ``stopped`` comes (1 s of track time).
IMPLICIT_END_FRAMES: Final = 50
#: Quiet frames held inside a reply before they are released anyway (bounded memory; a
#: pause this long inside one reply is rare and is then delivered as it is).
MAX_HELD_QUIET: Final = 50
#: How many finished responses are remembered (late ``stopped``/``done`` for them pass).
REMEMBERED: Final = 64
#: When the next response's ``started`` came while one drains, the draining one hands over
#: at its first quiet frame after its measured lead (below), and at the latest this many
#: frames after it (80 ms): the next reply may follow on the track with no gap at all.
SUCCESSOR_SLACK_FRAMES: Final = 4

_BIG_ENDIAN: Final = sys.byteorder == "big"


def is_voiced(pcm: bytes, peak: int = SILENCE_PEAK) -> bool:
    """True when a PCM16-LE sample of ``pcm`` exceeds ``±peak``."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if not samples:
        return False
    if _BIG_ENDIAN:
        samples.byteswap()
    return max(samples) > peak or min(samples) < -peak


class _Playing:
    __slots__ = (
        "direct",
        "drained",
        "draining",
        "lead",
        "quiet",
        "quiet_run",
        "response_id",
        "since_stop",
        "voiced",
    )

    def __init__(self, response_id: str, *, direct: bool) -> None:
        self.response_id = response_id
        self.voiced = False  # a voiced frame of this response reached the host
        self.draining = False  # ``stopped`` (or the next response's ``started``) arrived
        self.drained = 0  # voiced frames seen since ``stopped``
        self.since_stop = 0  # frames seen since ``stopped``
        self.quiet: list[AudioFrame] = []  # quiet frames held inside the reply
        self.quiet_run = 0  # consecutive quiet frames
        # Its ``started`` arrived while nothing played: the frames from it to the first
        # voiced one measure how far the events lead the track.
        self.direct = direct
        self.lead = 0  # frames seen since its ``started``, until the first voiced one


class TrackAudio:
    """Sans-IO: events and track frames in; tagged ``AudioOut`` and the end events out.

    ``observe(event)`` sees every event-channel event first and returns False when the event
    must not be forwarded by the caller (``response.output_audio.done``: rebuilt here);
    ``hold(event)`` is asked before a ``ResponseDone``/``ResponseCancelled`` is forwarded;
    ``frame(frame)`` takes one track frame. Whatever became ready (``AudioOut``s, then
    ``OutputAudioDone``/``ResponseDone``) is collected with ``take()``.
    """

    def __init__(self) -> None:
        self._active: str | None = None  # the default-conversation response being generated
        self._items: dict[str, list[str]] = {}  # response → its audio items, in order
        self._with_audio: deque[str] = deque()  # responses with audio not yet played out
        self._held: dict[str, Any] = {}  # response → its held ResponseDone/Cancelled
        self._done: dict[str, bool] = {}  # response → its response.done arrived
        self._finished: deque[str] = deque(maxlen=REMEMBERED)
        self._playing: _Playing | None = None
        # The response whose ``started`` came while the playing one still drains: it starts
        # when that one ends (its own frames are still in the jitter buffer).
        self._next: str | None = None
        self._lead = 0  # last measured lead of the events over the track, in frames
        self._idle_quiet = 0  # quiet frames while nothing plays and an end is held
        self._ready: list[Any] = []
        self.idle_frames_dropped = 0  # voiced frames with no response to belong to

    # ---- event channel ----------------------------------------------------------------

    def observe(self, event: Any) -> bool:
        kind = type(event)
        if kind is ResponseCreated:
            self._active = event.response_id
        elif kind is ConversationItemAdded:
            item = event.item
            if item.role == "assistant" and item.id is not None and self._active is not None:
                self._item(self._active, item.id)
        elif kind is OutputTranscriptDelta or kind is ContentPartAdded:
            if event.item_id is not None and event.response_id is not None:
                self._item(event.response_id, event.item_id)
        elif kind is OutputAudioDone:
            if event.item_id is not None and event.response_id is not None:
                self._item(event.response_id, event.item_id)
                self._has_audio(event.response_id)
            return False  # generation finished; the playout's end is announced instead
        elif kind is OutputAudioBufferStarted:
            self._start(event.response_id, event=True)
        elif kind is OutputAudioBufferStopped:
            playing = self._playing
            if playing is not None and playing.response_id == event.response_id:
                playing.draining = True
                if not playing.voiced or playing.quiet_run >= END_QUIET_FRAMES:
                    # Nothing audible arrived, or the sound is already over: nothing to wait for.
                    playing.quiet.clear()
                    self._finish_playing()
            else:
                self._finish(event.response_id)
        elif kind is OutputAudioBufferCleared:
            playing = self._playing
            if playing is not None and playing.response_id == event.response_id:
                playing.quiet.clear()
                self._finish_playing()
            else:
                self._finish(event.response_id)
        return True

    def hold(self, event: ResponseDone | ResponseCancelled) -> bool:
        """True when ``event`` is held until its response's audio is out (then it comes
        from ``take()``); False: forward it now."""
        response_id = event.response_id
        if response_id is None:
            return False
        if response_id == self._active:
            self._active = None
        if response_id not in self._with_audio:
            return False
        self._held[response_id] = event
        self._done[response_id] = True
        return True

    # ---- the track --------------------------------------------------------------------

    def frame(self, frame: AudioFrame) -> None:
        voiced = is_voiced(frame.pcm)
        playing = self._playing
        if playing is not None and playing.draining:
            playing.since_stop += 1
            if self._next is not None and self._hands_over(playing, voiced=voiced):
                playing.quiet.clear()
                self._finish_playing()  # starts the next response
                playing = self._playing
        if playing is None:
            if not voiced:
                if self._held:
                    # A reply whose end is held but whose audio never sounded (lost, or
                    # all quiet): released after the same quiet bound, not at hang-up.
                    self._idle_quiet += 1
                    if self._idle_quiet >= IMPLICIT_END_FRAMES:
                        self._idle_quiet = 0
                        self._finish(next(iter(self._held)))
                return
            self._idle_quiet = 0
            if not self._with_audio:
                self.idle_frames_dropped += 1
                return
            # A server that sends no buffer events: the oldest response with audio starts.
            playing = self._start(self._with_audio[0], event=False)
            if playing is None:
                self.idle_frames_dropped += 1
                return
        if not playing.voiced:
            if not voiced:
                playing.lead += 1
            elif playing.direct:
                self._lead = min(playing.lead, DRAIN_FRAMES)
        if voiced:
            playing.quiet_run = 0
            if playing.quiet:
                for held in playing.quiet:
                    self._emit(playing, held)
                playing.quiet.clear()
            playing.voiced = True
            self._emit(playing, frame)
            if playing.draining:
                playing.drained += 1
                if playing.drained >= DRAIN_FRAMES:
                    self._finish_playing()
            return
        playing.quiet_run += 1
        if playing.draining and playing.quiet_run >= END_QUIET_FRAMES:
            playing.quiet.clear()
            self._finish_playing()
            return
        if self._done.get(playing.response_id) and playing.quiet_run >= IMPLICIT_END_FRAMES:
            playing.quiet.clear()
            self._finish_playing()
            return
        if playing.voiced:
            playing.quiet.append(frame)
            if len(playing.quiet) > MAX_HELD_QUIET:
                for held in playing.quiet:
                    self._emit(playing, held)
                playing.quiet.clear()

    def _hands_over(self, playing: _Playing, *, voiced: bool) -> bool:
        """The draining reply's frames are through and the waiting one's begin: the events
        lead the track by about ``_lead`` frames (measured at a start), so the draining reply
        still owns that many frames after its ``stopped``; after them its end is the first
        quiet frame (the gap between the two replies), or ``SUCCESSOR_SLACK_FRAMES`` later
        when the next reply follows without one."""
        if playing.since_stop > self._lead + SUCCESSOR_SLACK_FRAMES:
            return True
        return not voiced and playing.since_stop > self._lead

    def take(self) -> list[Any]:
        ready, self._ready = self._ready, []
        return ready

    @property
    def has_ready(self) -> bool:
        return bool(self._ready)

    def flush(self) -> None:
        """The transport ended: release everything held, in order."""
        self._next = None
        if self._playing is not None:
            self._playing.quiet.clear()
            self._finish_playing()
        for response_id in list(self._with_audio):
            self._finish(response_id)
        for event in self._held.values():
            self._ready.append(event)
        self._held.clear()

    @property
    def playing(self) -> tuple[str, str] | None:
        """(item, response) whose audio is on the track now, if known."""
        playing = self._playing
        if playing is None:
            return None
        items = self._items.get(playing.response_id)
        return (items[0], playing.response_id) if items else None

    @property
    def holding(self) -> bool:
        """A reply's end (``ResponseDone``/``ResponseCancelled``) waits for its audio."""
        return bool(self._held)

    @property
    def sounding(self) -> bool:
        """A reply may still be sounding: one is playing, the server has not said it stopped,
        and it is not in a quiet spell after its ``response.done``. What comes after either
        is the track's lag behind the events — as after ``response.done`` on a WebSocket, a
        barge-in then cuts only what the host has not heard (``AudioLedger``). A reply whose
        ``started`` came while the previous one drains is sounding."""
        if self._next is not None:
            return True
        playing = self._playing
        if playing is None or playing.draining:
            return False
        return not (self._done.get(playing.response_id) and playing.quiet_run > 0)

    # ---- internals --------------------------------------------------------------------

    def _item(self, response_id: str, item_id: str) -> None:
        items = self._items.setdefault(response_id, [])
        if item_id not in items:
            items.append(item_id)

    def _has_audio(self, response_id: str) -> None:
        if response_id in self._finished or response_id in self._with_audio:
            return
        if self._playing is not None and self._playing.response_id == response_id:
            return
        self._with_audio.append(response_id)

    def _start(self, response_id: str, *, event: bool) -> _Playing | None:
        """``response_id`` plays now (``event``: its ``started`` arrived)."""
        if response_id in self._finished:
            return None
        playing = self._playing
        if playing is not None:
            if playing.response_id == response_id or self._next == response_id:
                return playing if playing.response_id == response_id else None
            if event and playing.voiced:
                # The server moved on, but the track lags: the playing reply's last frames
                # are still to come. The new one starts when they are through (``frame``).
                playing.draining = True
                if self._next is not None:
                    self._finish(self._next)  # a third start: the one between never sounded
                self._next = response_id
                self._has_audio(response_id)
                return None
            playing.quiet.clear()
            self._finish_playing()
        self._has_audio(response_id)
        if event:
            # Fully generated responses queued before this one that never played: the
            # server's buffer has moved past them (their held ends must not block this one).
            for older in list(self._with_audio):
                if older == response_id:
                    break
                if self._done.get(older):
                    self._finish(older)
        self._playing = _Playing(response_id, direct=event)
        return self._playing

    def _emit(self, playing: _Playing, frame: AudioFrame) -> None:
        items = self._items.get(playing.response_id)
        if not items:
            self.idle_frames_dropped += 1  # no item known to tag it with (never seen so far)
            return
        self._ready.append(AudioOut(frame, items[0], playing.response_id))

    def _finish_playing(self) -> None:
        playing = self._playing
        if playing is None:
            return
        self._playing = None
        self._finish(playing.response_id)
        waiting, self._next = self._next, None
        if waiting is not None:
            self._start(waiting, event=False)

    def _finish(self, response_id: str) -> None:
        """``response_id``'s audio is out: its OutputAudioDone(s), then its held done."""
        if response_id in self._finished:
            return
        if response_id == self._next:
            self._next = None
        if self._playing is not None and self._playing.response_id == response_id:
            self._playing = None
        was_audio = response_id in self._with_audio
        if was_audio:
            self._with_audio.remove(response_id)
        self._finished.append(response_id)
        items = self._items.pop(response_id, [])
        if was_audio:
            for item_id in items:
                self._ready.append(OutputAudioDone(item_id, response_id))
        held = self._held.pop(response_id, None)
        self._done.pop(response_id, None)
        if held is not None:
            self._ready.append(held)


class AudioEnds:
    """Event-channel audio (WebSocket): every item that had ``AudioOut`` gets one
    ``OutputAudioDone`` before its response's ``ResponseDone``. The GA server sends
    ``response.output_audio.done`` itself; a dialect or server that does not (v1) gets one
    built here, so the host's contract is the same on every transport and dialect."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[str, str | None] = {}  # item with audio and no end yet → response

    def audio(self, item_id: str, response_id: str | None) -> None:
        if item_id not in self._open:
            self._open[item_id] = response_id

    def done(self, item_id: str | None) -> None:
        if item_id is not None:
            self._open.pop(item_id, None)

    def finish(self, response_id: str | None) -> list[OutputAudioDone]:
        """The ends still owed before ``response_id``'s ``ResponseDone``."""
        if not self._open:
            return []
        owed = [i for i, r in self._open.items() if r == response_id or r is None]
        for item_id in owed:
            del self._open[item_id]
        return [OutputAudioDone(item_id, response_id) for item_id in owed]
