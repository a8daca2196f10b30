"""Token usage and response latency of one conversation, sans-IO (``statistics()`` reports them).

``UsageMeter`` adds up the ``usage`` of every ``response.done``, and apart from it the usage of
every finished input transcription (token- or duration-billed). ``LatencyMeter`` measures, per
response, the time from the end of the user's turn to the model's first output. Both are fed
by the state machine; the clock is injected (seconds, monotonic), so tests drive it.

Definitions (the public figures, ``UsageTotals`` / ``ResponseLatency``):

- *input tokens* are everything the model read for its responses (the server counts the whole
  context again for every response); ``input_text/audio/image_tokens`` split them by
  modality. ``cached_input_tokens`` is the part of ``input_tokens`` served from the prompt
  cache: a **subset**, never added to the input total.
- *output tokens* are what the model wrote, split into ``output_text_tokens`` and
  ``output_audio_tokens``.
- a user turn *ends* when the server reports the end of the user's speech
  (``input_audio_buffer.speech_stopped``), when the host calls ``commit_audio()``, or when the
  host sends text with ``send_text(respond=True)``. A later turn end before any output restarts
  the clock (the latest end counts).
- ``transcript_s`` is from that end to the first ``OutputTranscriptDelta`` that followed it,
  ``audio_s`` to the first model ``AudioOut``; either is ``None`` when the response had no such
  output. Times are taken when the engine's reader processes the event (after the network,
  before the host queue), so they include the server and the network, not the host.
- a measurement is recorded when the first response with output after the turn end finishes
  (``response.done``); a response with no output (only tool calls) leaves it open, so the
  time the host spends in a tool counts, as the user experiences it.
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import Any, Final, final

import attrs

from duplex.protocol import Usage

__all__ = ["LatencyMeter", "LatencySummary", "ResponseLatency", "UsageMeter", "UsageTotals"]

#: latencies kept for the percentiles: the last this many responses (bounded memory)
LATENCY_WINDOW: Final = 1000


@final
@attrs.frozen(slots=True)
class UsageTotals:
    """Cumulative token usage of the conversation's responses (see the module docstring)."""

    responses: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    input_image_tokens: int = 0
    cached_input_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0
    #: Input transcription, billed apart from the responses: finished transcriptions, the
    #: tokens of token-billed models, the audio of duration-billed ones.
    transcriptions: int = 0
    transcription_input_tokens: int = 0
    transcription_output_tokens: int = 0
    transcription_audio_s: float = 0.0


@final
@attrs.frozen(slots=True)
class ResponseLatency:
    """One response's latency in seconds from the end of the user's turn."""

    transcript_s: float | None
    audio_s: float | None


@final
@attrs.frozen(slots=True)
class LatencySummary:
    """The latencies of the conversation's measured responses (last ``LATENCY_WINDOW``)."""

    responses: int = 0
    last: ResponseLatency | None = None
    transcript_p50_s: float | None = None
    audio_p50_s: float | None = None


def _int(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0


class UsageMeter:
    """Running totals of ``ResponseDone.usage`` and ``InputTranscriptDone`` usage."""

    __slots__ = ("_audio_s", "_totals")

    def __init__(self) -> None:
        self._totals: dict[str, int] = dict.fromkeys(attrs.fields_dict(UsageTotals), 0)
        del self._totals["transcription_audio_s"]
        self._audio_s = 0.0

    def add_transcription(self, usage: Usage | None, audio_seconds: float | None) -> None:
        t = self._totals
        t["transcriptions"] += 1
        if usage is not None:
            t["transcription_input_tokens"] += _int(usage.input_tokens)
            t["transcription_output_tokens"] += _int(usage.output_tokens)
        if audio_seconds is not None:
            self._audio_s += audio_seconds

    def add(self, usage: Usage | None) -> None:
        if usage is None:
            return
        t = self._totals
        t["responses"] += 1
        inp = _int(usage.input_tokens)
        out = _int(usage.output_tokens)
        t["input_tokens"] += inp
        t["output_tokens"] += out
        t["total_tokens"] += _int(usage.total_tokens) or inp + out
        details = usage.input_token_details or {}
        t["input_text_tokens"] += _int(details.get("text_tokens"))
        t["input_audio_tokens"] += _int(details.get("audio_tokens"))
        t["input_image_tokens"] += _int(details.get("image_tokens"))
        # Cached tokens are already inside input_tokens: counted on their own, never added.
        t["cached_input_tokens"] += _int(details.get("cached_tokens"))
        details = usage.output_token_details or {}
        t["output_text_tokens"] += _int(details.get("text_tokens"))
        t["output_audio_tokens"] += _int(details.get("audio_tokens"))

    def totals(self) -> UsageTotals:
        return UsageTotals(**self._totals, transcription_audio_s=self._audio_s)


class LatencyMeter:
    """Turn end → first transcript / first audio, per response (see the module docstring).

    ``wants_audio`` / ``wants_text`` are plain attributes the state machine reads on its hot
    paths: one attribute test per audio frame, no call unless a measurement is open."""

    __slots__ = ("_audio", "_start", "_text", "_transcript", "wants_audio", "wants_text")

    def __init__(self) -> None:
        self._start: float | None = None
        self._transcript: float | None = None
        self._audio: float | None = None
        self.wants_audio = False
        self.wants_text = False
        self._text: deque[ResponseLatency] = deque(maxlen=LATENCY_WINDOW)

    def turn_ended(self, now: float) -> None:
        self._start = now
        self._transcript = self._audio = None
        self.wants_audio = self.wants_text = True

    def first_text(self, now: float) -> None:
        if self._start is not None and self._transcript is None:
            self._transcript = now - self._start
        self.wants_text = False

    def first_audio(self, now: float) -> None:
        if self._start is not None and self._audio is None:
            self._audio = now - self._start
        self.wants_audio = False

    def response_finished(self) -> None:
        if self._start is None or (self._transcript is None and self._audio is None):
            return  # nothing measured yet (no turn end, or a response without output)
        self._text.append(ResponseLatency(self._transcript, self._audio))
        self._start = None
        self.wants_audio = self.wants_text = False

    def summary(self) -> LatencySummary:
        measured = self._text
        if not measured:
            return LatencySummary()
        transcripts = [m.transcript_s for m in measured if m.transcript_s is not None]
        audios = [m.audio_s for m in measured if m.audio_s is not None]
        return LatencySummary(
            responses=len(measured),
            last=measured[-1],
            transcript_p50_s=statistics.median(transcripts) if transcripts else None,
            audio_p50_s=statistics.median(audios) if audios else None,
        )
