"""``ConversationState``: every rule of one conversation, synchronous and trio-free.

Rule 1 (after h11's ``_state.py``): everything that decides what a conversation does lives in
this class — its lifecycle, the error policy, what reaches the host, and every use of the
small rule sets it composes (the single-active-response queue, the barge-in audio ledger and
the handoff bookkeeping in ``_rule_sets.py``, tool calls in ``_tools.py``). Its host-call
rules for turn control and tools are a mixin in ``_turn_rules.py`` (the same class, split
for size); a call's decisions are a ``Step`` (``_step.py``). Rule 2: nothing here does I/O,
awaits or knows about trio; ``_conversation.py`` applies the decisions.

Events in, decisions out. Every entry point returns a ``Step``:

- ``forward``: host events, in order;
- ``send``: client events for the wire, in order (the writer's queue; never dropped);
- ``end``: the conversation's ``ConversationClosed`` when this step ended it.

Lifecycle (SPEC §3.1, codex-realtime.md §7.4/§7.9)::

    CONNECTING ──connected()──► RUNNING ──close()──────────► CLOSING   end = Closed("requested")
        │                          ├──replace()────────► REPLACED  nothing emitted
        └──replace()──► REPLACED   └──receive()/fail()─► ENDED     end = Closed("transport_closed"
                                                                                  | "error")

Invariants (``tests/engine/test_state_machine.py`` checks them with a hypothesis state machine):

- ``end`` is returned at most once, and only on the way out of RUNNING: one
  ``ConversationClosed`` per started conversation, none for a replaced one or a failed start.
- Outside RUNNING every entry point returns an empty ``Step`` and host calls raise
  ``ConversationNotRunning``: nothing is forwarded or sent after the end.
- At most one ``response.create`` is in flight; a request while one is active is deferred and
  sent when the active response finishes (codex-realtime.md §7.7).
- Every ``call_id`` (handoff, silence or host tool) is acted on once; a final handoff output
  makes its id unanswerable at once, so a second final is refused; a tool call is answerable
  until its first output (``_tools.ToolCalls``, which also holds the parallel-call rule).
- Responses are tracked by id (``_live``): the slot is free only when every response that was
  created has finished, so an out-of-band response ending while the default one still speaks
  does not free it, and a response reported twice (``response.cancelled`` then
  ``response.done``) frees it once.
- ``ConversationClosed.code`` is a plain ``int``; ``error`` is set only for ``reason="error"``.
- Messages the engine builds from server bytes have control characters escaped and the API
  key (and anything key-shaped) redacted.
- Audio (SPEC §3.4): every ``AudioOut`` names its item and response; an item's
  ``OutputAudioDone`` follows its last ``AudioOut`` and precedes its response's
  ``ResponseDone``, on every transport (WebRTC: ``_audio_contract.TrackAudio``; event-channel
  audio: ``AudioEnds`` adds the ends a dialect does not send). Barge-in (server VAD or a host
  ``interrupt()``) goes through one decision, ``interrupt_point()``: the item is cut at what
  the host reported with ``audio_played`` (else what it took from ``events()``), once, and
  the host gets ``AudioInterrupted``; audio of a cut item is never delivered afterwards.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import attrs

from duplex.protocol import (
    DETAIL_EVENTS,
    AudioFrame,
    AudioInterrupted,
    AudioOut,
    ClientEvent,
    ConversationItemAdded,
    ConversationItemDone,
    Error,
    HandoffRequested,
    InputAudioSpeechStarted,
    InputAudioSpeechStopped,
    InputTranscriptDone,
    McpApprovalRequested,
    NoopRequested,
    OutputAudioBufferCleared,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    OutputAudioDone,
    OutputTranscriptDelta,
    ParseFailure,
    ProtocolVersion,
    ResponseCancelled,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionMode,
    ToolCallRequested,
    TranscriptAccumulator,
    UnknownEvent,
    dialect,
    handoff_output_events,
    noop_reply_event,
    output_audio_clear_event,
    prompt_update_event,
    response_cancel_event,
    response_create_event,
    steering_ack_event,
    text_item_event,
    truncate_event,
)
from duplex.transports import TransportEnded

from ._audio_contract import AudioEnds, TrackAudio
from ._errors import (
    ConversationClosed,
    ConversationNotRunning,
    ConversationStarted,
    HandoffNotActive,
    UnsupportedByDialect,
)
from ._host_audio import check_host_frame, check_played_ms
from ._host_events import HostEvent
from ._rule_sets import AudioLedger, HandoffState, ResponseQueue, clean_text
from ._session import SessionSettings
from ._step import Step
from ._tools import ToolCalls
from ._turn_rules import TurnRules
from ._usage import LatencyMeter, UsageMeter

__all__ = [
    "CLOSING",
    "CONNECTING",
    "ENDED",
    "REPLACED",
    "RUNNING",
    "AudioLedger",
    "ConversationState",
    "Counters",
    "HandoffState",
    "ResponseQueue",
    "Step",
    "clean_text",
]

logger = logging.getLogger(__name__)

CONNECTING: Final = "connecting"
RUNNING: Final = "running"
CLOSING: Final = "closing"  # close(): ConversationClosed("requested") was emitted
REPLACED: Final = "replaced"  # start() replaced it: nothing more is emitted
ENDED: Final = "ended"  # it ended by itself and emitted ConversationClosed

ACTIVE_RESPONSE_CODE: Final = "conversation_already_has_active_response"

# Close codes from 4000 up are application codes: the server ended the session on purpose.
APPLICATION_CLOSE_CODES: Final = 4000


# The events ``ConversationState._sanitized`` may change (server text, a missing response id).
_SANITIZED: Final = frozenset({Error, ParseFailure, ToolCallRequested})


@attrs.define
class Counters:
    """Mutable per-conversation counters behind ``EngineStatistics`` (the trio side counts
    what it moves: client events and host audio)."""

    server_events: int = 0
    parse_failures: int = 0
    unknown_events: int = 0
    client_events: int = 0
    audio_in: int = 0
    audio_in_dropped: int = 0
    audio_out: int = 0
    stale_audio_dropped: int = 0
    truncations: int = 0
    duplicate_calls: int = 0
    detail_events: int = 0
    raw_events_sent: int = 0


# ---- the conversation -------------------------------------------------------------------


class ConversationState(TurnRules):
    """One conversation's rules (see the module docstring). Not thread-safe; one owner."""

    def __init__(
        self,
        *,
        version: ProtocolVersion,
        mode: SessionMode = SessionMode.CONVERSATIONAL,
        forward_unknown_events: bool = False,
        user_text_prefix: bool = False,
        secrets: Sequence[str | None] = (),
        audio_format: str = "pcm16",
        session: SessionSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.version = version
        self.audio_format = audio_format
        self.mode = mode
        self.status: str = CONNECTING
        self.counters = Counters()
        self.responses = ResponseQueue()
        self.ledger = AudioLedger()
        self.handoffs = HandoffState()
        # What the dialect can do, asked by name (SPEC §2: no version checks in the engine).
        self.dialect = dialect(version)
        self._forward_unknown = forward_unknown_events
        self._user_prefix = user_text_prefix
        self._secrets = tuple(s for s in secrets if s)
        self._truncate_on_speech = False
        self.drop_event_audio = False
        # The media track's audio contract (audio-native transports only; _audio_contract).
        self.track: TrackAudio | None = None
        self._audio_ends = AudioEnds()  # event-channel audio: OutputAudioDone owed per item
        self._after: list[HostEvent] = []  # forwarded right after the current event
        self._observe = TranscriptAccumulator().observe
        self._current_item: str | None = None  # for tagging WebRTC media audio
        self._current_response: str | None = None
        self.session = session
        self.tools = ToolCalls()
        self._approvals: set[str] = set()  # MCP approval requests waiting for the host
        self.usage = UsageMeter()
        self.latency = LatencyMeter()
        self._clock = clock
        self._audio_native = False
        self._stale_item: str | None = None  # the item current when the last turn ended
        self._live: set[str] = set()  # responses created and not finished
        self._finished: deque[str] = deque(maxlen=8)  # recently finished ids (duplicates)
        # Custom or coalesced response.create requests waiting for the slot, in order
        # (None: a plain create); ResponseQueue.pending says whether any waits.
        self._deferred: deque[ClientEvent | None] = deque()
        # Per event type: a side effect returning whether to forward the event to the host.
        self._effects: dict[type[Any], Callable[[Any, list[ClientEvent]], bool]] = {
            ResponseCreated: self._on_response_created,
            ResponseDone: self._on_response_finished,
            ResponseCancelled: self._on_response_finished,
            InputAudioSpeechStarted: self._on_speech_started,
            Error: self._on_error,
            HandoffRequested: self._on_handoff,
            NoopRequested: self._on_noop,
            UnknownEvent: self._on_unknown,
            ParseFailure: self._on_parse_failure,
            OutputTranscriptDelta: self._on_output_text,
            ConversationItemAdded: self._on_item_added,
            ConversationItemDone: self._on_item_done,
            ToolCallRequested: self._on_tool_call,
            McpApprovalRequested: self._on_mcp_approval,
            OutputAudioDone: self._on_audio_done,
            InputAudioSpeechStopped: self._on_speech_stopped,
            InputTranscriptDone: self._on_input_transcript,
        }
        # Not forwarded by default (``forward_unknown_events`` forwards them): the GA detail
        # events a host rarely acts on, and the WebRTC-only output buffer events, which a
        # WebSocket session never sees — forwarding them would make the host's event stream
        # depend on the transport (SPEC §3.4). OutputAudioDone and AudioInterrupted are their
        # transport-neutral equivalents.
        for kind in (
            *DETAIL_EVENTS,
            OutputAudioBufferStarted,
            OutputAudioBufferStopped,
            OutputAudioBufferCleared,
        ):
            self._effects[kind] = self._on_detail
        self._fatal: Error | None = None
        # Items this connection replayed (``expect_echoes``): the server's added/done for
        # them are echoes of items the host already saw, not new items.
        self._echoes: set[str] = set()

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def replying(self) -> bool:
        """A reply is not over for the host: a response is active, or (WebRTC) its end waits
        for its audio to be out. A rotation waits for neither to be so."""
        return self.responses.active or (self.track is not None and self.track.holding)

    # ---- lifecycle ------------------------------------------------------------------

    def connected(
        self, *, session_id: str, transport: str, audio_native: bool, start_event: ClientEvent
    ) -> Step:
        """The transport is up: send the handshake; ``forward`` holds ``ConversationStarted``
        (the engine announces it once ``start()`` can no longer fail)."""
        step = Step()
        if self.status != CONNECTING:
            return step
        self.status = RUNNING
        # Barge-in truncation is ours on v2 over WebSocket. Over WebRTC the server knows what
        # was played and truncates by itself (openai-realtime-protocol.md §6).
        self._truncate_on_speech = self.dialect.client_truncates and not audio_native
        self._audio_native = audio_native
        # On an audio-native transport the media track is the audio; a server that also
        # sends deltas on the event channel would double it, so the reader drops them.
        self.drop_event_audio = audio_native
        if audio_native:
            self.track = TrackAudio()
        step.send.append(start_event)
        step.forward.append(ConversationStarted(session_id, self.version.value, transport))
        return step

    def close(self) -> Step:
        """The host's ``close()``: ``end`` = ``ConversationClosed("requested")`` if running."""
        step = Step()
        if self.status == RUNNING:
            self.status = CLOSING
            step.end = ConversationClosed("requested")
        return step

    def replace(self) -> bool:
        """``start()`` replaces this conversation (or abandons its connect): nothing more is
        emitted. True if it was running (its undelivered events are then dropped)."""
        was_running = self.status == RUNNING
        if self.status in (RUNNING, CONNECTING):
            self.status = REPLACED
        return was_running

    def fail(self, message: str) -> Step:
        """An engine-side fault (a bug, a stalled writer): the conversation ends with
        ``Error`` + ``ConversationClosed("error")``."""
        step = Step()
        if self.status == RUNNING:
            message = self._clean(message)
            step.forward.append(Error(message, None, None, True))
            step.end = self._end(ConversationClosed("error", None, message))
        return step

    def _end(self, closed: ConversationClosed) -> ConversationClosed:
        self.status = ENDED
        return closed

    # ---- server events --------------------------------------------------------------

    def receive(self, events: Sequence[ServerEvent], ended: TransportEnded | None = None) -> Step:
        """One network wakeup: the parsed events in arrival order and, last, the transport's
        end if it ended. Events after a fatal error are not forwarded."""
        step = Step()
        if self.status != RUNNING:
            return step
        forward = step.forward
        send = step.send
        observe = self._observe
        effects = self._effects
        counters = self.counters
        track = self.track
        after = self._after
        counters.server_events += len(events)
        event: Any  # each branch below knows its type by ``kind``
        for event in events:
            kind = type(event)
            if kind is AudioOut:
                if track is not None and event.item_id is None:
                    track.frame(event.frame)
                    if track.has_ready:
                        self._release(track, forward)
                    continue
                audio = self._audio_out(event)
                if audio is not None:
                    forward.append(audio)
                continue
            if track is not None and not track.observe(event):
                continue
            event = observe(event)
            effect = effects.get(kind)
            if effect is None:
                forward.append(event)
                continue
            if effect(event, send):
                if kind in _SANITIZED:
                    event = self._sanitized(event)
                if kind is ResponseDone or kind is ResponseCancelled:
                    self._response_end(event, forward)
                else:
                    forward.append(event)
            if after:
                forward.extend(after)
                after.clear()
            if track is not None and track.has_ready:
                self._release(track, forward)
            if self._fatal is not None:
                if track is not None:
                    # What the track held back (a reply's end) still reaches the host before
                    # the end, as when the transport ends.
                    track.flush()
                    self._release(track, forward)
                step.end = self._end(ConversationClosed("error", None, self._fatal.message))
                return step
        if ended is not None:
            self._transport_ended(ended, step)
        return step

    def _response_end(self, event: ResponseDone | ResponseCancelled, forward: list[Any]) -> None:
        """A response's end reaches the host after its audio's end (SPEC §3.4): held by the
        track contract until the playout is out (WebRTC), or preceded by the
        ``OutputAudioDone``s the server did not send (event-channel audio)."""
        track = self.track
        if track is not None:
            if not track.hold(event):
                forward.append(event)
            return
        forward.extend(self._audio_ends.finish(event.response_id))
        forward.append(event)

    def _on_audio_done(self, event: OutputAudioDone, send: list[ClientEvent]) -> bool:
        self._audio_ends.done(event.item_id)
        return True

    def _release(self, track: TrackAudio, forward: list[HostEvent]) -> None:
        """What the track contract made ready: tagged audio (through the ledger) and the end
        events it held back."""
        for ready in track.take():
            if type(ready) is AudioOut:
                audio = self._audio_out(ready)
                if audio is not None:
                    forward.append(audio)
            else:
                forward.append(ready)

    def _transport_ended(self, ended: TransportEnded, step: Step) -> None:
        if self.track is not None:
            # What the track held back (a reply's end) still reaches the host before the end.
            self.track.flush()
            self._release(self.track, step.forward)
        code = None if ended.code is None else int(ended.code)
        if ended.reason == "closed" and (code is None or code < APPLICATION_CLOSE_CODES):
            # A clean close by the peer: not an error, so no error text (SPEC §3.1).
            step.end = self._end(ConversationClosed("transport_closed", code, None))
            return
        if ended.reason == "requested":
            # Only our own aclose() ends a transport this way, and that happens after the
            # conversation left RUNNING; if it ever does not, end cleanly rather than hang.
            step.end = self._end(ConversationClosed("transport_closed", code, None))
            return
        message = self._clean(ended.error or f"connection closed with code {code}")
        step.forward.append(Error(f"transport failed: {message}", None, None, True))
        step.end = self._end(ConversationClosed("error", code, message))

    def _audio_out(self, event: AudioOut) -> AudioOut | None:
        item_id = event.item_id
        if item_id is None and self._current_item is not None and self.track is None:
            # WebRTC media audio carries no ids: attribute it to the item being spoken.
            event = AudioOut(event.frame, self._current_item, self._current_response)
            item_id = self._current_item
        if item_id is not None:
            if self.ledger.is_truncated(item_id):
                self.counters.stale_audio_dropped += 1
                return None
            self.ledger.received(item_id, event.frame.duration_ms)
            if self.track is None:
                self._audio_ends.audio(item_id, event.response_id)
            if self.latency.wants_audio and item_id != self._stale_item:
                self.latency.first_audio(self._clock())
        self.counters.audio_out += 1
        return event

    def _on_response_created(self, event: ResponseCreated, send: list[ClientEvent]) -> bool:
        self.responses.started()
        self._current_response = event.response_id
        if event.response_id is not None:
            self._live.add(event.response_id)
        return True

    def _on_response_finished(
        self, event: ResponseDone | ResponseCancelled, send: list[ClientEvent]
    ) -> bool:
        response_id = event.response_id
        if response_id is not None:
            if response_id in self._live:
                self._live.discard(response_id)
                self._finished.append(response_id)
                if self._live:
                    # Another response (out of band, or one the server made) still runs:
                    # the slot is not free yet; it frees when the last one finishes.
                    return self._finish_response(event, send)
            elif response_id in self._finished:
                return True  # the same response reported twice: freed once already
        if self.responses.finished():
            self._send_deferred(send)
        return self._finish_response(event, send)

    def _finish_response(
        self, event: ResponseDone | ResponseCancelled, send: list[ClientEvent]
    ) -> bool:
        if type(event) is ResponseDone:
            self.usage.add(event.usage)
        self.latency.response_finished()
        if self.tools.response_finished(event.response_id):
            self._request_response(send)
        return True

    def _send_deferred(self, send: list[ClientEvent]) -> None:
        """The slot was given to the oldest deferred request: send it."""
        deferred = self._deferred
        event = deferred.popleft() if deferred else None
        send.append(event if event is not None else response_create_event())
        if deferred:
            self.responses.pending = True

    def _on_output_text(self, event: OutputTranscriptDelta, send: list[ClientEvent]) -> bool:
        if event.item_id is not None:
            self._current_item = event.item_id
        if self.latency.wants_text:
            self.latency.first_text(self._clock())
        return True

    def expect_echoes(self, item_ids: Iterable[str]) -> None:
        """These items are being replayed into a new session: their ``conversation.item.
        added``/``.done`` echoes are not forwarded (the host saw them before the drop)."""
        self._echoes.update(item_ids)

    def _on_item_done(self, event: ConversationItemDone, send: list[ClientEvent]) -> bool:
        if event.item_id in self._echoes:
            self._echoes.discard(event.item_id)  # the last echo of a replayed item
            return False
        return True

    def _on_item_added(self, event: ConversationItemAdded, send: list[ClientEvent]) -> bool:
        item = event.item
        if item.id in self._echoes:
            return False
        if item.role == "assistant" and item.id is not None:
            self._current_item = item.id
        return True

    def _on_speech_started(self, event: InputAudioSpeechStarted, send: list[ClientEvent]) -> bool:
        # Server VAD barge-in: the server cancels the response (and, over WebRTC, cuts its own
        # playout), so only the truncation and the host's flush are ours.
        self._cut_playback(send, self._after, clear_buffer=False)
        return True

    # ---- barge-in (SPEC §3.4): one decision, shared by server VAD and interrupt() ----------

    def interrupt_point(self) -> tuple[str, int] | None:
        """Where the assistant item the user is hearing should be cut now: ``(item_id,
        played_ms)`` — the host's ``audio_played`` report, else what it took from
        ``events()`` — or ``None`` when nothing is playing. Marks the item truncated (its
        later audio is dropped), so each item is cut once. For ``interrupt()`` too."""
        active = self.responses.active or (self.track is not None and self.track.sounding)
        return self.ledger.barge_in_point(response_active=active)

    def _cut_playback(
        self, send: list[ClientEvent], forward: list[HostEvent], *, clear_buffer: bool
    ) -> tuple[str, int] | None:
        """Apply ``interrupt_point()``: the truncation the transport needs (WebSocket v2:
        ``conversation.item.truncate``; WebRTC: the server truncates by itself, and with
        ``clear_buffer`` — a host-initiated interrupt — ``output_audio_buffer.clear`` stops
        its playout) and ``AudioInterrupted`` for the host to flush its playback."""
        point = self.interrupt_point()
        if point is None:
            return None
        item_id, played_ms = point
        if self._truncate_on_speech:
            self.counters.truncations += 1
            send.append(truncate_event(item_id, played_ms))
        elif self.track is not None and clear_buffer:
            send.append(output_audio_clear_event())
        # v1 has no truncate (the backend keeps its own account); the host still flushes.
        forward.append(AudioInterrupted(item_id, played_ms))
        return point

    def cut_playback(self, *, clear_buffer: bool = True) -> Step:
        """A host-initiated cut (``interrupt()``): ``send`` holds the truncation/clear,
        ``forward`` the ``AudioInterrupted``; both empty when nothing is playing. The caller
        adds ``response.cancel`` if it wants the response stopped too."""
        step = Step()
        if self.status == RUNNING:
            self._cut_playback(step.send, step.forward, clear_buffer=clear_buffer)
        return step

    def _on_speech_stopped(self, event: InputAudioSpeechStopped, send: list[ClientEvent]) -> bool:
        self._turn_ended()
        return True

    def _turn_ended(self) -> None:
        """The user's turn ended: start a latency measurement. Audio of the item that was
        current then (a WebRTC track's tail or silence, attributed to it) is not the answer."""
        self._stale_item = self._current_item
        self.latency.turn_ended(self._clock())

    def _on_input_transcript(self, event: InputTranscriptDone, send: list[ClientEvent]) -> bool:
        self.usage.add_transcription(event.usage, event.audio_seconds)
        return True

    def _on_error(self, event: Error, send: list[ClientEvent]) -> bool:
        # The error policy: the parser marks the codes after which the session cannot go on
        # (protocol.FATAL_ERROR_CODES); every other error is a race and is only forwarded.
        if event.fatal:
            self._fatal = self._sanitized(event)
        elif event.code == ACTIVE_RESPONSE_CODE:
            self.responses.rejected_as_active()
            if not self._deferred or self._deferred[0] is not None:
                self._deferred.appendleft(None)  # resend the refused create first
        return True

    def _on_handoff(self, event: HandoffRequested, send: list[ClientEvent]) -> bool:
        state = self.handoffs
        if not state.first_time(event.handoff_id):
            self.counters.duplicate_calls += 1
            return False
        if self.dialect.steers_handoffs and state.active is not None:
            # A second request while one runs steers the first: acknowledge the new call now.
            send.append(steering_ack_event(self.version, event.handoff_id))
            self._request_response(send)
            return True
        state.active = event.handoff_id
        state.answerable.add(event.handoff_id)
        return True

    def _on_noop(self, event: NoopRequested, send: list[ClientEvent]) -> bool:
        if not self.handoffs.first_time(event.call_id):
            self.counters.duplicate_calls += 1
            return False
        # No response.create: the model chose silence.
        send.append(noop_reply_event(self.version, event.call_id))
        return True

    def _on_tool_call(self, event: ToolCallRequested, send: list[ClientEvent]) -> bool:
        # A call seen again (in response.done's output, or a retried item) is not re-emitted.
        if not self.handoffs.first_time(event.call_id):
            self.counters.duplicate_calls += 1
            return False
        # GA names no response on the item event: the call belongs to the active one
        # (``_sanitized`` puts the same id on the forwarded event).
        self.tools.requested(event.call_id, event.response_id or self._current_response)
        return True

    def _on_mcp_approval(self, event: McpApprovalRequested, send: list[ClientEvent]) -> bool:
        if not self.handoffs.first_time(event.item_id):
            self.counters.duplicate_calls += 1
            return False
        self._approvals.add(event.item_id)
        return True

    def _on_detail(self, event: ServerEvent, send: list[ClientEvent]) -> bool:
        self.counters.detail_events += 1
        return self._forward_unknown

    def _on_unknown(self, event: UnknownEvent, send: list[ClientEvent]) -> bool:
        self.counters.unknown_events += 1
        return self._forward_unknown

    def _on_parse_failure(self, event: ParseFailure, send: list[ClientEvent]) -> bool:
        self.counters.parse_failures += 1
        logger.warning(
            "unparseable server frame: %s (%s)",
            self._clean(event.reason),
            self._clean(event.preview),
        )
        return True

    def _sanitized(self, event: Any) -> Any:
        """``Error``/``ParseFailure`` carry server text to the host: escape and redact it.
        A ``ToolCallRequested`` without a response id gets the active response's."""
        kind = type(event)
        if kind is Error:
            message = self._clean(event.message)
            param = None if event.param is None else self._clean(event.param)
            if message != event.message or param != event.param:
                return attrs.evolve(event, message=message, param=param)
        elif kind is ParseFailure:
            preview = self._clean(event.preview)
            reason = self._clean(event.reason)
            if preview != event.preview or reason != event.reason:
                return attrs.evolve(event, reason=reason, preview=preview)
        elif (
            kind is ToolCallRequested
            and event.response_id is None
            and self._current_response is not None
        ):
            return attrs.evolve(event, response_id=self._current_response)
        return event

    def _clean(self, text: str) -> str:
        return clean_text(text, self._secrets)

    # ---- host calls -----------------------------------------------------------------

    def _require_running(self) -> None:
        if self.status != RUNNING:
            raise ConversationNotRunning()

    def _request_response(self, send: list[ClientEvent], event: ClientEvent | None = None) -> None:
        """A default-conversation response through the single-active-response queue:
        ``event`` (a ``response.create`` with options) or a plain one. Deferred requests are
        sent in order; consecutive plain ones coalesce into one."""
        if self.responses.request():
            send.append(event if event is not None else response_create_event())
        elif event is not None or not self._deferred or self._deferred[-1] is not None:
            self._deferred.append(event)

    def take_over_responses(
        self, old: ConversationState, *, cut: bool, carried: bool
    ) -> list[ClientEvent]:
        """The response queue across a resume: this is the new connection's state, ``old``
        the ended one's. The host's deferred requests keep waiting, in order. The slot goes to
        a ``response.create`` among the carried unsent frames (``carried``), else to a new
        request for a response the drop ``cut`` short, else to the oldest deferred request.
        Returns what to send after the carried frames."""
        self._deferred = deque(old._deferred)
        send: list[ClientEvent] = []
        if carried:
            self.responses.request()  # the carried create is on its way: it holds the slot
        elif cut and self.dialect.client_requests_responses:
            self._request_response(send)  # (a v1 backend answers by itself)
        elif self._deferred and self.responses.request():
            self._send_deferred(send)
        self.responses.pending = bool(self._deferred)
        return send

    def send_text(self, text: str, *, respond: bool) -> Step:
        """A user text message; on v2 with ``respond``, a response through the queue (a v1
        backend answers text items by itself)."""
        self._require_running()
        if self.mode is SessionMode.TRANSCRIPTION:
            raise UnsupportedByDialect("transcription sessions do not take text input")
        step = Step()
        step.send.append(text_item_event(self.version, text, user_prefix=self._user_prefix))
        if respond:
            self._turn_ended()
            if self.dialect.client_requests_responses:
                self._request_response(step.send)
        return step

    def check_handoff(self, handoff_id: str) -> None:
        """Raise unless ``handoff_id`` may be answered now."""
        self._require_running()
        if handoff_id not in self.handoffs.answerable:
            raise HandoffNotActive(f"no active handoff with id {handoff_id!r}")

    def handoff_output(self, handoff_id: str, text: str, *, final: bool) -> Step:
        """The host's answer to a ``HandoffRequested``: progress or the final result."""
        self.check_handoff(handoff_id)
        step = Step()
        step.send.extend(handoff_output_events(self.version, handoff_id, text, final=final))
        if final:
            # Unanswerable from this moment: a second final for the same id is refused.
            self.handoffs.finish(handoff_id)
            if self.dialect.client_requests_responses:
                # Progress is context for the model ([BACKEND] items); only the final output
                # asks it to speak, as in the Rust original.
                self._request_response(step.send)
        return step

    def update_prompt(self, prompt: str) -> Step:
        self._require_running()
        step = Step()
        step.send.append(prompt_update_event(self.version, prompt, mode=self.mode))
        if self.session is not None:
            self.session.prompt_changed(prompt)
        return step

    def check_audio(self, frame: AudioFrame) -> None:
        """Host audio must have a real shape and the session's encoding; refused otherwise
        (so it never reaches the audio mux, where it would end the conversation)."""
        self._require_running()
        check_host_frame(frame, self.audio_format)

    def audio_played(self, item_id: str, ms: float) -> None:
        """The host reports that ``ms`` of ``item_id`` have been played to the user."""
        check_played_ms(ms)
        self.ledger.played(item_id, ms)

    def audio_delivered(self, event: AudioOut) -> bool:
        """The host is taking ``event`` from ``events()``: that much of the item reached it.
        False when the item was cut after the frame was queued (a stale frame, counted)."""
        item_id = event.item_id
        if item_id is not None:
            if item_id in self.ledger.truncated:
                self.counters.stale_audio_dropped += 1
                return False
            self.ledger.delivered(item_id, event.frame.duration_ms)
        return True

    # ---- barge-in by the host ----------------------------------------------------------

    def interrupt(self) -> Step:
        """Stop the model: cancel the response that is speaking and cut its item where the
        host stopped hearing it — the barge-in rule (``interrupt_point``: the host's
        ``audio_played`` report, else what it took from ``events()``) — with
        ``AudioInterrupted`` for the host. WebSocket truncates the item itself; WebRTC
        clears the server's playout buffer, which truncates there."""
        self._require_turn_control("interrupt")
        step = Step()
        send = step.send
        current = self._current_response
        if current is not None and current in self._live:
            send.append(response_cancel_event(current))
        elif self.responses.active and not self._live:
            send.append(response_cancel_event())  # requested, not created yet
        # The cut itself is the barge-in rule's (one owner: _cut_playback), after the cancel
        # (the protocol's order: cancel, then truncate or clear).
        self._cut_playback(send, step.forward, clear_buffer=True)
        return step
