"""One conversation's trio side: its connection and the tasks that move bytes and events.

The tasks, as they run (one nursery per conversation; the transport's own tasks, if any, in a
nursery outside it so a close handshake can still complete)::

                       ┌──────────────────── reader task ─────────────────────┐
    socket/data channel│ transport.receive_batch() → parse → ConversationState │
                       │              .receive() → Step                       │
                       └──────┬──────────────────────┬────────────────────┬───┘
                    forward   │           send (control, never waits)     │ end
                              ▼                      ▼                    ▼
                     HostQueue ──► Engine.events()  Outbox ──► writer task ──► transport.send_text
                              ▲                      ▲
      Engine.close() ─ end ───┘   host calls ─ Step ─┤ (wait for space, then decide)
                                                     │
      host audio ─► audio channel ─► audio-mux task ─┴─► (WebSocket: JSON appends)
                                                  └────► transport.send_audio (WebRTC: RTP)

- reader (``_reading.ConnectionReader``, a mixin of this class): pulls whole batches from
  the transport (over WebSocket the socket read happens inside ``receive_batch()``; under
  ``duplex.aio`` the host's loop may read and hand the batches in, ``_loop_reads``), parses
  each text frame once, hands the batch to the state machine and applies its ``Step``:
  control messages into the outbox without waiting, events into the host queue (waiting
  there is the backpressure on a slow host), the end last.
- writer: the only task that sends text on the transport; drains the outbox in order. When
  a send fails it stops without deciding anything (``Outbox.orphan``): the end reaches the
  reader as the transport's ``TransportEnded``, and the reader decides.
- audio-mux: host frames → whole samples (an odd byte is carried to the next frame) → 24 kHz
  mono (soxr, ``_resample``; the ``duplex[resample]`` extra, checked in ``send_audio``) → JSON
  appends through the outbox (WebSocket) or RTP (WebRTC, sent directly: the media track is
  not the text writer's socket). G.711 frames (``audio_format="pcmu"|"pcma"``) pass through
  to a WebSocket untouched; over WebRTC they are transcoded for the Opus track and the
  track's audio is transcoded back before it reaches the host (``_g711``). A commit or
  clear first has the mux send what the resamplers hold (``FLUSH``): a turn ends whole. A
  frame the mux would pass on unchanged (24 kHz mono PCM16, nothing carried) skips it when
  the mux is idle and the transport takes it without waiting (``Transport.offer_audio``: the
  WebRTC track's queue): no task switch per host frame, and nothing submitted earlier is
  overtaken.

Every decision (what to forward, what to send, when the conversation ends) is the state
machine's (``_state_machine.py``); this module holds none. A conversation spans connections:
when the state machine ends one with a resumable ending (``_resume.classify``), ``run`` opens
the next (``_resume``/``_resumed``: handshake, replay, ``ConversationResumed``) with a fresh
``ConversationState`` that keeps the counters and the answerable handoffs; the history ledger
and the audio channel belong to the conversation, the outbox and tasks to one connection;
the host's frames an ended connection never sent pass to the next (``Outbox.take_unsent``,
``_resume.Unsent``).
The ``ConversationClosed`` the state machine returns is queued for the host here and only
here (``_emit_end``).

Channel sizes: the audio channel holds ``EngineConfig.audio_queue_size`` frames, dropped and
counted when full so ``send_audio`` never blocks the host; the outbox and host queue bounds are
in ``_queues.py``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import (
    Awaitable,
    Callable,
)
from contextlib import suppress
from typing import Final

import trio

from duplex.protocol import (
    AudioFrame,
    ClientEvent,
    Error,
    audio_append_text,
    dialect,
)
from duplex.transports import (
    MessageTooLarge,
    Transport,
    TransportClosed,
)

from ._config import EngineConfig
from ._errors import (
    ConversationClosed,
    ConversationNotRunning,
    ConversationReconnecting,
    ConversationResumed,
    ConversationStarted,
    ConversationStartError,
)
from ._g711 import G711_FORMATS, G711Transcoder
from ._history import ConversationHistory
from ._host_audio import FLUSH, AudioInbox, PcmAligner, chain, check_host_frame
from ._host_calls import HostCalls
from ._loop_reads import LoopReads
from ._queues import HostQueue, Outbox
from ._reading import ConnectionReader
from ._reconnect import TransportCounts
from ._resample import HostAudioConverter, ResamplerUnavailable
from ._resume import (
    ROTATION,
    Ending,
    Unsent,
    created_ids,
    replay_events,
    rotation,
    trim_backlog,
)
from ._session import SessionSettings, credentials
from ._state_machine import ConversationState, Step

__all__ = ["Conversation"]

logger = logging.getLogger(__name__)
wire_logger = logging.getLogger("duplex.wire")

Connect = Callable[[trio.Nursery], Awaitable[Transport]]

BYTES_PER_SAMPLE: Final = 2


class Conversation(ConnectionReader, HostCalls):
    """A conversation; created by the engine and run with ``nursery.start(conv.run)``.

    The engine talks to it through ``run``/``go``, ``close``, ``replace``, ``running``, the
    host calls (``send_text``, ``send_handoff_output``, ``update_prompt``, ``submit_audio``),
    ``delivered``, ``counters`` and ``queue_depths`` — nothing else.
    """

    def __init__(
        self,
        *,
        config: EngineConfig,
        generation: int,
        session_id: str,
        connect: Connect,
        start_event: ClientEvent,
        host: HostQueue,
        history: ConversationHistory | None = None,
        seed: list[ClientEvent] | None = None,
        session: SessionSettings | None = None,
        loop_reads: LoopReads | None = None,
    ) -> None:
        self.config = config
        self._loop_reads = loop_reads  # the host's loop reads the connection (duplex.aio)
        self.generation = generation
        self.session_id = session_id
        self._session_settings = session
        self.state = self._new_state()
        self.counters = self.state.counters
        # Long conversations (_resume.py): the ledger outlives connections; the flags below
        # are the reconnect driver's, all changed without a checkpoint in between.
        self.policy = config.reconnect
        self.history = history or ConversationHistory(
            handoff_tool_name=config.handoff_tool_name or ""
        )
        self.reconnects = 0
        self._seed = seed or []
        self._reconnecting = False  # between a resumable ending and ConversationResumed
        self._ended = False  # ConversationClosed queued, or replaced
        self._live = trio.Event()  # set while host calls may proceed (reset while reconnecting)
        self._live.set()
        self._established = False  # the current attempt got a transport
        self._attempt = 0  # attempts since the last connection that held (stable_after_s)
        self._connected_at = 0.0
        self._ending: Ending | None = None
        self._rotate_due = False
        self._respond_after_resume = False
        self._tasks: trio.Nursery | None = None
        self._work: trio.CancelScope | None = None  # the connection's tasks but the writer
        self._reading = False  # the reader waits in receive_batch (nothing of a batch held)
        self.done = trio.Event()
        self.transport: Transport | None = None
        # Counters of the transports of connections that ended (reconnects start new ones).
        self._past_counts = TransportCounts()
        self._counted: Transport | None = None
        self._version = config.version
        self._connect = connect
        self._start_event = start_event
        self._host = host
        self._outbox = Outbox()
        # The host's frames a connection that ended never sent, for the next one (_resume).
        self._unsent: list[str] = []
        self._cancel_scope = trio.CancelScope()
        self._go = trio.Event()  # the engine has announced ConversationStarted
        # Host audio → the wire: soxr for PCM16 at other rates (duplex[resample]); G.711 over
        # WebRTC is transcoded (_g711), over WebSocket it passes through.
        self._converter = HostAudioConverter()
        self._aligner = PcmAligner()  # the running mux's (a new one per connection)
        self._g711: G711Transcoder | None = None
        self._audio_send, audio_recv = trio.open_memory_channel[AudioFrame](config.audio_queue_size)
        self._audio_recv = AudioInbox(audio_recv, self._audio_send)

    def _new_state(self) -> ConversationState:
        config = self.config
        return ConversationState(
            version=config.version,
            mode=config.mode,
            forward_unknown_events=config.forward_unknown_events,
            user_text_prefix=config.user_text_prefix,
            secrets=(config.api_key, *credentials(config.tools)),
            audio_format=config.audio_format,
            session=self._session_settings,
        )

    # ---- lifecycle ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[ConversationStarted]) -> None:
        """Connect, queue the handshake, then (once the engine called ``go()``) run the tasks
        until the conversation ends — across reconnects and rotations (``_resume.py``).

        Raises (before ``task_status.started``): the connect error or the cancellation, for
        ``start()`` to translate. After it has started nothing escapes: a fault ends the
        conversation with ``Error`` + ``ConversationClosed("error")``.
        """
        try:
            with self._cancel_scope:
                ending = await self._connection(task_status)
                while ending is not None:
                    ending = await self._resume(ending)
        except Exception as exc:
            if not self._go.is_set():
                raise  # a connect failure: start() translates it
            # A bug or an unexpected transport fault after start: never take the engine down.
            logger.exception("conversation %s failed", self.session_id)
            leaf: BaseException = exc
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]  # name the fault, not the nursery's group
            message = f"internal error: {type(leaf).__name__}: {leaf}"
            if self._reconnecting:
                self._give_up(
                    Error(message, None, None, True), ConversationClosed("error", None, message)
                )
            else:
                self._emit_end(self.state.fail(message))
        finally:
            self._audio_recv.release()  # a commit waiting for the mux goes on
            self._live.set()
            self.done.set()

    async def _connection(
        self,
        task_status: trio.TaskStatus[ConversationStarted] | None = None,
        *,
        attempt: int = 0,
    ) -> Ending | None:
        """One connection: connect, handshake (and seed or replay), run the tasks until it
        ends; the transport is closed on the way out. Returns the ``Ending`` to resume from,
        or ``None`` when the conversation is over. Raises only while connecting."""
        self._established = False
        async with trio.open_nursery() as transport_nursery:
            try:
                if task_status is None:
                    with trio.fail_after(self.config.connect_timeout + self.config.close_timeout):
                        transport = await self._connect(transport_nursery)
                else:
                    transport = await self._connect(transport_nursery)
                self._established = True
                self._connected_at = trio.current_time()
                self.transport = transport
                if transport.audio_native and not self._converter.steady:
                    # The track plays host audio in real time: resampled audio must come
                    # in steady 20 ms shares, not lumps that leave a packet short (silence
                    # inside the user's speech). Nothing was converted yet: a new stream.
                    self._converter = HostAudioConverter(steady=True)
                if transport.audio_native and self.config.audio_format in G711_FORMATS:
                    self._g711 = G711Transcoder(self.config.audio_format)
                    try:
                        # The track's audio is transcoded for the host from its first
                        # frame: a missing resampler fails the start, not the first reply.
                        self._g711.check_supported()
                    except ResamplerUnavailable as exc:
                        raise ConversationStartError(
                            f"G.711 over {transport.kind} is transcoded: {exc}"
                        ) from None
                if task_status is not None:
                    step = self.state.connected(
                        session_id=self.session_id,
                        transport=transport.kind,
                        audio_native=transport.audio_native,
                        start_event=self._start_event,
                    )
                    step.send.extend(self._seed)
                    self._outbox.push_connection(self._encode(step.send))
                    started = step.forward[0]
                    assert type(started) is ConversationStarted
                    task_status.started(started)
                    # start() queues ConversationStarted and then calls go(): nothing of
                    # this conversation may reach the host before it.
                    await self._go.wait()
                    backlog: list[AudioFrame] = []
                else:
                    backlog = self._resumed(transport, attempt)
                self._ending = None
                self._rotate_due = False
                async with trio.open_nursery() as nursery:
                    self._tasks = nursery
                    nursery.start_soon(self._writer, transport)
                    # Everything but the writer, so an end can stop them and let the writer
                    # send what the host queued last (``_emit_end``).
                    try:
                        async with trio.open_nursery() as work:
                            self._work = work.cancel_scope
                            work.start_soon(self._reader, transport)
                            work.start_soon(self._audio_mux, transport, backlog)
                            if self.policy.enabled and self.policy.max_session_s is not None:
                                work.start_soon(self._rotation_timer, self.policy.max_session_s)
                    finally:
                        self._work = None
                return self._connection_ended()
            finally:
                self._outbox.close()
                if self.transport is not None:
                    with (
                        trio.CancelScope(shield=True),
                        trio.move_on_after(self.config.close_timeout),
                    ):
                        await self.transport.aclose()
                    self._fold_counts(self.transport)
                transport_nursery.cancel_scope.cancel()

    def _connection_ended(self) -> Ending | None:
        """The connection's tasks are done. If the conversation goes on, the host's frames
        it never sent (the writer finished, failed or was cancelled on the one it held) are
        kept for the next connection."""
        if self._ending is not None:
            self._unsent.extend(self._outbox.take_unsent())
        return self._ending

    async def _resume(self, ending: Ending) -> Ending | None:
        """Reconnect per the policy; the next connection's ending, or ``None`` (the
        conversation ended: resumed and then closed, or attempts spent)."""
        if trio.current_time() - self._connected_at >= self.policy.stable_after_s:
            self._attempt = 0  # the last connection held: a new drop starts a new count
        while True:
            self._attempt += 1
            attempt = self._attempt
            delay = self.policy.delay(attempt, random.random())
            if delay is None:
                self._give_up(ending.error, ending.closed)
                return None
            await self._host.push(
                self.generation, [ConversationReconnecting(attempt, ending.reason)]
            )
            await trio.sleep(delay)
            try:
                return await self._connection(attempt=attempt)
            except Exception as exc:
                if self._established:
                    raise  # a fault after the connection was up is not a failed attempt
                logger.info("reconnect attempt %d failed: %r", attempt, exc)

    def _resumed(self, transport: Transport, attempt: int) -> list[AudioFrame]:
        """The new connection is up: fresh per-connection rules (keeping the counters and
        the answerable handoffs), the handshake and replay, then ``ConversationResumed``.
        Returns the host audio queued meanwhile (the newest ``audio_buffer_ms``)."""
        old = self.state
        state = self._new_state()
        state.counters = old.counters
        state.handoffs = old.handoffs
        # Pending tool calls stay answerable; usage and latency are the conversation's.
        state.tools = old.tools
        state.usage = old.usage
        state.latency = old.latency
        settings = self._session_settings
        # The session as it is now (update_session changes included); v1 keeps its original
        # session.create, which names the backend conversation to continue.
        start_event = (
            settings.start_event()
            if settings is not None and dialect(self._version).session_config
            else self._start_event
        )
        step = state.connected(
            session_id=self.session_id,
            transport=transport.kind,
            audio_native=transport.audio_native,
            start_event=start_event,
        )
        unsent = Unsent.of(self._unsent)
        self._unsent = []
        events, replayed = replay_events(
            self.history, self.policy, self._version, leave_out=unsent.created
        )
        step.send.extend(events)
        state.expect_echoes(created_ids(events))
        requests = state.take_over_responses(
            old, cut=self._respond_after_resume, carried=unsent.requests_response
        )
        self._outbox = Outbox()
        self._outbox.push_connection(self._encode(step.send))
        self._outbox.push(unsent.carried(events if dialect(self._version).client_items else None))
        self._outbox.push(self._encode(requests))  # the host's, if this connection drops too
        frames: list[AudioFrame] = []
        while True:
            try:
                frames.append(self._audio_recv.receive_nowait())
            except trio.WouldBlock:
                break
        backlog, dropped = trim_backlog(frames, self.policy.audio_buffer_ms)
        self.counters.audio_in_dropped += dropped
        self.reconnects += 1
        self.state = state
        self._reconnecting = False
        # Without waiting (one per reconnect, like ConversationClosed): a wait here on a full
        # host queue would let the held host calls go on before the connection's tasks
        # exist, and a close() then would drop what they queued.
        self._host.push_nowait(
            self.generation, [ConversationResumed(self.session_id, attempt, replayed)]
        )
        self._live.set()
        return backlog

    def _give_up(self, error: Error | None, closed: ConversationClosed) -> None:
        step = Step()
        if error is not None:
            step.forward.append(error)
        step.end = closed
        self._emit_end(step)

    async def _rotation_timer(self, seconds: float) -> None:
        """Rotate before the server's session cap, once no response is active. An idle
        connection is ended from here (the reader is waiting for frames and holds nothing of
        a batch); otherwise the reader ends it when the active response has finished (the
        check at the top of its loop). The reader pays no cancel scope per batch for this."""
        await trio.sleep(seconds)
        self._rotate_due = True
        if self._reading and not self.state.replying:
            self._respond_after_resume = False  # nothing was cut
            self._end_connection(rotation())

    def go(self) -> None:
        """``ConversationStarted`` is queued for the host: let the tasks run."""
        self._go.set()

    def close(self) -> bool:
        """The host's ``close()``: queue ``ConversationClosed("requested")`` and stop. False
        (nothing emitted) if it was not running."""
        if self._reconnecting and not self._ended:
            step = Step()
            step.end = ConversationClosed("requested")
            return self._emit_end(step)
        return self._emit_end(self.state.close())

    def replace(self) -> None:
        """Stop without emitting anything more; drop what the host has not taken yet if it
        was running (a closed or ended conversation keeps its ``ConversationClosed``)."""
        self._cancel_scope.cancel()  # first, so a task parked on the host queue stays parked
        reconnecting = self._reconnecting and not self._ended
        self._ended = True
        self._live.set()
        if self.state.replace() or reconnecting:
            self._host.purge(self.generation)

    def _emit_end(self, step: Step) -> bool:
        """The one place a ``ConversationClosed`` is queued for the host (without waiting:
        the host may be the caller, and the state machine returns it once)."""
        if step.end is None or self._ended:
            return False
        self._ended = True
        self._live.set()
        step.forward.append(step.end)
        self._host.push_nowait(self.generation, step.forward)
        work = self._work
        if work is not None and not self._reconnecting and not self._outbox.closed:
            # A live connection: what the host's calls queued (a text sent just before
            # close(), a replay) still reaches the server. Reading and the audio mux stop
            # now; the writer sends the rest and returns, within close_timeout.
            self._outbox.close(drain=True)
            work.cancel()
            deadline = trio.current_time() + self.config.close_timeout
            self._cancel_scope.deadline = min(self._cancel_scope.deadline, deadline)
        else:
            self._outbox.close()
            self._cancel_scope.cancel()
        return True

    # ---- tasks ----------------------------------------------------------------------

    def _end_connection(self, ending: Ending) -> None:
        """End this connection's tasks; ``run`` then resumes from ``ending``.

        A rotation ends a healthy connection: the writer may finish the frame it is sending
        (within ``close_timeout``), so a large frame is not cut part-way and lost. Any other
        ending stops it at once: its socket may never take the rest."""
        if not self._reconnecting:
            self._reconnecting = True
            self._live = trio.Event()
        self._ending = ending
        self._outbox.stop()  # what it holds is taken once the tasks are done (_connection)
        if self._tasks is None:
            return
        work = self._work
        if ending.reason == ROTATION and work is not None:
            work.cancel()
            scope = self._tasks.cancel_scope
            scope.deadline = min(scope.deadline, trio.current_time() + self.config.close_timeout)
        else:
            self._tasks.cancel_scope.cancel()

    async def _writer(self, transport: Transport) -> None:
        """The only task that sends text on the transport."""
        outbox = self._outbox
        while True:
            text = await outbox.next()
            if text is None:
                return
            if wire_logger.isEnabledFor(logging.DEBUG):
                wire_logger.debug("→ %s (%d chars)", _frame_type(text), len(text))
            try:
                await transport.send_text(text)
            except MessageTooLarge as exc:
                # Host calls are refused before this (HostCalls._check_fits); a frame the
                # engine builds later (a deferred response.create, a replayed item) is
                # dropped, not allowed to end a healthy connection.
                logger.warning("an event was not sent: %s", exc)
                continue
            except TransportClosed:
                # The connection is gone, and its end reaches the reader as the transport's
                # TransportEnded (the transport contract). Whether the conversation resumes
                # is the reader's decision: until then host calls are still queued, up to
                # the bound (carried to the next connection, or dropped with the end), not
                # refused while the conversation may yet go on.
                outbox.orphan(text)
                return

    async def _audio_mux(self, transport: Transport, backlog: list[AudioFrame]) -> None:
        """Host audio → whole samples → 24 kHz mono → the wire (JSON appends, or RTP).

        G.711 frames pass through to a WebSocket untouched and are transcoded for the track.
        ``backlog``: audio the host sent while reconnecting, sent first."""
        convert = self._converter.convert
        self._aligner = aligner = PcmAligner()
        align = aligner.align
        outbox = self._outbox
        counters = self.counters
        native = transport.audio_native
        g711 = self._g711
        async for frame in chain(backlog, self._audio_recv):
            if frame is FLUSH:
                # A commit or clear: the resamplers' buffered tails end this turn, not the next.
                pcm = self._converter.flush()
                if g711 is not None:
                    pcm += g711.flush_track()
                frame = AudioFrame(pcm)
            elif frame.encoding != "pcm16":
                if g711 is not None:
                    frame = g711.to_track(frame)
            else:
                frame = AudioFrame(convert(align(frame)))
            if not frame.pcm:
                continue
            if native:
                try:
                    await transport.send_audio(frame)
                except TransportClosed:
                    return
            else:
                try:
                    await outbox.wait_writable()
                    outbox.push((audio_append_text(frame.pcm),))
                except ConversationNotRunning:
                    return
                counters.client_events += 1
                if outbox.orphaned:
                    # The connection has ended: later audio waits in the channel for the
                    # next one (the newest audio_buffer_ms of it), not in the outbox, whose
                    # room is kept for the host's calls.
                    return

    def submit_audio(self, frame: AudioFrame) -> bool:
        """Queue host audio without blocking; False (and counted) when the queue is full.
        While reconnecting it is held (``ReconnectPolicy.audio_buffer_ms`` of it is sent
        once resumed)."""
        held = self._reconnecting and not self._ended
        if held:
            # The same refusals as when connected (the state machine's check needs a
            # running connection): a frame refused now would be refused when resumed.
            check_host_frame(frame, self.config.audio_format)
        else:
            self.state.check_audio(frame)
        if frame.encoding == "pcm16":
            self._converter.check_supported(frame)
        elif self._g711 is not None:
            self._g711.check_supported()
        transport = self.transport
        if (
            # The mux's work done right here, when it would change nothing (wire-format
            # frame, nothing carried) and nothing waits before this frame: one task switch
            # less per host frame on a track that never blocks (WebRTC).
            self._audio_recv.parked
            and not self._reconnecting
            and transport is not None
            and frame.encoding == "pcm16"
            and frame.pcm
            and self._aligner.empty
            and self._converter.passes_through(frame)
            and transport.offer_audio(frame)
        ):
            self.counters.audio_in += 1
            return True
        try:
            self._audio_send.send_nowait(frame)
        except trio.WouldBlock:
            self.counters.audio_in_dropped += 1
            if not held:
                return False
            # Reconnecting: nothing drains the channel until the resume takes its newest
            # ``audio_buffer_ms``, so the oldest frame makes room, not the newest speech.
            with suppress(trio.WouldBlock):
                self._audio_recv.receive_nowait()
            self._audio_send.send_nowait(frame)
        self._audio_recv.busy()
        self.counters.audio_in += 1
        return True

    def _fold_counts(self, transport: Transport) -> None:
        # Once per transport: a failed reconnect attempt leaves the last one in place.
        if transport is not self._counted:
            self._past_counts += TransportCounts.of(transport.statistics())
            self._counted = transport

    def transport_counts(self) -> TransportCounts:
        """Transport counters over every connection of this conversation so far."""
        transport = self.transport
        if transport is None or transport is self._counted:
            return self._past_counts
        return self._past_counts + TransportCounts.of(transport.statistics())

    def queue_depths(self) -> dict[str, int]:
        return {
            "audio_in": self._audio_send.statistics().current_buffer_used,
            "outbound": self._outbox.depth(),
        }


def _frame_type(text: str) -> str:
    # Wire logging names the event type without decoding the frame (and never logs audio).
    start = text.find('"type":"')
    if start < 0:
        return "?"
    start += 8
    end = text.find('"', start)
    return text[start:end] if 0 < end - start < 80 else "?"
