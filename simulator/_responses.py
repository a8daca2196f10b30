"""Starting and cancelling the scripted model's responses.

``ResponseStreams`` is the top of ``ScriptedModel``'s response layers: ``_start_response``
answers what the model owes (the unanswered input, or a response's own ``input``): it asks
``_replies`` *what* to answer (``Reply``), applies ``tool_choice`` and ``max_output_tokens``,
and hands the reply to the builder of its kind (``_response_builders``), which decides *how it
sounds on the wire*; ``_cancel`` cuts a response short (``response.cancel``, barge-in).

Invariants:
- a started response consumes the unanswered input (unless it was given its own);
- a cancelled response ends with ``response.done`` status ``cancelled``, its item
  ``incomplete`` with what was produced before the cut, and is billed for that much;
- on barge-in the WebRTC playout is cleared (``output_audio_buffer.cleared``); on
  ``response.cancel`` what was already pushed to the track still plays out.
"""

from __future__ import annotations

from typing import Any

import attrs

from duplex.protocol import ProtocolVersion

from ._audio import SAMPLE_RATE
from ._mcp import mcp_offers
from ._replies import (
    Reply,
    arguments_for,
    decide,
    forced_tool,
    handoff_tool,
    last_user_text,
    tool_names,
)
from ._response_builders import ResponseBuilders, _Spec
from ._response_clock import _TRACK_FRAME_S, Event, _Response
from ._session_shape import usage_for

__all__ = ["ResponseStreams"]


class ResponseStreams(ResponseBuilders):
    """Response starts and cancels; mixed into ``ScriptedModel``, which sets the state."""

    _unanswered: list[Event]

    # ------------------------------------------------------------------ start

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

    # ------------------------------------------------------------------ cancel

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
