"""One conversation: its connection and its actors, all in one nursery.

Actors (SPEC §3), each a trio task, each holding only the channel ends it uses:

    transport ──receive_batch()──► parser ──► session-state ──► host channel ──► events()
        ▲                                        │    │
        │ (the only writer)                      │    └──► handoff ──┐
        └──────────── outbound text ◄────────────┴───────────────────┤
                                                 audio-mux ◄── host audio (drop when full)

- transport: the ``Transport`` object (its own tasks, if any, live in this nursery) plus the
  writer task, the only task that sends on it.
- parser: pulls whole batches from the transport (the transport's inbox is the hop, so there
  is no extra channel between them; over WebSocket the socket read itself happens inside
  this task's ``receive_batch()``, so a realtime event wakes just this task and the host),
  parses each text frame once, and passes one list on.
- session-state: transcript accumulation, the single-active-response queue, barge-in
  truncation, the error policy and the natural end of the conversation; delivers batches to
  the host channel.
- handoff: encodes handoff replies (steering acks, no-op replies, host outputs) per dialect.
- audio-mux: host frames → 24 kHz mono → JSON appends (WebSocket) or RTP (WebRTC).

Channel sizes: parser→session 4 batches (lets parsing of the next network wakeup overlap the
host's consumption of the previous one; a batch is what one wakeup delivered, so memory is
bounded by 4 wakeups); outbound 64 frames and handoff 64 messages (the Rust original's text
and handoff-out bounds: enough for a burst of typed input, small enough that a stalled socket
shows up as backpressure within ~1 s of audio); audio in = ``EngineConfig.audio_queue_size``
frames, dropped and counted when full so ``send_audio`` never blocks the host.

Lifecycle invariants: a conversation emits ``ConversationStarted`` first and, unless it is
replaced, exactly one ``ConversationClosed`` last. ``state`` moves running → {closing,
replaced, ended} once; only the transition out of running may emit ``ConversationClosed``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import attrs
import trio

from duplex.protocol import (
    AudioFrame,
    AudioOut,
    ClientEvent,
    ConversationItemAdded,
    Error,
    HandoffRequested,
    InputAudioSpeechStarted,
    NoopRequested,
    OutputTranscriptDelta,
    ParseFailure,
    ProtocolVersion,
    Resampler,
    ResponseCancelled,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionMode,
    TranscriptAccumulator,
    UnknownEvent,
    audio_append_text,
    encode_client_event,
    handoff_output_events,
    noop_reply_event,
    parse_server_event,
    response_create_event,
    steering_ack_event,
    truncate_event,
)
from duplex.transports import Transport, TransportClosed, TransportEnded

from ._config import EngineConfig
from ._errors import ConversationClosed, ConversationStarted
from ._state import ACTIVE_RESPONSE_CODE, AudioLedger, HandoffState, ResponseQueue

__all__ = ["Conversation", "HostBatch"]

logger = logging.getLogger(__name__)
wire_logger = logging.getLogger("duplex.wire")

# What the host channel carries: the conversation's generation and a batch of events.
HostBatch = tuple[int, list[Any]]

RUNNING: Final = "running"
CLOSING: Final = "closing"  # close() is tearing it down; close() emits ConversationClosed
REPLACED: Final = "replaced"  # start() replaced it; nothing more is emitted
ENDED: Final = "ended"  # it ended by itself and emitted ConversationClosed

OUTBOUND_FRAMES: Final = 64
HANDOFF_MESSAGES: Final = 64


@attrs.define
class Counters:
    """Mutable per-conversation counters behind ``EngineStatistics``."""

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


@attrs.frozen
class _Steer:
    call_id: str


@attrs.frozen
class _Noop:
    call_id: str


@attrs.frozen
class _Output:
    handoff_id: str
    text: str
    final: bool


_HandoffMessage = _Steer | _Noop | _Output


class Conversation:
    """A running conversation. Created by the engine, run with ``nursery.start(conv.run)``."""

    def __init__(
        self,
        *,
        config: EngineConfig,
        generation: int,
        session_id: str,
        connect: Callable[[trio.Nursery], Any],
        start_event: ClientEvent,
        host_send: trio.MemorySendChannel[HostBatch],
        send_late: Callable[[HostBatch, trio.Event], None] | None = None,
    ) -> None:
        self.config = config
        self.version: ProtocolVersion = config.version
        self.generation = generation
        self.session_id = session_id
        self.state = RUNNING
        self.done = trio.Event()
        self.counters = Counters()
        self.responses = ResponseQueue()
        self.ledger = AudioLedger()
        self.handoffs = HandoffState()
        self.transport: Transport | None = None
        self._connect = connect
        self._start_event = start_event
        self._host_send = host_send
        self._send_late = send_late
        self._cancel_scope = trio.CancelScope()
        self._accumulator = TranscriptAccumulator()
        self._resampler = Resampler()
        self._current_item: str | None = None  # for tagging WebRTC media audio
        self._current_response: str | None = None
        self._fatal: Error | None = None
        self.out_send, self._out_recv = trio.open_memory_channel[str](OUTBOUND_FRAMES)
        self.audio_send, self._audio_recv = trio.open_memory_channel[AudioFrame](
            config.audio_queue_size
        )
        self.handoff_send, self._handoff_recv = trio.open_memory_channel[_HandoffMessage](
            HANDOFF_MESSAGES
        )
        self._observe = self._accumulator.observe
        self._effect_table = self._effects()

    # ---- lifecycle ------------------------------------------------------------------

    def cancel(self, new_state: str) -> bool:
        """Leave the running state (for close/replace) and stop every task. True if it was
        running, i.e. the caller now owns the ``ConversationClosed`` decision."""
        was_running = self.state == RUNNING
        if was_running:
            self.state = new_state
        self._cancel_scope.cancel()
        return was_running

    async def run(self, *, task_status: trio.TaskStatus[ConversationStarted]) -> None:
        """Connect, send the handshake, run the actors until the conversation ends.

        Raises (before ``task_status.started``): the connect error, for ``start()`` to
        translate. After it has started nothing escapes: faults end the conversation with
        ``ConversationClosed("error")``.
        """
        try:
            # The transport's own tasks (its reader) live in ``transport_nursery``, outside
            # the cancel scope that stops the actors, so ``aclose()`` below still has a
            # reader to complete the close handshake; cancelling them first made every
            # close()/replace wait the whole close timeout.
            async with trio.open_nursery() as transport_nursery:
                try:
                    with self._cancel_scope:
                        self.transport = await self._connect(transport_nursery)
                        await self._send(encode_client_event(self._start_event, self.version))
                        started = ConversationStarted(
                            self.session_id, self.version.value, self.transport.kind
                        )
                        await self._announce(started)
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._writer)
                            nursery.start_soon(self._parser)
                            nursery.start_soon(self._handoff)
                            nursery.start_soon(self._audio_mux)
                            task_status.started(started)
                finally:
                    if self.transport is not None:
                        with (
                            trio.CancelScope(shield=True),
                            trio.move_on_after(self.config.close_timeout),
                        ):
                            await self.transport.aclose()
                    transport_nursery.cancel_scope.cancel()
        except Exception as exc:
            if self.transport is None or self.state == REPLACED:
                raise
            # A bug or an unexpected transport fault after start: never take the engine down.
            logger.exception("conversation %s failed", self.session_id)
            await self._end_with_error(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self.done.set()

    async def _announce(self, started: ConversationStarted) -> None:
        """Queue ``ConversationStarted`` without waiting for the host to read: the host
        channel may still be full of the replaced conversation's batches, and the host may
        be the task calling ``start()``. The engine's late sender is queued (FIFO) before
        any of this conversation's other events can be."""
        item = (self.generation, [started])
        try:
            self._host_send.send_nowait(item)
        except trio.WouldBlock:
            if self._send_late is None:
                await self._host_send.send(item)
                return
            queued = trio.Event()
            self._send_late(item, queued)
            await queued.wait()

    async def _end_with_error(self, message: str) -> None:
        if self.state != RUNNING:
            return
        self.state = ENDED
        with trio.CancelScope(shield=True), trio.move_on_after(self.config.close_timeout):
            await self._host_send.send(
                (
                    self.generation,
                    [Error(message, None, None, True), ConversationClosed("error", None, message)],
                )
            )

    async def _send(self, text: str) -> None:
        """Queue one outbound frame for the writer."""
        self.counters.client_events += 1
        await self.out_send.send(text)

    async def send_client_event(self, event: ClientEvent) -> None:
        await self._send(encode_client_event(event, self.version))

    async def request_response(self) -> None:
        """``response.create`` through the single-active-response queue."""
        if self.responses.request():
            await self.send_client_event(response_create_event())

    # ---- actors ---------------------------------------------------------------------

    async def _writer(self) -> None:
        """The transport actor's writing half: the only task that sends on the transport."""
        assert self.transport is not None
        transport = self.transport
        async with self._out_recv:
            async for text in self._out_recv:
                if wire_logger.isEnabledFor(logging.DEBUG):
                    wire_logger.debug("→ %s (%d chars)", _frame_type(text), len(text))
                try:
                    await transport.send_text(text)
                except TransportClosed:
                    # The end reaches the host through the transport's TransportEnded.
                    return

    async def _parser(self) -> None:
        """Batches of frames → batches of events: one decode per frame, nothing copied."""
        assert self.transport is not None
        transport = self.transport
        version = self.version
        handoff_tool = self.config.handoff_tool_name
        silence_tool = self.config.silence_tool_name or ""
        media_audio = transport.audio_native
        counters = self.counters
        debug_wire = wire_logger.isEnabledFor(logging.DEBUG)
        apply_batch = self._session_state
        while True:
            try:
                batch = await transport.receive_batch()
            except TransportClosed:
                return
            events: list[ServerEvent] = []
            ended: TransportEnded | None = None
            for item in batch:
                if type(item) is str:
                    event = parse_server_event(
                        item,
                        version,
                        handoff_tool_name=handoff_tool,
                        silence_tool_name=silence_tool,
                    )
                    if debug_wire:
                        wire_logger.debug("← %s (%d chars)", event.TYPE, len(item))
                    if media_audio and type(event) is AudioOut:
                        # On WebRTC the media track is the audio; a server that also sends
                        # deltas on the data channel would double it.
                        continue
                    events.append(event)
                elif type(item) is AudioFrame:
                    events.append(AudioOut(item))
                else:
                    assert isinstance(item, TransportEnded)
                    ended = item
            counters.server_events += len(events)
            if not await apply_batch(events, ended):
                return

    async def _session_state(self, events: list[ServerEvent], ended: TransportEnded | None) -> bool:
        """The session-state actor's step: apply each event's side effects and hand the batch
        to the host. Returns False once the conversation has ended.

        It runs in the parser's task: the parser→session-state hop carried no decision, only
        a scheduler round trip per network wakeup (SPEC §3 hot-path rule), so it was removed.
        """
        out: list[Any] = []
        observe = self._observe
        effects = self._effect_table
        for event in events:
            kind = type(event)
            if kind is AudioOut:
                audio = self._audio_out(event)  # type: ignore[arg-type]
                if audio is not None:
                    out.append(audio)
                continue
            event = observe(event)
            effect = effects.get(kind)
            if effect is not None and not await effect(event):
                continue
            out.append(event)
        if out:
            try:
                # The parser's receive_batch() already checkpointed for this batch; the
                # blocking send() would add a second task step per batch for nothing.
                self._host_send.send_nowait((self.generation, out))
            except trio.WouldBlock:
                await self._host_send.send((self.generation, out))  # backpressure
        if self._fatal is not None:
            await self._finish(ConversationClosed("error", None, self._fatal.message))
            return False
        if ended is not None:
            await self._transport_ended(ended)
            return False
        return True

    def _effects(self) -> dict[type[Any], Callable[[Any], Any]]:
        """Per event type: an async side effect returning whether to forward the event."""
        return {
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
        }

    def _audio_out(self, event: AudioOut) -> AudioOut | None:
        item_id = event.item_id
        if item_id is None and self._current_item is not None:
            # WebRTC media audio carries no ids: attribute it to the item being spoken.
            event = AudioOut(event.frame, self._current_item, self._current_response)
            item_id = self._current_item
        if item_id is not None:
            if self.ledger.is_truncated(item_id):
                self.counters.stale_audio_dropped += 1
                return None
            self.ledger.received(item_id, event.frame.duration_ms)
        self.counters.audio_out += 1
        return event

    async def _on_response_created(self, event: ResponseCreated) -> bool:
        self.responses.started()
        self._current_response = event.response_id
        return True

    async def _on_response_finished(self, event: ResponseDone | ResponseCancelled) -> bool:
        if self.responses.finished():
            await self.send_client_event(response_create_event())
        return True

    async def _on_output_text(self, event: OutputTranscriptDelta) -> bool:
        if event.item_id is not None:
            self._current_item = event.item_id
        return True

    async def _on_item_added(self, event: ConversationItemAdded) -> bool:
        item = event.item
        if item.role == "assistant" and item.id is not None:
            self._current_item = item.id
        return True

    async def _on_speech_started(self, event: InputAudioSpeechStarted) -> bool:
        # Barge-in (v2 over WebSocket). Over WebRTC the server knows what was played and
        # truncates by itself (openai-realtime-protocol.md §6).
        transport = self.transport
        if (
            self.version is ProtocolVersion.V2
            and transport is not None
            and not transport.audio_native
        ):
            point = self.ledger.barge_in_point(response_active=self.responses.active)
            if point is not None:
                self.counters.truncations += 1
                await self.send_client_event(truncate_event(point[0], point[1]))
        return True

    async def _on_error(self, event: Error) -> bool:
        if event.fatal:
            self._fatal = event
        elif event.code == ACTIVE_RESPONSE_CODE:
            self.responses.rejected_as_active()
        return True

    async def _on_handoff(self, event: HandoffRequested) -> bool:
        state = self.handoffs
        if not state.first_time(event.handoff_id):
            self.counters.duplicate_calls += 1
            return False
        if self.version is ProtocolVersion.V2 and state.active is not None:
            # A second request while one runs steers the first: acknowledge the new call now.
            await self.handoff_send.send(_Steer(event.handoff_id))
            return True
        state.active = event.handoff_id
        state.answerable.add(event.handoff_id)
        return True

    async def _on_noop(self, event: NoopRequested) -> bool:
        if not self.handoffs.first_time(event.call_id):
            self.counters.duplicate_calls += 1
            return False
        await self.handoff_send.send(_Noop(event.call_id))
        return True

    async def _on_unknown(self, event: UnknownEvent) -> bool:
        self.counters.unknown_events += 1
        return self.config.forward_unknown_events

    async def _on_parse_failure(self, event: ParseFailure) -> bool:
        self.counters.parse_failures += 1
        logger.warning("unparseable server frame: %s (%s)", event.reason, event.preview)
        return True

    async def _transport_ended(self, ended: TransportEnded) -> None:
        if ended.reason == "requested":
            return  # we closed it: close() or start() owns the lifecycle event
        if ended.reason == "closed" and (ended.code is None or ended.code < 4000):
            await self._finish(ConversationClosed("transport_closed", ended.code, ended.error))
            return
        message = ended.error or f"connection closed with code {ended.code}"
        if self.state == RUNNING:
            await self._host_send.send(
                (self.generation, [Error(f"transport failed: {message}", None, None, True)])
            )
        await self._finish(ConversationClosed("error", ended.code, message))

    async def _finish(self, closed: ConversationClosed) -> None:
        """The natural end: emit ``ConversationClosed`` (if nobody else owns it) and stop."""
        if self.state != RUNNING:
            return
        self.state = ENDED
        await self._host_send.send((self.generation, [closed]))
        self._cancel_scope.cancel()

    async def _handoff(self) -> None:
        """Encode handoff replies in the session's dialect and send them in order."""
        version = self.version
        v2 = version is ProtocolVersion.V2
        async with self._handoff_recv:
            async for message in self._handoff_recv:
                if type(message) is _Steer:
                    await self.send_client_event(steering_ack_event(version, message.call_id))
                    await self.request_response()
                elif type(message) is _Noop:
                    # No response.create: the model chose silence.
                    await self.send_client_event(noop_reply_event(version, message.call_id))
                else:
                    assert type(message) is _Output
                    for event in handoff_output_events(
                        version, message.handoff_id, message.text, final=message.final
                    ):
                        await self.send_client_event(event)
                    if message.final:
                        self.handoffs.finish(message.handoff_id)
                        if v2:
                            # Progress is context for the model ([BACKEND] items); only the
                            # final output asks it to speak, as in the Rust original.
                            await self.request_response()

    async def _audio_mux(self) -> None:
        """Host audio → 24 kHz mono → the wire (JSON appends, or RTP on WebRTC)."""
        assert self.transport is not None
        transport = self.transport
        convert = self._resampler.convert
        async with self._audio_recv:
            async for frame in self._audio_recv:
                frame = convert(frame)
                if not frame.pcm:
                    continue
                if transport.audio_native:
                    try:
                        await transport.send_audio(frame)
                    except TransportClosed:
                        return
                else:
                    await self._send(audio_append_text(frame.pcm))

    # ---- host-facing helpers ----------------------------------------------------------

    def submit_audio(self, frame: AudioFrame) -> bool:
        """Queue host audio without blocking; False (and counted) when the queue is full."""
        try:
            self.audio_send.send_nowait(frame)
        except trio.WouldBlock:
            self.counters.audio_in_dropped += 1
            return False
        self.counters.audio_in += 1
        return True

    async def submit_handoff_output(self, handoff_id: str, text: str, *, final: bool) -> None:
        await self.handoff_send.send(_Output(handoff_id, text, final))

    def delivered(self, event: AudioOut) -> None:
        """The host took ``event`` from ``events()``: that much of the item reached it."""
        if event.item_id is not None:
            self.ledger.delivered(event.item_id, event.frame.duration_ms)

    def queue_depths(self) -> dict[str, int]:
        return {
            "audio_in": self.audio_send.statistics().current_buffer_used,
            "outbound": self.out_send.statistics().current_buffer_used,
            "handoff": self.handoff_send.statistics().current_buffer_used,
        }

    @property
    def transcription(self) -> bool:
        return self.config.mode is SessionMode.TRANSCRIPTION


def _frame_type(text: str) -> str:
    # Wire logging names the event type without decoding the frame (and never logs audio).
    start = text.find('"type":"')
    if start < 0:
        return "?"
    start += 8
    end = text.find('"', start)
    return text[start:end] if 0 < end - start < 80 else "?"
