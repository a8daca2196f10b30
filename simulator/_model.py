"""The scripted model: a sans-IO state machine for one realtime session.

``ScriptedModel`` receives parsed client events (``protocol`` client-event classes plus the raw
decoded dict, which carries explicit ``null``s the typed value cannot) and decoded input audio,
each with a ``now`` in seconds, and returns the server events to send as wire dicts (GA shape on
v2, the quicksilver shape of SPEC §2 on v1). Streaming is pulled: a response is a timed queue;
``poll(now)`` returns what is due and ``next_deadline()`` says when to call it again. Model audio
for WebRTC (where it travels on the media track, not in events) is collected by
``take_audio()``.

Behaviour (the simulator contract, SPEC §5):
- user text, committed speech or a handoff/tool output produces one response whose text is a
  pure function of the input (``"You said: <text>."``); a trigger phrase produces a handoff;
- strictness (openai-realtime-protocol.md §7/§8.3): one active response, commit ≥ 100 ms,
  truncate bounds, voice immutable after audio, model immutable, GA ``unknown_parameter``,
  ``response_cancel_not_active``.

Invariants:
- no I/O and no clock: identical inputs and ``now`` values give identical outputs, ids included;
- every response ends with ``response.done`` (completed or cancelled), after which the
  single-active-response slot is free;
- every dict returned carries ``type`` and a fresh ``event_id``.
"""

from __future__ import annotations

import copy
from collections import deque
from typing import Any, Final, Literal

import attrs

from protocol._audio import b64encode_pcm
from protocol._client_events import (
    ClientEvent,
    ConversationItemCreate,
    ConversationItemDelete,
    ConversationItemRetrieve,
    ConversationItemTruncate,
    HandoffAppend,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCommit,
    OutputAudioBufferClear,
    ResponseCancel,
    ResponseCreate,
    SessionCreate,
    SessionUpdate,
)
from protocol._enums import VOICES, ProtocolVersion, SessionMode

from ._audio import SAMPLE_RATE, EnergyVad, synthesize
from ._config import IdGenerator, SimulatorConfig
from ._session_shape import (
    GA_RESPONSE_KEYS,
    config_patch,
    deep_merge,
    initial_session,
    item_text,
    usage_for,
)

__all__ = ["MIN_COMMIT_MS", "ScriptedModel"]

Event = dict[str, Any]

MIN_COMMIT_MS: Final = 100
MAX_APPEND_BYTES: Final = 15 * 1024 * 1024
_FINAL_PREFIX: Final = '"Agent Final Message":\n\n'
_READ_ONLY_SESSION_KEYS: Final = frozenset({"id", "object", "expires_at"})


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
    kind: Literal["message", "function_call", "handoff"]
    modality: str
    item_id: str
    item: Event
    previous_item_id: str | None
    steps: deque[_Step] = attrs.field(factory=deque)
    audio_bytes_sent: int = 0
    transcript_sent: str = ""
    usage: Event = attrs.field(factory=dict)


class ScriptedModel:
    """One session's deterministic model. See the module docstring."""

    def __init__(
        self,
        *,
        version: ProtocolVersion,
        mode: SessionMode,
        config: SimulatorConfig,
        ids: IdGenerator,
        model: str | None = None,
        webrtc: bool = False,
    ) -> None:
        self.version = version
        self.mode = mode
        self.config = config
        self.ids = ids
        self.webrtc = webrtc
        #: transcript of committed speech; ``None`` → ``"[speech 1.20s]"``
        self.speech_transcript = config.speech_transcript
        self.session_id = ids.session()
        self.conversation_id = ids.conversation()
        self.session = initial_session(
            version, mode, session_id=self.session_id, model=model or config.model
        )
        self.items: dict[str, Event] = {}
        self._order: list[str] = []
        self._unanswered: list[Event] = []
        self._assistant_audio_ms: dict[str, int] = {}
        self._handoffs: dict[str, Event] = {}
        self._active: _Response | None = None
        self._audio_out: list[bytes] = []
        self._audio_emitted = False
        self._buffer_bytes = 0
        self._turn_item_id: str | None = None
        self._turn_start_ms = 0
        self._vad = EnergyVad(rms_threshold=1.0, prefix_padding_ms=300, silence_duration_ms=200)
        self._sync_vad()

    # ------------------------------------------------------------------ public API

    @property
    def active_response_id(self) -> str | None:
        return None if self._active is None else self._active.id

    def session_created(self) -> list[Event]:
        """The ``session.created`` event (always a session's first event)."""
        return [self._ev("session.created", session=copy.deepcopy(self.session))]

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

    def receive(
        self, event: ClientEvent, now: float, raw: dict[str, Any] | None = None
    ) -> list[Event]:
        """Handle one parsed client event; ``raw`` is its decoded JSON object if available."""
        eid = getattr(event, "event_id", None)
        match event:
            case SessionCreate() | SessionUpdate():
                raw_session = raw.get("session") if raw is not None else None
                return self._on_session(event, raw_session, eid)
            case InputAudioBufferAppend(audio=pcm):
                if len(pcm) > MAX_APPEND_BYTES:
                    return [self._too_large(len(pcm), eid)]
                return self.append_audio(pcm, now)
            case InputAudioBufferCommit():
                return self._on_commit(now, eid)
            case InputAudioBufferClear():
                self._buffer_bytes = 0
                self._vad.reset_turn()
                self._turn_item_id = None
                return [self._ev("input_audio_buffer.cleared")]
            case ConversationItemCreate():
                raw_item = raw.get("item") if raw is not None else None
                return self._on_item_create(event, raw_item, now, eid)
            case ConversationItemTruncate():
                return self._on_truncate(event, eid)
            case ConversationItemDelete(item_id=item_id):
                if item_id not in self.items:
                    return [self._not_found(item_id, eid)]
                del self.items[item_id]
                self._order.remove(item_id)
                return [self._ev("conversation.item.deleted", item_id=item_id)]
            case ConversationItemRetrieve(item_id=item_id):
                if item_id not in self.items:
                    return [self._not_found(item_id, eid)]
                return [self._ev("conversation.item.retrieved", item=self.items[item_id])]
            case ResponseCreate(response=overrides):
                return self._on_response_create(overrides, now, eid)
            case ResponseCancel(response_id=rid):
                return self._on_cancel(rid, eid)
            case OutputAudioBufferClear():
                return self._on_output_clear(eid)
            case HandoffAppend():
                return self._on_handoff_append(event, now, eid)
        return [self.error("invalid_value", f"Unsupported event: {event.TYPE}", param="type")]

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

    def poll(self, now: float) -> list[Event]:
        """Events of the active response that are due at ``now``."""
        out: list[Event] = []
        while self._active is not None and self._active.steps and self._active.steps[0].due <= now:
            response = self._active
            step = response.steps.popleft()
            response.transcript_sent += step.transcript
            if step.pcm:
                response.audio_bytes_sent += len(step.pcm)
                self._assistant_audio_ms[response.item_id] = (
                    response.audio_bytes_sent * 1000 // (2 * SAMPLE_RATE)
                )
                self._audio_emitted = True
                if self.webrtc:
                    self._audio_out.append(step.pcm)
            if step.event:
                out.append(self._stamp(step.event))
            if not response.steps:
                self._active = None
        return out

    def next_deadline(self) -> float | None:
        """When ``poll`` next has something to return, or ``None``."""
        if self._active is None or not self._active.steps:
            return None
        return self._active.steps[0].due

    def take_audio(self) -> list[bytes]:
        """Model audio produced since the last call (WebRTC only; 24 kHz mono PCM16)."""
        out, self._audio_out = self._audio_out, []
        return out

    # ------------------------------------------------------------------ helpers

    def _ev(self, type_: str, **fields: Any) -> Event:
        return {"type": type_, "event_id": self.ids.event(), **fields}

    def _stamp(self, event: Event) -> Event:
        return {"type": event["type"], "event_id": self.ids.event(), **event}

    def _not_found(self, item_id: str, eid: str | None) -> Event:
        return self.error(
            "item_not_found",
            f"Item with item_id not found: {item_id}",
            param="item_id",
            client_event_id=eid,
        )

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

    def _transcription_enabled(self) -> bool:
        if self.mode is SessionMode.TRANSCRIPTION or self.version is ProtocolVersion.V1:
            return True
        audio = self.session.get("audio") or {}
        return (audio.get("input") or {}).get("transcription") is not None

    def _voice(self) -> str | None:
        output = (self.session.get("audio") or {}).get("output") or {}
        voice = output.get("voice")
        return voice if isinstance(voice, str) else None

    def _modality(self, overrides: dict[str, Any] | None) -> str:
        if self.version is ProtocolVersion.V1:
            return "audio"
        mods = (overrides or {}).get("output_modalities") or self.session.get("output_modalities")
        return "text" if mods == ["text"] else "audio"

    # ------------------------------------------------------------------ session

    def _on_session(
        self, event: SessionCreate | SessionUpdate, raw_session: Any, eid: str | None
    ) -> list[Event]:
        cfg = event.session
        # v1 (an internal backend dialect) ignores keys it does not know; GA rejects them.
        if cfg.unknown_fields and self.version is ProtocolVersion.V2:
            path = cfg.unknown_fields[0]
            param = path if path.startswith("session.") else f"session.{path}"
            return [
                self.error(
                    "unknown_parameter",
                    f"Unknown parameter: '{param}'.",
                    param=param,
                    client_event_id=eid,
                )
            ]
        expected = {
            (ProtocolVersion.V2, SessionMode.CONVERSATIONAL): "realtime",
            (ProtocolVersion.V2, SessionMode.TRANSCRIPTION): "transcription",
            (ProtocolVersion.V1, SessionMode.CONVERSATIONAL): "quicksilver",
            (ProtocolVersion.V1, SessionMode.TRANSCRIPTION): "transcription",
        }[(self.version, self.mode)]
        if cfg.type != expected:
            return [
                self.error(
                    "invalid_value",
                    f"Invalid value: '{cfg.type}'. This session only accepts "
                    f"session.type '{expected}'.",
                    param="session.type",
                    client_event_id=eid,
                )
            ]
        if cfg.model is not None and cfg.model != self.session.get("model", cfg.model):
            return [
                self.error(
                    "invalid_value",
                    "Cannot update a conversation's model.",
                    param="session.model",
                    client_event_id=eid,
                )
            ]
        voice = cfg.voice
        if voice is not None:
            if voice not in VOICES[self.version]:
                return [
                    self.error(
                        "invalid_value",
                        f"Invalid value: '{voice}'. Supported values are: "
                        + ", ".join(f"'{v}'" for v in VOICES[self.version])
                        + ".",
                        param="session.audio.output.voice",
                        client_event_id=eid,
                    )
                ]
            if self._audio_emitted and voice != self._voice():
                return [
                    self.error(
                        "cannot_update_voice",
                        "Cannot update a conversation's voice if assistant audio is present.",
                        param="session.audio.output.voice",
                        client_event_id=eid,
                    )
                ]
        mods = cfg.output_modalities
        if mods is not None and (len(mods) != 1 or mods[0] not in ("audio", "text")):
            return [
                self.error(
                    "invalid_value",
                    f"Invalid modalities: {list(mods)}. Supported combinations are: "
                    "['text'] and ['audio'].",
                    param="session.output_modalities",
                    client_event_id=eid,
                )
            ]
        patch = raw_session if isinstance(raw_session, dict) else config_patch(cfg)
        patch = {k: v for k, v in patch.items() if k not in _READ_ONLY_SESSION_KEYS}
        self.session = deep_merge(self.session, patch)
        self._sync_vad()
        out: list[Event] = []
        if isinstance(event, SessionCreate):
            out.extend(self.session_created())
        out.append(self._ev("session.updated", session=copy.deepcopy(self.session)))
        return out

    # ------------------------------------------------------------------ input audio

    def _on_speech_started(self, audio_start_ms: int) -> list[Event]:
        out: list[Event] = []
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
        if self._active is not None and td.get("interrupt_response", True):
            out.extend(self._cancel_active("turn_detected"))
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
        out.extend(self._commit(item_id, duration_s))
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
        return self._commit(item_id, buffered_ms / 1000.0)

    def _commit(self, item_id: str, duration_s: float) -> list[Event]:
        self._buffer_bytes = 0
        previous = self._order[-1] if self._order else None
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
            out.append(self._ev(delta_type, item_id=item_id, content_index=0, delta=transcript))
            out.append(
                self._ev(
                    "conversation.item.input_audio_transcription.completed",
                    item_id=item_id,
                    content_index=0,
                    transcript=transcript,
                    usage={"type": "duration", "seconds": round(duration_s, 3)},
                )
            )
        # The model "hears" the transcript: it is what the reply and handoffs are based on.
        self.items[item_id]["content"][0]["transcript"] = transcript
        self._unanswered.append(self.items[item_id])
        return out

    # ------------------------------------------------------------------ items

    def _add_item(self, item: Event, previous: str | None) -> list[Event]:
        item_id = str(item["id"])
        self.items[item_id] = item
        self._order.append(item_id)
        return [
            self._ev(
                "conversation.item.added", previous_item_id=previous, item=copy.deepcopy(item)
            ),
            self._ev("conversation.item.done", previous_item_id=previous, item=copy.deepcopy(item)),
        ]

    def _on_item_create(
        self, event: ConversationItemCreate, raw_item: Any, now: float, eid: str | None
    ) -> list[Event]:
        item = copy.deepcopy(raw_item) if isinstance(raw_item, dict) else _item_dict(event)
        prev = event.previous_item_id
        if prev is not None and prev != "root" and prev not in self.items:
            return [self._not_found(prev, eid)]
        if item.get("type") == "message" and item.get("role") == "assistant":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") in ("audio", "output_audio"):
                    return [
                        self.error(
                            "invalid_value",
                            "Assistant messages cannot contain audio content.",
                            param="item.content",
                            client_event_id=eid,
                        )
                    ]
        if item.get("type") == "function_call_output":
            call_id = item.get("call_id")
            if not any(
                i.get("type") == "function_call" and i.get("call_id") == call_id
                for i in self.items.values()
            ):
                return [
                    self.error(
                        "invalid_value",
                        f"No function call found with call_id '{call_id}'.",
                        param="item.call_id",
                        client_event_id=eid,
                    )
                ]
        item.setdefault("id", None)
        if not item["id"]:
            item["id"] = self.ids.item()
        item["status"] = "completed"
        if self.version is ProtocolVersion.V2:
            item["object"] = "realtime.item"
        previous = (
            None if prev == "root" else prev if prev else (self._order[-1] if self._order else None)
        )
        out = self._add_item(item, previous)
        if item.get("type") in ("message", "function_call_output") and item.get("role") != (
            "assistant"
        ):
            self._unanswered.append(item)
            if (
                self.version is ProtocolVersion.V1
                and self.config.v1_auto_response
                and self.mode is SessionMode.CONVERSATIONAL
                and item.get("role") == "user"
                and self._active is None
            ):
                out.extend(self._start_response(None, now))
        return out

    def _on_truncate(self, event: ConversationItemTruncate, eid: str | None) -> list[Event]:
        item = self.items.get(event.item_id)
        if item is None:
            return [self._not_found(event.item_id, eid)]
        if item.get("type") != "message" or item.get("role") != "assistant":
            return [
                self.error(
                    "invalid_value",
                    "Only assistant message items can be truncated.",
                    param="item_id",
                    client_event_id=eid,
                )
            ]
        if event.content_index != 0:
            return [
                self.error(
                    "invalid_value",
                    f"Invalid content_index: {event.content_index}.",
                    param="content_index",
                    client_event_id=eid,
                )
            ]
        audio_ms = self._assistant_audio_ms.get(event.item_id, 0)
        if event.audio_end_ms > audio_ms or event.audio_end_ms < 0:
            return [
                self.error(
                    "invalid_value",
                    f"Audio content of {audio_ms}ms is already shorter than "
                    f"{event.audio_end_ms}ms.",
                    param="audio_end_ms",
                    client_event_id=eid,
                )
            ]
        self._assistant_audio_ms[event.item_id] = event.audio_end_ms
        # The server forgets the transcript of what the user did not hear (§6).
        for part in item.get("content") or []:
            if isinstance(part, dict) and "transcript" in part:
                part["transcript"] = ""
        return [
            self._ev(
                "conversation.item.truncated",
                item_id=event.item_id,
                content_index=0,
                audio_end_ms=event.audio_end_ms,
            )
        ]

    # ------------------------------------------------------------------ responses

    def _on_response_create(
        self, overrides: dict[str, Any] | None, now: float, eid: str | None
    ) -> list[Event]:
        if self.version is ProtocolVersion.V2 and overrides:
            for key in overrides:
                if key not in GA_RESPONSE_KEYS:
                    return [
                        self.error(
                            "unknown_parameter",
                            f"Unknown parameter: 'response.{key}'.",
                            param=f"response.{key}",
                            client_event_id=eid,
                        )
                    ]
        if self.mode is SessionMode.TRANSCRIPTION:
            return [
                self.error(
                    "invalid_value",
                    "Transcription sessions cannot create responses.",
                    param="type",
                    client_event_id=eid,
                )
            ]
        if self._active is not None:
            return [
                self.error(
                    "conversation_already_has_active_response",
                    "Conversation already has an active response in progress: "
                    f"{self._active.id}. Wait until the response is finished before creating "
                    "a new one.",
                    client_event_id=eid,
                )
            ]
        return self._start_response(overrides, now)

    def _on_cancel(self, response_id: str | None, eid: str | None) -> list[Event]:
        if self._active is None or (response_id is not None and response_id != self._active.id):
            return [
                self.error(
                    "response_cancel_not_active",
                    "Cancellation failed: no active response found",
                    client_event_id=eid,
                )
            ]
        return self._cancel_active("client_cancelled")

    def _on_output_clear(self, eid: str | None) -> list[Event]:
        if not self.webrtc:
            return [
                self.error(
                    "invalid_value",
                    "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
                    param="type",
                    client_event_id=eid,
                )
            ]
        self._audio_out.clear()
        return [
            self._ev(
                "output_audio_buffer.cleared", response_id=self.active_response_id or "resp_none"
            )
        ]

    def _on_handoff_append(self, event: HandoffAppend, now: float, eid: str | None) -> list[Event]:
        if event.handoff_id not in self._handoffs:
            return [
                self.error(
                    "invalid_value",
                    f"Unknown handoff_id '{event.handoff_id}'.",
                    param="handoff_id",
                    client_event_id=eid,
                )
            ]
        text = event.output_text.removeprefix(_FINAL_PREFIX)
        self._unanswered.append({"type": "function_call_output", "output": text})
        if self._active is not None:
            return []  # spoken with the next response
        return self._start_response(None, now)

    def _cancel_active(self, reason: str) -> list[Event]:
        response = self._active
        if response is None:
            return []
        self._active = None
        response.steps.clear()
        text = response.transcript_sent
        out: list[Event] = []
        if response.kind == "message":
            content = self._content_part(response.modality, text)
            item = dict(response.item, status="incomplete", content=[content])
            out.extend(self._message_tail(response, text, item))
        else:
            item = dict(response.item, status="incomplete")
        self.items[response.item_id] = item
        out.append(self._response_done(response, "cancelled", item, reason=reason))
        return out

    def _reply_for(self, pending: list[Event]) -> tuple[str, str | None]:
        """(reply text, handoff prompt or None) for the unanswered input."""
        for item in reversed(pending):
            if item.get("type") == "function_call_output":
                return str(item.get("output") or ""), None
            text = item_text(item)
            if text is not None:
                if self.config.trigger_phrase.lower() in text.lower():
                    return "", text
                return f"{self.config.reply_prefix}{text}.", None
        return "I am listening.", None

    def _handoff_tool(self) -> str | None:
        tools = self.session.get("tools") or []
        names = [
            t.get("name") for t in tools if isinstance(t, dict) and t.get("type") == "function"
        ]
        if self.config.handoff_tool_name in names:
            return self.config.handoff_tool_name
        for tool in tools:
            props = ((tool.get("parameters") or {}).get("properties") or {}) if tool else {}
            if isinstance(props, dict) and "prompt" in props:
                return str(tool.get("name"))
        return None

    def _start_response(self, overrides: dict[str, Any] | None, now: float) -> list[Event]:
        pending, self._unanswered = self._unanswered, []
        text, handoff_prompt = self._reply_for(pending)
        if handoff_prompt is not None:
            if self.version is ProtocolVersion.V1:
                return self._v1_handoff(handoff_prompt, now)
            tool = self._handoff_tool()
            if tool is not None:
                return self._function_call(tool, handoff_prompt, now)
            text = f"{self.config.reply_prefix}{handoff_prompt}."
        return self._message_response(text, self._modality(overrides), now)

    def _response_obj(self, response_id: str, modality: str, status: str = "in_progress") -> Event:
        obj: Event = {
            "object": "realtime.response",
            "id": response_id,
            "status": status,
            "status_details": None,
            "output": [],
            "conversation_id": self.conversation_id,
            "usage": None,
            "metadata": None,
        }
        if self.version is ProtocolVersion.V2:
            obj["output_modalities"] = [modality]
            obj["max_output_tokens"] = "inf"
            obj["audio"] = {
                "output": {
                    "format": {"type": "audio/pcm", "rate": SAMPLE_RATE},
                    "voice": self._voice(),
                }
            }
        return obj

    def _content_part(self, modality: str, text: str) -> Event:
        if modality == "text":
            return {
                "type": "output_text" if self.version is ProtocolVersion.V2 else "text",
                "text": text,
            }
        return {
            "type": "output_audio" if self.version is ProtocolVersion.V2 else "audio",
            "transcript": text,
        }

    def _begin(
        self, kind: Literal["message", "function_call", "handoff"], modality: str, item: Event
    ) -> _Response:
        response_id = self.ids.response()
        previous = self._order[-1] if self._order else None
        response = _Response(
            id=response_id,
            kind=kind,
            modality=modality,
            item_id=str(item["id"]),
            item=item,
            previous_item_id=previous,
        )
        self.items[response.item_id] = item
        self._order.append(response.item_id)
        self._active = response
        return response

    def _message_response(self, text: str, modality: str, now: float) -> list[Event]:
        item: Event = {
            "id": self.ids.item(),
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        if self.version is ProtocolVersion.V2:
            item["object"] = "realtime.item"
        r = self._begin("message", modality, item)
        v2 = self.version is ProtocolVersion.V2
        loc = {"response_id": r.id, "item_id": r.item_id, "output_index": 0, "content_index": 0}
        out = [self._ev("response.created", response=self._response_obj(r.id, modality))]
        if v2:
            out.append(
                self._ev(
                    "response.output_item.added",
                    response_id=r.id,
                    output_index=0,
                    item=copy.deepcopy(item),
                )
            )
        out.append(
            self._ev(
                "conversation.item.added",
                previous_item_id=r.previous_item_id,
                item=copy.deepcopy(item),
            )
        )
        if v2:
            part = (
                {"type": "text", "text": ""}
                if modality == "text"
                else {"type": "audio", "transcript": ""}
            )
            out.append(self._ev("response.content_part.added", part=part, **loc))
            if self.webrtc and modality == "audio":
                out.append(self._ev("output_audio_buffer.started", response_id=r.id))
        words = [w + " " for w in text.split(" ")]
        words[-1] = words[-1][:-1]
        pcm = synthesize(text) if modality == "audio" else b""
        chunk = SAMPLE_RATE * 2 * self.config.audio_chunk_ms // 1000
        chunks = [pcm[i : i + chunk] for i in range(0, len(pcm), chunk)] or [b""]
        speed = self.config.audio_speedup
        step_s = (self.config.audio_chunk_ms / 1000.0 / speed) if speed > 0 else 0.0
        per_chunk: list[list[str]] = [[] for _ in chunks]
        for j, word in enumerate(words):
            per_chunk[j * len(chunks) // len(words)].append(word)
        for i, (audio, piece_words) in enumerate(zip(chunks, per_chunk, strict=True)):
            due = now + i * step_s
            piece = "".join(piece_words)
            if piece:
                if modality == "text":
                    delta_type = "response.output_text.delta" if v2 else "response.text.delta"
                elif v2:
                    delta_type = "response.output_audio_transcript.delta"
                else:
                    delta_type = "conversation.output_transcript.delta"
                r.steps.append(
                    _Step(due, {"type": delta_type, **loc, "delta": piece}, transcript=piece)
                )
            if audio:
                if self.webrtc:
                    r.steps.append(_Step(due, {}, pcm=audio))
                elif v2:
                    r.steps.append(
                        _Step(
                            due,
                            {
                                "type": "response.output_audio.delta",
                                **loc,
                                "delta": b64encode_pcm(audio),
                            },
                            pcm=audio,
                        )
                    )
                else:
                    r.steps.append(
                        _Step(
                            due,
                            {
                                "type": "conversation.output_audio.delta",
                                "delta": b64encode_pcm(audio),
                                "sample_rate": SAMPLE_RATE,
                                "channels": 1,
                                "samples_per_channel": len(audio) // 2,
                                "item_id": r.item_id,
                                "response_id": r.id,
                            },
                            pcm=audio,
                        )
                    )
        end = now + len(chunks) * step_s
        r.usage = usage_for(text, len(pcm))
        final_item = dict(item, status="completed", content=[self._content_part(modality, text)])
        for ev in self._message_tail(r, text, final_item, stamp=False):
            r.steps.append(_Step(end, ev))
        r.steps.append(_Step(end, self._response_done(r, "completed", final_item, stamp=False)))
        for ev in self._after_done(r, stamp=False):
            r.steps.append(_Step(end, ev))
        out.extend(self.poll(now))
        return out

    def _message_tail(
        self, r: _Response, text: str, item: Event, *, stamp: bool = True
    ) -> list[Event]:
        v2 = self.version is ProtocolVersion.V2
        loc = {"response_id": r.id, "item_id": r.item_id, "output_index": 0, "content_index": 0}
        evs: list[Event] = []
        if v2:
            if r.modality == "text":
                evs.append({"type": "response.output_text.done", **loc, "text": text})
            else:
                evs.append({"type": "response.output_audio.done", **loc})
                evs.append(
                    {"type": "response.output_audio_transcript.done", **loc, "transcript": text}
                )
            part = (
                {"type": "text", "text": text}
                if r.modality == "text"
                else {"type": "audio", "transcript": text}
            )
            evs.append({"type": "response.content_part.done", **loc, "part": part})
            evs.append(
                {
                    "type": "response.output_item.done",
                    "response_id": r.id,
                    "output_index": 0,
                    "item": copy.deepcopy(item),
                }
            )
        else:
            evs.append({"type": "response.output_audio_transcript.done", **loc, "transcript": text})
        evs.append(
            {
                "type": "conversation.item.done",
                "previous_item_id": r.previous_item_id,
                "item": copy.deepcopy(item),
            }
        )
        self.items[r.item_id] = item
        return [self._stamp(e) for e in evs] if stamp else evs

    def _response_done(
        self,
        r: _Response,
        status: str,
        item: Event,
        *,
        reason: str | None = None,
        stamp: bool = True,
    ) -> Event:
        obj = self._response_obj(r.id, r.modality, status)
        obj["output"] = [copy.deepcopy(item)]
        obj["usage"] = r.usage or usage_for("", 0)
        if reason is not None:
            obj["status_details"] = {"type": "cancelled", "reason": reason}
        ev: Event = {"type": "response.done", "response": obj}
        return self._stamp(ev) if stamp else ev

    def _after_done(self, r: _Response, *, stamp: bool = True) -> list[Event]:
        evs: list[Event] = []
        if self.webrtc and r.kind == "message" and r.modality == "audio":
            evs.append({"type": "output_audio_buffer.stopped", "response_id": r.id})
        if self.version is ProtocolVersion.V2:
            used = int(r.usage.get("total_tokens", 0)) if r.usage else 0
            evs.append(
                {
                    "type": "rate_limits.updated",
                    "rate_limits": [
                        {
                            "name": "requests",
                            "limit": 5000,
                            "remaining": 4999,
                            "reset_seconds": 0.012,
                        },
                        {
                            "name": "tokens",
                            "limit": 40000,
                            "remaining": 40000 - used,
                            "reset_seconds": 2.265,
                        },
                    ],
                }
            )
        return [self._stamp(e) for e in evs] if stamp else evs

    def _function_call(self, tool: str, prompt: str, now: float) -> list[Event]:
        call_id = self.ids.call()
        item: Event = {
            "id": self.ids.item(),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": tool,
            "call_id": call_id,
            "arguments": "",
        }
        r = self._begin("function_call", "audio", item)
        args = _json_dumps({"prompt": prompt})
        final = dict(item, status="completed", arguments=args)
        loc = {"response_id": r.id, "item_id": r.item_id, "output_index": 0, "call_id": call_id}
        r.usage = usage_for(args, 0)
        out = [
            self._ev("response.created", response=self._response_obj(r.id, "audio")),
            self._ev(
                "response.output_item.added",
                response_id=r.id,
                output_index=0,
                item=copy.deepcopy(item),
            ),
            self._ev(
                "conversation.item.added",
                previous_item_id=r.previous_item_id,
                item=copy.deepcopy(item),
            ),
            self._ev("response.function_call_arguments.delta", delta=args, **loc),
            self._ev("response.function_call_arguments.done", arguments=args, name=tool, **loc),
            self._ev(
                "response.output_item.done",
                response_id=r.id,
                output_index=0,
                item=copy.deepcopy(final),
            ),
            self._ev(
                "conversation.item.done",
                previous_item_id=r.previous_item_id,
                item=copy.deepcopy(final),
            ),
        ]
        self.items[r.item_id] = final
        out.append(self._response_done(r, "completed", final))
        out.extend(self._after_done(r))
        self._active = None
        return out

    def _v1_handoff(self, prompt: str, now: float) -> list[Event]:
        handoff_id = self.ids.handoff()
        item: Event = {"id": self.ids.item(), "type": "handoff", "status": "completed"}
        r = self._begin("handoff", "audio", item)
        self._handoffs[handoff_id] = item
        r.usage = usage_for(prompt, 0)
        out = [
            self._ev("response.created", response=self._response_obj(r.id, "audio")),
            self._ev(
                "conversation.handoff.requested",
                handoff_id=handoff_id,
                item_id=r.item_id,
                input_transcript=prompt,
            ),
        ]
        obj = self._response_obj(r.id, "audio", "completed")
        obj["usage"] = r.usage
        out.append(self._ev("response.done", response=obj))
        self._active = None
        return out


def _json_dumps(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _item_dict(event: ConversationItemCreate) -> Event:
    """A wire dict for a typed item (used when no raw JSON accompanies the event)."""
    return config_patch(event.item)
