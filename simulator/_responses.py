"""Response streaming for the scripted model: building and pacing one model response.

``ResponseStreams`` is the half of ``ScriptedModel`` that turns a decided reply (a message, a
v2 handoff function call, a v1 handoff request) into the exact GA / quicksilver event sequence
of openai-realtime-protocol.md §3.4, queues streamed parts (transcript deltas, audio chunks)
with due times, and cancels a response mid-stream. ``ScriptedModel`` (``_model``) owns the
state these methods share and decides *what* to answer; this module decides *how it sounds
on the wire*.

Invariants:
- a response's steps are due in non-decreasing time order, ``response.done`` last (then only
  ``rate_limits.updated`` / ``output_audio_buffer.stopped``);
- audio is streamed in ``audio_chunk_ms`` chunks of whole samples in the session's output
  format (PCM16 24 kHz, or G.711 8 kHz on a v2 WebSocket session that declares
  ``audio/pcmu``/``audio/pcma``), faster than real time by ``audio_speedup`` (all at once
  when it is 0);
- when the last step is polled the single-active-response slot is free.
"""

from __future__ import annotations

import copy
import json
from collections import deque
from typing import Any, Literal

import attrs

from duplex.protocol import ProtocolVersion, b64encode_pcm

from ._audio import G711_RATE, SAMPLE_RATE, G711Law, encode_g711, g711_law, synthesize
from ._config import IdGenerator, SimulatorConfig
from ._session_shape import item_text, usage_for

__all__ = ["Event", "ResponseStreams"]

Event = dict[str, Any]


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
    #: bytes per second of this response's audio (PCM16 24 kHz, or G.711 8 kHz)
    bytes_per_s: int = 2 * SAMPLE_RATE
    transcript_sent: str = ""
    usage: Event = attrs.field(factory=dict)


class ResponseStreams:
    """Response building and pacing; mixed into ``ScriptedModel``, which sets the state."""

    version: ProtocolVersion
    config: SimulatorConfig
    ids: IdGenerator
    webrtc: bool
    conversation_id: str
    session: dict[str, Any]
    items: dict[str, Event]
    _order: list[str]
    _active: _Response | None
    _assistant_audio_ms: dict[str, int]
    _audio_emitted: bool
    _audio_out: list[bytes]
    _handoffs: dict[str, Event]
    _unanswered: list[Event]

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
                    response.audio_bytes_sent * 1000 // response.bytes_per_s
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

    def _voice(self) -> str | None:
        output = (self.session.get("audio") or {}).get("output") or {}
        voice = output.get("voice")
        return voice if isinstance(voice, str) else None

    def _output_format(self) -> Event:
        """The declared output format (GA), as the response object echoes it."""
        output = (self.session.get("audio") or {}).get("output") or {}
        fmt = output.get("format")
        return copy.deepcopy(fmt) if isinstance(fmt, dict) else {"type": "audio/pcm", "rate": 24000}

    def _output_law(self) -> G711Law | None:
        """G.711 law of the model's audio deltas (WebSocket v2 only: WebRTC audio is Opus)."""
        if self.version is not ProtocolVersion.V2 or self.webrtc:
            return None
        return g711_law(self._output_format().get("type"))

    def _modality(self, overrides: dict[str, Any] | None) -> str:
        if self.version is ProtocolVersion.V1:
            return "audio"
        mods = (overrides or {}).get("output_modalities") or self.session.get("output_modalities")
        return "text" if mods == ["text"] else "audio"

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
        if self.webrtc and reason == "turn_detected" and response.modality == "audio":
            # Over WebRTC the server cuts its own playback on barge-in (protocol §3.4).
            self._audio_out.clear()
            out.append(self._ev("output_audio_buffer.cleared", response_id=response.id))
        return out

    def _reply_for(self, pending: list[Event]) -> tuple[Literal["say", "handoff", "silent"], str]:
        """What to do about the unanswered input: speak a text, hand off a prompt, or call
        the silence tool."""
        for item in reversed(pending):
            if item.get("type") == "function_call_output":
                return "say", str(item.get("output") or "")
            text = item_text(item)
            if text is not None:
                lowered = text.lower()
                if self.config.silence_phrase and self.config.silence_phrase.lower() in lowered:
                    return "silent", text
                if self.config.trigger_phrase.lower() in lowered:
                    return "handoff", text
                return "say", f"{self.config.reply_prefix}{text}."
        return "say", "I am listening."

    def _tool_names(self) -> list[str]:
        tools = self.session.get("tools") or []
        return [
            str(t.get("name")) for t in tools if isinstance(t, dict) and t.get("type") == "function"
        ]

    def _handoff_tool(self) -> str | None:
        """The session's handoff tool: ``handoff_tool_name`` if declared, else any function
        tool with a ``prompt`` parameter (codex's later ``background_agent``), else none."""
        if self.config.handoff_tool_name in self._tool_names():
            return self.config.handoff_tool_name
        for tool in self.session.get("tools") or []:
            params = tool.get("parameters") if isinstance(tool, dict) else None
            props = params.get("properties") if isinstance(params, dict) else None
            if isinstance(props, dict) and "prompt" in props:
                return str(tool.get("name"))
        return None

    def _start_response(self, overrides: dict[str, Any] | None, now: float) -> list[Event]:
        pending, self._unanswered = self._unanswered, []
        kind, text = self._reply_for(pending)
        if kind == "silent" and self.version is ProtocolVersion.V2:
            tool = self.config.silence_tool_name
            if tool in self._tool_names():
                return self._function_call(tool, "{}", now)
        if kind == "handoff":
            if self.version is ProtocolVersion.V1:
                return self._v1_handoff(text, now)
            handoff_tool = self._handoff_tool()
            if handoff_tool is not None:
                return self._function_call(handoff_tool, _json_dumps({"prompt": text}), now)
        if kind != "say":
            text = f"{self.config.reply_prefix}{text}."
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
                    "format": self._output_format(),
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
        law = self._output_law()
        if law is not None:
            # G.711 out: 8 kHz, one byte a sample; the deltas carry it as is.
            r.bytes_per_s = G711_RATE
        wire = encode_g711(pcm, law) if law is not None else pcm
        chunk = r.bytes_per_s * self.config.audio_chunk_ms // 1000
        chunks = [wire[i : i + chunk] for i in range(0, len(wire), chunk)] or [b""]
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

    def _function_call(self, tool: str, args: str, now: float) -> list[Event]:
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
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
