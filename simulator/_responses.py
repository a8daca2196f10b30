"""Response streaming for the scripted model: building and pacing model responses.

``ResponseStreams`` is the half of ``ScriptedModel`` that turns a decided reply (a message,
v2 function calls — one or several in parallel —, a v1 handoff request) into the exact GA /
quicksilver event sequence of openai-realtime-protocol.md §3.4, queues streamed parts
(transcript deltas, audio chunks) with due times, tracks WebRTC playout
(``output_audio_buffer.started`` / ``.stopped``) and cancels a response mid-stream.
``ScriptedModel`` (``_model``) owns the state these methods share, ``_replies`` decides
*what* to answer (``Reply``), and this module decides *how it sounds on the wire*.

Invariants:
- a response's steps are due in non-decreasing time order, ``response.done`` last (then only
  ``rate_limits.updated``);
- at most one response writes to the default conversation (``_active``); out-of-band
  responses (``conversation: "none"``) run beside it in ``_oob``, carry
  ``conversation_id: null`` and their ``metadata``, and add nothing to the conversation;
- audio is streamed in ``audio_chunk_ms`` chunks of whole samples in the session's output
  format (PCM16 24 kHz, or G.711 8 kHz on a v2 WebSocket session that declares
  ``audio/pcmu``/``audio/pcma``), faster than real time by ``audio_speedup`` (all at once
  when it is 0);
- WebRTC playout is computed, not guessed from the response: the track plays pushed audio in
  real time, so a response's audio starts when its first chunk is pushed (or when the audio
  queued before it ends) and ``output_audio_buffer.stopped`` is due one track frame after its
  last sample — normally well after ``response.done``. A barge-in or
  ``output_audio_buffer.clear`` drops the playout and answers ``output_audio_buffer.cleared``
  instead;
- when a response's last step is polled its slot is free.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Sequence
from typing import Any, Final, Literal

import attrs

from duplex.protocol import ProtocolVersion, b64encode_pcm

from ._audio import FRAME_MS, G711_RATE, SAMPLE_RATE, G711Law, encode_g711, g711_law, synthesize
from ._config import IdGenerator, SimulatorConfig
from ._mcp import McpCall, approval_item, call_item, item_events, mcp_offers, spoken_results
from ._replies import (
    Reply,
    arguments_for,
    decide,
    forced_tool,
    handoff_tool,
    last_user_text,
    tool_names,
)
from ._session_shape import deep_merge, usage_for

__all__ = ["Event", "ResponseStreams"]

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
    _oob: list[_Response]
    _playing: deque[_Playout]
    _assistant_audio_ms: dict[str, int]
    _audio_emitted: bool
    _audio_out: list[bytes]
    _handoffs: dict[str, Event]
    _unanswered: list[Event]
    #: when ``input_audio_buffer.timeout_triggered`` fires (``idle_timeout_ms``), if armed
    _idle_deadline: float | None
    #: input transcription events held back (``SimulatorConfig.transcript_delay_ms``), in
    #: commit order, each with when it is due
    _late_transcripts: deque[tuple[float, list[Event]]]

    def _on_idle(self, now: float) -> list[Event]:
        """The idle timer fired (``ScriptedModel``)."""
        raise NotImplementedError

    def _arm_idle(self, at: float) -> None:
        """The last response finished (playing) at ``at`` (``ScriptedModel``)."""
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

    # ------------------------------------------------------------------ helpers

    def _ev(self, type_: str, **fields: Any) -> Event:
        return {"type": type_, "event_id": self.ids.event(), **fields}

    def _stamp(self, event: Event) -> Event:
        return {"type": event["type"], "event_id": self.ids.event(), **event}

    def _audio_output(self, r: _Response | None) -> Event:
        """``audio.output`` for a response: the session's, with the response's overrides."""
        output = (self.session.get("audio") or {}).get("output") or {}
        if r is not None and r.output:
            output = deep_merge(output, r.output)
        return output

    def _voice(self, r: _Response | None = None) -> str | None:
        voice = self._audio_output(r).get("voice")
        return voice if isinstance(voice, str) else None

    def _output_format(self, r: _Response | None = None) -> Event:
        """The declared output format (GA), as the response object echoes it."""
        fmt = self._audio_output(r).get("format")
        return copy.deepcopy(fmt) if isinstance(fmt, dict) else {"type": "audio/pcm", "rate": 24000}

    def _output_law(self, r: _Response | None = None) -> G711Law | None:
        """G.711 law of the model's audio deltas (WebSocket v2 only: WebRTC audio is Opus)."""
        if self.version is not ProtocolVersion.V2 or self.webrtc:
            return None
        return g711_law(self._output_format(r).get("type"))

    def _modality(self, overrides: dict[str, Any] | None) -> str:
        if self.version is ProtocolVersion.V1:
            return "audio"
        mods = (overrides or {}).get("output_modalities") or self.session.get("output_modalities")
        return "text" if mods == ["text"] else "audio"

    def _store(self, r: _Response, item: Event) -> None:
        """Record a response's item (only a default-conversation response writes it)."""
        if r.in_conversation:
            self.items[str(item["id"])] = item

    # ------------------------------------------------------------------ cancel / clear

    def _cancel_active(self, reason: str) -> list[Event]:
        if self._active is None:
            return []
        return self._cancel(self._active, reason)

    def _cancel(self, response: _Response, reason: str) -> list[Event]:
        self._finish(response)
        response.steps.clear()
        text = response.transcript_sent
        # Billed for what was produced before the cut, not for the whole planned reply.
        pcm_bytes = response.audio_bytes_sent * (2 * SAMPLE_RATE) // response.bytes_per_s
        response.usage = usage_for(text, pcm_bytes)
        out: list[Event] = []
        if response.kind == "message":
            content = self._content_part(response.modality, text)
            item = dict(response.item, status="incomplete", content=[content])
            out.extend(self._message_tail(response, text, item))
        else:
            item = dict(response.item, status="incomplete")
        self._store(response, item)
        out.append(self._response_done(response, "cancelled", item, reason=reason))
        playout = next((p for p in self._playing if p.response_id == response.id), None)
        if playout is not None:
            if reason == "turn_detected":
                # Over WebRTC the server cuts its own playback on barge-in (protocol §3.4).
                out.extend(self._clear_playout(None))
            else:
                # response.cancel stops generation; what was already pushed still plays out.
                pushed_s = response.audio_bytes_sent / response.bytes_per_s
                playout.end = min(playout.end, playout.start + pushed_s + _TRACK_FRAME_S)
                if not playout.started_sent and pushed_s == 0:
                    self._playing.remove(playout)
        return out

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

    def _start_response(
        self,
        overrides: dict[str, Any] | None,
        now: float,
        *,
        context: list[Event] | None = None,
        in_conversation: bool = True,
    ) -> list[Event]:
        """Answer the unanswered input (or ``context``, for a response with its own input)."""
        if context is None:
            pending, self._unanswered = self._unanswered, []
        else:
            pending = context
        metadata = (overrides or {}).get("metadata")
        audio = (overrides or {}).get("audio")
        output = audio.get("output") if isinstance(audio, dict) else None
        spec = _Spec(
            in_conversation,
            metadata if isinstance(metadata, dict) else None,
            output=output if isinstance(output, dict) else None,
        )
        tools = tool_names(self.session, overrides)
        mcp = mcp_offers(self.session, overrides, self.config)
        choice = (overrides or {}).get("tool_choice", self.session.get("tool_choice", "auto"))
        if choice == "none" and self.version is ProtocolVersion.V2:
            tools, mcp = [], {}
        handoff = handoff_tool(self.session, self.config)
        reply = decide(
            pending,
            tools,
            config=self.config,
            version=self.version,
            items=self.items,
            order=self._order,
            handoff=handoff,
            mcp=mcp,
        )
        if reply.kind == "mcp":
            return self._mcp_response(reply.mcp, self._modality(overrides), now, spec)
        if self.version is ProtocolVersion.V2 and reply.kind != "tools":
            forced = forced_tool(choice, tools, self.config)
            if forced is not None:
                reply = Reply("tools", last_user_text(pending), (forced,))
        if reply.kind == "silent" and self.version is ProtocolVersion.V2:
            tool = self.config.silence_tool_name
            if tool in tools:
                return self._function_calls([(tool, "{}")], now, spec)
        if reply.kind == "tools":
            calls = [(t, arguments_for(t, reply.text, self.config, handoff)) for t in reply.tools]
            return self._function_calls(calls, now, spec)
        if reply.kind == "handoff":
            if self.version is ProtocolVersion.V1:
                return self._v1_handoff(reply.text, now)
            if handoff is not None:
                return self._function_calls(
                    [(handoff, arguments_for(handoff, reply.text, self.config, handoff))], now, spec
                )
        text = reply.text
        if reply.kind != "say":
            text = f"{self.config.reply_prefix}{text}."
        limit = (overrides or {}).get("max_output_tokens", self.session.get("max_output_tokens"))
        if isinstance(limit, int) and not isinstance(limit, bool) and len(text) // 4 + 1 > limit:
            # The reply is cut at the token budget (~4 characters a token, like usage_for).
            spec = attrs.evolve(spec, cut=True)
            text = text[: max(1, limit * 4)].rstrip()
        return self._message_response(text, self._modality(overrides), now, spec)

    # ------------------------------------------------------------------ building

    def _response_obj(self, r: _Response, status: str = "in_progress") -> Event:
        obj: Event = {
            "object": "realtime.response",
            "id": r.id,
            "status": status,
            "status_details": None,
            "output": [],
            "conversation_id": self.conversation_id if r.in_conversation else None,
            "usage": None,
            "metadata": copy.deepcopy(r.metadata),
        }
        if self.version is ProtocolVersion.V2:
            obj["output_modalities"] = [r.modality]
            obj["max_output_tokens"] = "inf"
            obj["audio"] = {
                "output": {
                    "format": self._output_format(r),
                    "voice": self._voice(r),
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
        self,
        kind: Literal["message", "function_call", "handoff", "mcp"],
        modality: str,
        item: Event,
        spec: _Spec | None = None,
        lead: Sequence[Event] = (),
    ) -> _Response:
        spec = spec or _Spec()
        response_id = self.ids.response()
        before = (self._order[-1] if self._order else None) if spec.in_conversation else None
        if spec.in_conversation:
            for entry in lead:  # the MCP items come before the response's own item
                self.items[str(entry["id"])] = entry
                self._order.append(str(entry["id"]))
        previous = (self._order[-1] if self._order else None) if spec.in_conversation else None
        response = _Response(
            lead=list(lead),
            lead_previous=before,
            id=response_id,
            kind=kind,
            modality=modality,
            item_id=str(item["id"]),
            item=item,
            previous_item_id=previous,
            in_conversation=spec.in_conversation,
            metadata=spec.metadata,
            output=spec.output,
        )
        if spec.in_conversation:
            self.items[response.item_id] = item
            self._order.append(response.item_id)
            self._active = response
            self._idle_deadline = None
        else:
            self._oob.append(response)
        return response

    def _mcp_response(
        self, calls: tuple[McpCall, ...], modality: str, now: float, spec: _Spec
    ) -> list[Event]:
        """MCP calls: approval requests end the response (calls that need none run in it);
        otherwise the calls run and the model speaks their results in the same response."""
        lead: list[Event] = []
        for call in calls:
            if call.needs_approval:
                lead.append(approval_item(self.ids.item(), call))
            elif call.approved:
                output = self.config.mcp_tools.get(call.name, "")
                lead.append(call_item(self.ids.item(), call, output))
        if any(c.needs_approval for c in calls):
            return self._lead_only_response(lead, spec)
        return self._message_response(spoken_results(calls, self.config), modality, now, spec, lead)

    def _lead_events(self, r: _Response) -> list[Event]:
        """The events of the response's leading MCP items (already finished), in order."""
        out: list[Event] = []
        previous = r.lead_previous
        for index, item in enumerate(r.lead):
            events = item_events(r.id, index, item, previous, in_conversation=r.in_conversation)
            out.extend(self._stamp(e) for e in events)
            previous = str(item["id"])
        return out

    def _lead_only_response(self, items: list[Event], spec: _Spec) -> list[Event]:
        """A response whose output is MCP items only (it waits for the client's approval)."""
        r = self._begin("mcp", "audio", items[-1], spec, items[:-1])
        r.usage = usage_for("".join(str(i.get("arguments", "")) for i in items), 0)
        out = [self._ev("response.created", response=self._response_obj(r))]
        out.extend(self._lead_events(r))
        own = item_events(
            r.id, len(r.lead), r.item, r.previous_item_id, in_conversation=r.in_conversation
        )
        out.extend(self._stamp(e) for e in own)
        out.append(self._response_done(r, "completed", r.item))
        out.extend(self._after_done(r))
        self._finish(r)
        return out

    def _message_response(
        self, text: str, modality: str, now: float, spec: _Spec, lead: Sequence[Event] = ()
    ) -> list[Event]:
        item: Event = {
            "id": self.ids.item(),
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        if self.version is ProtocolVersion.V2:
            item["object"] = "realtime.item"
        r = self._begin("message", modality, item, spec, lead)
        v2 = self.version is ProtocolVersion.V2
        loc = {
            "response_id": r.id,
            "item_id": r.item_id,
            "output_index": len(r.lead),
            "content_index": 0,
        }
        out = [self._ev("response.created", response=self._response_obj(r))]
        out.extend(self._lead_events(r))
        if v2:
            out.append(
                self._ev(
                    "response.output_item.added",
                    response_id=r.id,
                    output_index=len(r.lead),
                    item=copy.deepcopy(item),
                )
            )
        if r.in_conversation:
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
        words = [w + " " for w in text.split(" ")]
        words[-1] = words[-1][:-1]
        pcm = synthesize(text) if modality == "audio" else b""
        law = self._output_law(r)
        if law is not None:
            # G.711 out: 8 kHz, one byte a sample; the deltas carry it as is.
            r.bytes_per_s = G711_RATE
        wire = encode_g711(pcm, law) if law is not None else pcm
        chunk = r.bytes_per_s * self.config.audio_chunk_ms // 1000
        chunks = [wire[i : i + chunk] for i in range(0, len(wire), chunk)] or [b""]
        speed = self.config.audio_speedup
        step_s = (self.config.audio_chunk_ms / 1000.0 / speed) if speed > 0 else 0.0
        if self.webrtc and pcm:
            # The track starts this audio when the audio queued before it has played out.
            start = max([now, *(p.end - _TRACK_FRAME_S for p in self._playing)])
            duration = len(pcm) / (2 * SAMPLE_RATE)
            last_push = now + (len(chunks) - 1) * step_s
            end = max(start + duration, last_push) + _TRACK_FRAME_S
            self._playing.append(_Playout(r.id, r.item_id, start, end))
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
        end_due = now + len(chunks) * step_s
        r.usage = usage_for(text, len(pcm))
        status = "incomplete" if spec.cut else "completed"
        final_item = dict(item, status=status, content=[self._content_part(modality, text)])
        for ev in self._message_tail(r, text, final_item, stamp=False):
            r.steps.append(_Step(end_due, ev))
        reason = "max_output_tokens" if spec.cut else None
        done = self._response_done(r, status, final_item, reason=reason, stamp=False)
        r.steps.append(_Step(end_due, done))
        for ev in self._after_done(r, stamp=False):
            r.steps.append(_Step(end_due, ev))
        out.extend(self.poll(now))
        return out

    def _message_tail(
        self, r: _Response, text: str, item: Event, *, stamp: bool = True
    ) -> list[Event]:
        v2 = self.version is ProtocolVersion.V2
        loc = {
            "response_id": r.id,
            "item_id": r.item_id,
            "output_index": len(r.lead),
            "content_index": 0,
        }
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
                    "output_index": len(r.lead),
                    "item": copy.deepcopy(item),
                }
            )
        else:
            evs.append({"type": "response.output_audio_transcript.done", **loc, "transcript": text})
        if r.in_conversation:
            evs.append(
                {
                    "type": "conversation.item.done",
                    "previous_item_id": r.previous_item_id,
                    "item": copy.deepcopy(item),
                }
            )
        self._store(r, item)
        return [self._stamp(e) for e in evs] if stamp else evs

    def _response_done(
        self,
        r: _Response,
        status: str,
        item: Event | list[Event],
        *,
        reason: str | None = None,
        stamp: bool = True,
    ) -> Event:
        obj = self._response_obj(r, status)
        own = copy.deepcopy(item) if isinstance(item, list) else [copy.deepcopy(item)]
        obj["output"] = copy.deepcopy(r.lead) + own
        obj["usage"] = r.usage or usage_for("", 0)
        if reason is not None:
            obj["status_details"] = {"type": status, "reason": reason}
        ev: Event = {"type": "response.done", "response": obj}
        return self._stamp(ev) if stamp else ev

    def _after_done(self, r: _Response, *, stamp: bool = True) -> list[Event]:
        evs: list[Event] = []
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

    def _function_calls(self, calls: list[tuple[str, str]], now: float, spec: _Spec) -> list[Event]:
        """One response with a ``function_call`` item per (tool, arguments), in order."""
        items: list[Event] = []
        for tool, _ in calls:
            items.append(
                {
                    "id": self.ids.item(),
                    "object": "realtime.item",
                    "type": "function_call",
                    "status": "in_progress",
                    "name": tool,
                    "call_id": self.ids.call(),
                    "arguments": "",
                }
            )
        r = self._begin("function_call", "audio", items[0], spec)
        r.usage = usage_for("".join(args for _, args in calls), 0)
        out = [self._ev("response.created", response=self._response_obj(r))]
        finals: list[Event] = []
        previous = r.previous_item_id
        for index, (item, (tool, args)) in enumerate(zip(items, calls, strict=True)):
            if index > 0 and r.in_conversation:
                self.items[str(item["id"])] = item
                self._order.append(str(item["id"]))
            final = dict(item, status="completed", arguments=args)
            loc = {
                "response_id": r.id,
                "item_id": item["id"],
                "output_index": index,
                "call_id": item["call_id"],
            }
            out.append(
                self._ev(
                    "response.output_item.added",
                    response_id=r.id,
                    output_index=index,
                    item=copy.deepcopy(item),
                )
            )
            if r.in_conversation:
                out.append(
                    self._ev(
                        "conversation.item.added",
                        previous_item_id=previous,
                        item=copy.deepcopy(item),
                    )
                )
            out.append(self._ev("response.function_call_arguments.delta", delta=args, **loc))
            out.append(
                self._ev("response.function_call_arguments.done", arguments=args, name=tool, **loc)
            )
            out.append(
                self._ev(
                    "response.output_item.done",
                    response_id=r.id,
                    output_index=index,
                    item=copy.deepcopy(final),
                )
            )
            if r.in_conversation:
                out.append(
                    self._ev(
                        "conversation.item.done",
                        previous_item_id=previous,
                        item=copy.deepcopy(final),
                    )
                )
            self._store(r, final)
            finals.append(final)
            previous = str(item["id"])
        out.append(self._response_done(r, "completed", finals))
        out.extend(self._after_done(r))
        self._finish(r)
        return out

    def _v1_handoff(self, prompt: str, now: float) -> list[Event]:
        handoff_id = self.ids.handoff()
        item: Event = {"id": self.ids.item(), "type": "handoff", "status": "completed"}
        r = self._begin("handoff", "audio", item)
        self._handoffs[handoff_id] = item
        r.usage = usage_for(prompt, 0)
        out = [
            self._ev("response.created", response=self._response_obj(r)),
            self._ev(
                "conversation.handoff.requested",
                handoff_id=handoff_id,
                item_id=r.item_id,
                input_transcript=prompt,
            ),
        ]
        obj = self._response_obj(r, "completed")
        obj["usage"] = r.usage
        out.append(self._ev("response.done", response=obj))
        self._finish(r)
        return out


@attrs.frozen
class _Spec:
    """Where a response writes: the default conversation or out of band, with metadata."""

    in_conversation: bool = True
    metadata: Event | None = None
    #: the reply was cut at ``max_output_tokens`` (status ``incomplete``)
    cut: bool = False
    #: ``response.audio.output`` overrides
    output: Event | None = None
