"""Input audio: the buffer, server VAD turns, commits and their transcription, the idle timer.

``InputAudio`` is the layer of ``ScriptedModel`` (``_model``) between the client's audio and
the conversation. ``append_audio`` (WebSocket appends, G.711 already decoded, or decoded RTP)
fills the buffer and feeds the energy VAD, which ``_sync_vad`` sets from the session's
``turn_detection``. A speech start cancels the active response and clears WebRTC playout
(``interrupt_response``); a speech stop commits the turn and starts a response
(``create_response``); with turn detection off the client commits
(``input_audio_buffer.commit``). A commit adds a user audio item whose transcript the model
"hears", and sends its transcription when the session asks for one (held back by
``transcript_delay_ms``). With ``idle_timeout_ms`` a timer starts when a response has finished
(playing); when it fires the silence is committed and the model prompts the user
(``idle_prompt``).

Invariants:
- an append carries at most ``MAX_APPEND_BYTES``; a manual commit needs ``MIN_COMMIT_MS`` of
  buffered audio (``input_audio_buffer_commit_empty`` otherwise);
- the VAD's timeline advances with every append, VAD on or off, so ``audio_start_ms`` and
  ``audio_end_ms`` are absolute;
- v1 always takes turns itself (server VAD that creates responses and interrupts) and always
  transcribes;
- a commit empties the buffer and leaves the committed item in the unanswered input (the idle
  timer's silence excepted: the model answers it with its prompt).
"""

from __future__ import annotations

from typing import Any, Final

from duplex.protocol import ProtocolVersion, SessionMode

from ._audio import SAMPLE_RATE, EnergyVad, G711Decoder, g711_law
from ._items import ConversationItems
from ._response_builders import _Spec
from ._response_clock import Event

__all__ = ["MAX_APPEND_BYTES", "MIN_COMMIT_MS", "InputAudio"]

MIN_COMMIT_MS: Final = 100
MAX_APPEND_BYTES: Final = 15 * 1024 * 1024


class InputAudio(ConversationItems):
    """Input audio and turns; mixed into ``ScriptedModel``, which sets the state."""

    speech_transcript: str | None
    _buffer_bytes: int
    _turn_item_id: str | None
    _turn_start_ms: int
    _vad: EnergyVad
    _input_decoder: G711Decoder | None
    #: where the idle timer's silent span starts (the VAD's timeline, ms)
    _idle_since_ms: int

    def append_audio(self, pcm: bytes, now: float) -> list[Event]:
        """Input audio (WebSocket appends or decoded RTP): buffer it and run server VAD."""
        self._buffer_bytes += len(pcm)
        if not self._vad_enabled():
            # Without VAD the timeline still advances so a later VAD sees absolute times.
            self._vad.feed(pcm)
            self._vad.reset_turn()
            return []
        out: list[Event] = []
        for edge in self._vad.feed(pcm):
            if edge.kind == "start":
                out.extend(self._on_speech_started(edge.ms))
            else:
                out.extend(self._on_speech_stopped(edge.ms, now))
        return out

    def _too_large(self, size: int, eid: str | None) -> Event:
        return self.error(
            "string_above_max_length",
            f"Invalid 'audio': string too long. Expected at most {MAX_APPEND_BYTES} bytes of "
            f"audio, but got {size} instead.",
            param="audio",
            client_event_id=eid,
        )

    def _turn_detection(self) -> dict[str, Any] | None:
        audio = self.session.get("audio") or {}
        td = (audio.get("input") or {}).get("turn_detection")
        if self.version is ProtocolVersion.V1:
            # The quicksilver backend always takes turns itself (codex-realtime.md §4.4).
            return {"type": "server_vad", "create_response": True, "interrupt_response": True}
        return td if isinstance(td, dict) else None

    def _vad_enabled(self) -> bool:
        return self._turn_detection() is not None

    def _sync_vad(self) -> None:
        td = self._turn_detection() or {}
        threshold = td.get("threshold")
        scale = (threshold / 0.5) if isinstance(threshold, int | float) and threshold > 0 else 1.0
        self._vad.rms_threshold = self.config.vad_rms_threshold * scale
        self._vad.prefix_padding_ms = int(td.get("prefix_padding_ms") or 300)
        self._vad.silence_duration_ms = int(td.get("silence_duration_ms") or 200)
        audio = self.session.get("audio") or {}
        fmt = (audio.get("input") or {}).get("format") or {}
        law = g711_law(fmt.get("type")) if isinstance(fmt, dict) else None
        if law is None:
            self._input_decoder = None
        elif self._input_decoder is None or self._input_decoder.law != law:
            self._input_decoder = G711Decoder(law)

    def _transcription_enabled(self) -> bool:
        if self.mode is SessionMode.TRANSCRIPTION or self.version is ProtocolVersion.V1:
            return True
        audio = self.session.get("audio") or {}
        return (audio.get("input") or {}).get("transcription") is not None

    # ------------------------------------------------------------------ turns

    def _arm_idle(self, at: float) -> None:
        """The last response finished (playing) at ``at``: with server VAD's
        ``idle_timeout_ms`` the idle timer starts then (protocol §3.2)."""
        td = self._turn_detection() or {}
        ms = td.get("idle_timeout_ms")
        if td.get("type") != "server_vad" or not isinstance(ms, int) or ms <= 0:
            self._idle_deadline = None
            return
        self._idle_deadline = at + ms / 1000.0
        self._idle_since_ms = self._vad.total_ms

    def _on_idle(self, now: float) -> list[Event]:
        """``idle_timeout_ms`` passed without speech since the last response finished: the
        silent span is committed as a user audio item and the model prompts the user."""
        item_id = self.ids.item()
        end_ms = max(self._vad.total_ms, self._idle_since_ms)
        out = [
            self._ev(
                "input_audio_buffer.timeout_triggered",
                audio_start_ms=self._idle_since_ms,
                audio_end_ms=end_ms,
                item_id=item_id,
            )
        ]
        self._vad.reset_turn()
        self._turn_item_id = None
        out.extend(
            self._commit(item_id, (end_ms - self._idle_since_ms) / 1000.0, now, transcript="")
        )
        self._unanswered.clear()
        if self.mode is SessionMode.CONVERSATIONAL and self._active is None:
            out.extend(
                self._message_response(self.config.idle_prompt, self._modality(None), now, _Spec())
            )
        return out

    def _on_speech_started(self, audio_start_ms: int) -> list[Event]:
        out: list[Event] = []
        self._idle_deadline = None
        self._turn_item_id = self.ids.item()
        self._turn_start_ms = audio_start_ms
        out.append(
            self._ev(
                "input_audio_buffer.speech_started",
                audio_start_ms=audio_start_ms,
                item_id=self._turn_item_id,
            )
        )
        td = self._turn_detection() or {}
        if td.get("interrupt_response", True):
            if self._active is not None:
                out.extend(self._cancel_active("turn_detected"))
            # Audio of a finished response may still be playing on the WebRTC track.
            out.extend(self._clear_playout(None))
        return out

    def _on_speech_stopped(self, audio_end_ms: int, now: float) -> list[Event]:
        item_id = self._turn_item_id or self.ids.item()
        self._turn_item_id = None
        out = [
            self._ev(
                "input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id
            )
        ]
        duration_s = max(0, audio_end_ms - self._turn_start_ms) / 1000.0
        out.extend(self._commit(item_id, duration_s, now))
        td = self._turn_detection() or {}
        if (
            self.mode is SessionMode.CONVERSATIONAL
            and td.get("create_response", True)
            and self._active is None
        ):
            out.extend(self._start_response(None, now))
        return out

    def _on_commit(self, now: float, eid: str | None) -> list[Event]:
        buffered_ms = self._buffer_bytes * 1000.0 / (2 * SAMPLE_RATE)
        if buffered_ms < MIN_COMMIT_MS:
            return [
                self.error(
                    "input_audio_buffer_commit_empty",
                    "Error committing input audio buffer: buffer too small. Expected at least "
                    f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_ms:.2f}ms of "
                    "audio.",
                    client_event_id=eid,
                )
            ]
        item_id = self._turn_item_id or self.ids.item()
        self._turn_item_id = None
        self._vad.reset_turn()
        return self._commit(item_id, buffered_ms / 1000.0, now)

    def _commit(
        self, item_id: str, duration_s: float, now: float, *, transcript: str | None = None
    ) -> list[Event]:
        self._buffer_bytes = 0
        previous = self._order[-1] if self._order else None
        if transcript is None:
            transcript = self.speech_transcript or f"[speech {duration_s:.2f}s]"
        item: Event = {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        out = [
            self._ev("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id),
            *self._add_item(item, previous),
        ]
        if self._transcription_enabled():
            delta_type = (
                "conversation.input_transcript.delta"
                if self.version is ProtocolVersion.V1
                else "conversation.item.input_audio_transcription.delta"
            )
            transcription = [
                self._ev(delta_type, item_id=item_id, content_index=0, delta=transcript),
                self._ev(
                    "conversation.item.input_audio_transcription.completed",
                    item_id=item_id,
                    content_index=0,
                    transcript=transcript,
                    usage={"type": "duration", "seconds": round(duration_s, 3)},
                ),
            ]
            delay_ms = self.config.transcript_delay_ms
            if delay_ms > 0:
                self._late_transcripts.append((now + delay_ms / 1000.0, transcription))
            else:
                out.extend(transcription)
        # The model "hears" the transcript: it is what the reply and handoffs are based on.
        self.items[item_id]["content"][0]["transcript"] = transcript
        self._unanswered.append(self.items[item_id])
        return out
