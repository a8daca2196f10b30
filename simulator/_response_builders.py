"""Response building: the exact wire sequence of each kind of model response.

``ResponseBuilders`` turns a response the model has decided on into the GA / quicksilver event
sequence of openai-realtime-protocol.md §3.4: a message (text, or audio with its transcript),
v2 function calls — one or several in parallel —, a v1 handoff request, MCP items (``_mcp``)
before a message or alone. Events that are sent at once are returned; a message's streamed
parts (transcript deltas, audio chunks), its closing events and ``response.done`` are queued as
timed steps on the ``_response_clock``, which releases them. ``_responses`` decides which
builder to call, and how a response is cut short.

Invariants:
- a response's steps are due in non-decreasing time order, ``response.done`` last (then only
  ``rate_limits.updated``);
- only a default-conversation response takes the conversation's slot and writes its items
  (``_begin``, ``_store``); an out-of-band one (``conversation: "none"``) carries
  ``conversation_id: null`` and its ``metadata`` and adds nothing to the conversation;
- audio is streamed in ``audio_chunk_ms`` chunks of whole samples in the session's output
  format (PCM16 24 kHz, or G.711 8 kHz on a v2 WebSocket session that declares
  ``audio/pcmu``/``audio/pcma``), faster than real time by ``audio_speedup`` (all at once
  when it is 0);
- a WebRTC response's playout starts when its first chunk is pushed (or when the audio queued
  before it ends) and ends one track frame after its last sample: the track plays pushed audio
  in real time.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Literal

import attrs

from duplex.protocol import ProtocolVersion, b64encode_pcm

from ._audio import G711_RATE, SAMPLE_RATE, G711Law, encode_g711, g711_law, synthesize
from ._config import SimulatorConfig
from ._mcp import McpCall, approval_item, call_item, item_events, spoken_results
from ._response_clock import _TRACK_FRAME_S, Event, ResponseClock, _Playout, _Response, _Step
from ._session_shape import deep_merge, usage_for

__all__ = ["ResponseBuilders"]


@attrs.frozen
class _Spec:
    """Where a response writes: the default conversation or out of band, with metadata."""

    in_conversation: bool = True
    metadata: Event | None = None
    #: the reply was cut at ``max_output_tokens`` (status ``incomplete``)
    cut: bool = False
    #: ``response.audio.output`` overrides
    output: Event | None = None


class ResponseBuilders(ResponseClock):
    """The wire sequences of ``ScriptedModel``'s responses (see the module docstring)."""

    version: ProtocolVersion
    config: SimulatorConfig
    conversation_id: str
    session: dict[str, Any]
    items: dict[str, Event]
    _order: list[str]
    _handoffs: dict[str, Event]

    # ------------------------------------------------------------------ output settings

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
