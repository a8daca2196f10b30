"""``duplex.aio.open_engine`` and ``AsyncioEngine``: the host API for asyncio code (SPEC §3.6).

Each ``AsyncioEngine`` drives one ``duplex.engine.Engine`` that lives in the loop's trio run
(``_trio_run``): a trio task holds the engine's ``open_engine`` block and a nursery of calls;
every awaitable method sends its work there and waits for the answer on an asyncio future.

Invariants:
- Same methods, events and errors as ``duplex.engine.Engine``: the trio engine raises, the
  exception instance is handed to the asyncio caller as is (never an exception group).
- Cancellation both ways: cancelling the asyncio task awaiting a call cancels that call's
  trio scope and waits until the trio side has finished (so ``start()`` cancelled half-way
  leaves no conversation behind); leaving the block (normally, by an exception or by
  cancellation) shuts the trio engine down and waits for it; a call or an ``events()``
  iteration pending then ends (``EngineClosed`` / ``StopAsyncIteration``), as does any call
  made after the block.
- ``send_audio`` is synchronous and never blocks: frames go to a bounded staging queue
  (``EngineConfig.audio_queue_size``; full → dropped, counted, ``False``) that the trio side
  drains into the engine's own bounded queue on its next tick.
- Backpressure: events move from the engine's (bounded) host queue to the asyncio side as
  the engine queues them (a listener on that queue, in the queuing trio task: no pump task,
  one asyncio wake-up per batch) and stop moving when ``EVENT_WINDOW`` events (or
  ``AUDIO_AHEAD_MS`` of model audio) wait unread there; the rest wait in the engine's queue,
  so a slow asyncio consumer stops the engine reading the network exactly as a slow trio
  host does. Once the consumer is down to half the window it asks trio to move more.
- Reading (guest mode): the loop watches a plain-TCP WebSocket conversation's socket and runs
  the engine's reader step in its readiness callback (``engine/_loop_reads.py``), so an event
  costs no trio wake-up; whatever must wait goes back to trio's reader task.
- ``events()`` iterators share one position (as in trio) and are cancel-safe: a cancelled
  ``__anext__`` loses nothing.
- A ``KeyboardInterrupt``/``SystemExit`` raised in this engine's trio code is the host's: a
  call's is raised to its caller, any other escapes the loop (``TrioRun.raise_in_host``); the
  loop's shared run goes on. Should the run end anyway, the engine ends with it (its calls
  raise ``EngineClosed``, its ``events()`` end) instead of waiting for it forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import Any, TypeVar, final, get_args

import attrs
import trio

from duplex.engine import (
    AudioFrame,
    AudioOut,
    ConversationClosed,
    ConversationNotRunning,
    ConversationStarted,
    Engine,
    EngineClosed,
    EngineConfig,
    EngineError,
    EngineStatistics,
    HistoryItem,
    HostEvent,
    SessionConfig,
    Tool,
    open_engine as open_trio_engine,
)
from duplex.engine._engine import check_config
from duplex.engine._host_audio import check_host_frame, check_played_ms
from duplex.engine._loop_reads import LoopReads
from duplex.engine._resample import HostAudioConverter
from duplex.protocol import ProtocolVersion

from ._trio_run import (
    Mechanism,
    TrioRun,
    acquire_run,
    host_interrupt,
    settle as _settle,
    wait_settled,
)

__all__ = ["AUDIO_AHEAD_MS", "EVENT_WINDOW", "AsyncioEngine", "AsyncioEventStream", "open_engine"]

logger = logging.getLogger(__name__)

#: Stateless use only (``check_supported``): whether a frame could be converted at all.
_RESAMPLER_CHECK = HostAudioConverter()

T = TypeVar("T")

#: How far the handoff may run ahead of the asyncio consumer: this many events, and this much
#: model audio (``AudioOut`` counts as taken by the host, for barge-in, when it is handed
#: over, so a host that reads at playback pace is cut at most ``AUDIO_AHEAD_MS`` late). Each
#: time the handoff has to stop, the consumer wakes trio again, which in guest mode costs a
#: round trip through trio's I/O thread: the bounds trade that cost against memory and
#: barge-in precision (burst CPU per event, docs/aio.md: window 8 → 27 µs, 64 → 24 µs).
EVENT_WINDOW = 64
AUDIO_AHEAD_MS = 200.0

TransportFactory = Callable[[trio.Nursery], Awaitable[Any]]


@asynccontextmanager
async def open_engine(
    config: EngineConfig,
    *,
    transport_factory: TransportFactory | None = None,
    mechanism: Mechanism = "guest",
) -> AsyncIterator[AsyncioEngine]:
    """Run an engine for the duration of the ``async with`` block, from asyncio code.

    Args:
        config: connection and session settings.
        transport_factory: as for ``duplex.engine.open_engine`` (a trio coroutine function;
            it runs on the trio side).
        mechanism: ``"guest"`` (trio's guest mode on this loop, the default) or
            ``"thread"`` (trio on its own thread, for loops that cannot host a guest run).

    On exit any running conversation is cancelled (no further events) and ``events()``
    iterators end.
    """
    check_config(config)
    if mechanism not in get_args(Mechanism):
        # Checked here: anything but "guest" would otherwise run the thread mechanism.
        allowed = " or ".join(repr(m) for m in get_args(Mechanism))
        raise ValueError(f"mechanism must be {allowed}, not {mechanism!r}")
    run = await acquire_run(mechanism)
    try:
        engine = AsyncioEngine(run, config, transport_factory)
        try:
            await engine._open()
            yield engine
        finally:
            # Also when opening failed or was cancelled: the loop's trio run may serve other
            # engines and outlive this one, so its trio task must end here.
            await engine._shutdown()
    finally:
        await run.release()


class AsyncioEngine:
    """``duplex.engine.Engine`` for asyncio code. Create it with ``duplex.aio.open_engine``."""

    def __init__(
        self, run: TrioRun, config: EngineConfig, transport_factory: TransportFactory | None
    ) -> None:
        self.config = config
        self._run = run
        self._loop = run.loop
        self._transport_factory = transport_factory
        # Trio side, set while the trio engine's block is open.
        self._engine: Engine | None = None
        # The engine's last figures, kept when its trio side ends: statistics() after the
        # block reports them, as the trio engine does after its own block.
        self._final: EngineStatistics | None = None
        self._calls: trio.Nursery | None = None
        # Set (in trio) to end the trio side; made here so a request can never be missed.
        self._exit = trio.Event()
        self._attached = False
        # Called (in trio) once the consumer has made room: moves the events that wait.
        self._resume: Callable[[], object] | None = None
        self._wake_pending = False  # a call of ``_wake`` is on its way to the asyncio side
        # Handed over (written by the trio side only): events, audio ms.
        self._sent = 0
        self._sent_ms = 0.0
        # asyncio side.
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._finished: asyncio.Future[None] = self._loop.create_future()
        # Calls waiting for the trio side: ended by ``_run_ended`` if the run dies under them.
        self._pending: set[asyncio.Future[Any]] = set()
        self._serve_spawned = False
        self._closed = False
        self._running = False  # as this side last knew it: start() returned, no end seen
        # (generation, event): the generation lets ``start()`` drop a replaced conversation's
        # events that were handed over but not read (``_drop``).
        self._events: deque[tuple[int, HostEvent]] = deque()
        self._taken = 0  # taken by the consumer (written by the asyncio side only)
        self._taken_ms = 0.0
        self._ended = False
        # Consumers waiting for events (usually one; every one is woken and re-checks).
        self._waiters: list[asyncio.Future[None]] = []
        self._audio: deque[AudioFrame] = deque()
        self._audio_dropped = 0
        self._audio_refused = 0  # frames the trio side refused (written there only)
        self._started_session: str | None = None  # of the latest start()
        self._reading_session: str | None = None  # of the last ConversationStarted read

    # ---- lifecycle ----------------------------------------------------------------------

    async def _open(self) -> None:
        self._run._ended.add_done_callback(self._run_ended)
        self._run.submit(self._spawn_serve, retry=True)
        await wait_settled(self._opened)
        self._opened.result()

    def _run_ended(self, _: object) -> None:
        # The loop's trio run ended under this engine (a KeyboardInterrupt reached trio's
        # scheduler: trio ends the run without running its tasks' cleanup), so nothing of the
        # trio side will answer: end here what waits for it.
        self._closed = True
        _settle(self._opened, EngineClosed())
        for future in self._pending:
            _settle(future, EngineClosed())
        self._serve_ended()

    def _spawn_serve(self) -> None:
        if self._serve_spawned:
            return  # submitted again after an interrupt that landed once it had spawned
        nursery = self._run.nursery
        assert nursery is not None  # submit() works only once the run has its nursery
        self._serve_spawned = True
        nursery.start_soon(self._serve)

    async def _serve(self) -> None:
        """The trio side of the engine's whole life (a task of the loop's trio run)."""
        deliver = self._run.deliver
        opened = False
        try:
            async with (
                open_trio_engine(self.config, transport_factory=self._transport_factory) as engine,
                trio.open_nursery() as calls,
            ):
                self._engine, self._calls = engine, calls
                if self._run.mechanism == "guest":
                    # The loop reads the connections itself: no trio wake-up per event.
                    to_trio = partial(self._run.submit, retry=True)
                    engine._read_on_loop(LoopReads(_LoopWatch(self._loop), to_trio))
                engine._on_purge(lambda generation: deliver(self._drop, generation))
                deliver(_settle, self._opened, None)
                opened = True
                await self._exit.wait()
                calls.cancel_scope.cancel()
        except Exception as exc:  # a bug in the engine: report it once, as one exception
            logger.exception("duplex.aio: the engine failed")
            deliver(_settle, self._opened, _single(exc))
        except BaseException as exc:
            interrupt = host_interrupt(exc)
            if interrupt is None:
                raise  # trio's cancellation (the run is ending)
            # A KeyboardInterrupt/SystemExit landed in one of this engine's trio tasks (a
            # signal handler raises it in whatever runs on the loop's thread). This engine's
            # trio side has ended; the interrupt goes to the host, to the task opening the
            # engine if there is one, else out of the loop, and the loop's shared run (other
            # engines) goes on.
            if opened:
                self._run.raise_in_host(interrupt)
            else:
                deliver(_settle, self._opened, interrupt)
        finally:
            if self._engine is not None:
                self._move_rest(self._engine)
                self._final = self._engine.statistics()
            self._engine = self._calls = None
            deliver(self._serve_ended)

    def _serve_ended(self) -> None:
        self._running = False
        self._end_events()
        # A call whose spawn an interrupt cut short would otherwise wait for ever.
        for future in list(self._pending):
            _settle(future, EngineClosed())
        _settle(self._finished, None)

    async def _shutdown(self) -> None:
        self._closed = True
        self._running = False
        self._run.submit(self._request_exit, retry=True)
        try:
            await wait_settled(self._finished)
        finally:
            # Also when the exit is cancelled again: the shared run must not keep a closed
            # engine alive through its callback.
            self._run._ended.remove_done_callback(self._run_ended)

    def _request_exit(self) -> None:
        self._exit.set()

    async def start(
        self,
        prompt: str | None = None,
        conversation_id: str | None = None,
        *,
        history: Sequence[HistoryItem] = (),
    ) -> ConversationStarted:
        """Connect and start a conversation, replacing any running one (see ``Engine.start``;
        ``history`` seeds prior items).

        Raises:
            ConversationStartError: invalid settings or the connection failed.
        """
        # The old conversation ends here whatever the outcome (as in trio), and its staged
        # audio is not the new one's.
        self._running = False
        self._audio.clear()
        items = tuple(history)
        try:
            started = await self._call(
                lambda engine: engine.start(prompt, conversation_id, history=items)
            )
        except EngineError:
            # A start refused before it replaced anything (history= on v1) leaves the old
            # conversation running, as under trio: the asyncio side follows what trio says.
            if not self._closed:
                with suppress(EngineClosed):
                    self._running = await self._call(_still_running)
            raise
        except asyncio.CancelledError:
            # The trio side may have finished the start just as this task was cancelled
            # (its result on the way here). Under trio a cancelled start() has begun
            # nothing; so here too: whatever runs now is withdrawn as start() replaces a
            # conversation — silently, its undelivered events dropped — before re-raising.
            if not self._closed:  # a closed engine has nothing running to withdraw
                with suppress(EngineClosed):
                    await self._call(lambda engine: engine._withdraw())
            raise
        self._running = True
        self._started_session = started.session_id
        return started

    async def close(self) -> bool:
        """Close the running conversation (see ``Engine.close``)."""
        closed = await self._call(lambda engine: engine.close())
        self._running = False
        return closed

    # ---- input --------------------------------------------------------------------------

    def send_audio(self, frame: AudioFrame) -> bool:
        """Queue microphone audio. Never blocks; call it from the loop's thread.

        Returns:
            False when the queue was full and the frame was dropped (counted in
            ``statistics().audio_frames_dropped``).

        Raises:
            ConversationNotRunning: no conversation is running (as of the last ``start()``,
                ``close()``, the conversation's ``ConversationClosed`` or a refused frame).
            InvalidAudioFrame: the frame's shape or encoding is not one the session takes
                (checked here, before it is queued: see ``Engine.send_audio``).
            ResamplerUnavailable: the frame needs resampling and ``duplex[resample]`` is
                not installed.
            EngineClosed: the ``open_engine`` block has exited.
        """
        if self._closed:
            raise EngineClosed()
        if not self._running:
            raise ConversationNotRunning()
        # Everything the trio side would refuse is refused here, in the caller: a refusal
        # over there could only be logged, never raised to the host.
        check_host_frame(frame, self.config.audio_format)
        if frame.encoding == "pcm16":
            _RESAMPLER_CHECK.check_supported(frame)
        audio = self._audio
        if len(audio) >= self.config.audio_queue_size:
            self._audio_dropped += 1
            return False
        audio.append(frame)
        if len(audio) == 1:
            self._run.submit(self._drain_audio)
        return True

    def _drain_audio(self) -> None:
        # Trio side. In "thread" mode the deque is shared across threads: append/popleft are
        # atomic, and only this side pops.
        engine = self._engine
        audio = self._audio
        while audio:
            frame = audio.popleft()
            if engine is None:
                continue
            try:
                engine.send_audio(frame)
            except ConversationNotRunning:
                audio.clear()
                self._run.deliver(self._noticed_not_running)
                return
            except Exception:
                # Checked on the caller's side already; anything else must not escape into
                # the trio run (it would end it for every engine of this loop).
                logger.exception("duplex.aio: a queued audio frame was refused")
                self._audio_refused += 1

    def audio_played(self, item_id: str, ms: float) -> None:
        """Report playback of ``item_id`` (see ``Engine.audio_played``). Never blocks; the
        report reaches the engine in order with the audio sent before it."""
        if self._closed:
            raise EngineClosed()
        if not self._running:
            raise ConversationNotRunning()
        check_played_ms(ms)  # raised here: on the trio side it could only be logged
        self._run.submit(lambda: self._played(item_id, ms))

    def _played(self, item_id: str, ms: float) -> None:
        # Trio side: a conversation that ended meanwhile has nothing to cut.
        engine = self._engine
        if engine is None:
            return
        try:
            engine.audio_played(item_id, ms)
        except ConversationNotRunning:
            pass
        except Exception:  # never into the trio run (see _drain_audio)
            logger.exception("duplex.aio: a playback report was refused")

    def _noticed_not_running(self) -> None:
        self._running = False

    async def send_text(self, text: str, *, respond: bool = True) -> None:
        """Add a user text message (see ``Engine.send_text``)."""
        await self._call(lambda engine: engine.send_text(text, respond=respond))

    async def send_handoff_output(self, handoff_id: str, text: str, *, final: bool = True) -> None:
        """Answer a ``HandoffRequested`` (see ``Engine.send_handoff_output``)."""
        await self._call(lambda engine: engine.send_handoff_output(handoff_id, text, final=final))

    async def update_prompt(self, prompt: str) -> None:
        """Change the session instructions (see ``Engine.update_prompt``)."""
        await self._call(lambda engine: engine.update_prompt(prompt))

    # The full host API (issue 13): same names and arguments as ``Engine``'s.

    async def send_tool_output(self, call_id: str, output: str, *, respond: bool = True) -> None:
        """Answer a ``ToolCallRequested`` (see ``Engine.send_tool_output``)."""
        await self._call(lambda engine: engine.send_tool_output(call_id, output, respond=respond))

    async def send_mcp_approval(
        self,
        request_id: str,
        approve: bool,
        *,
        reason: str | None = None,
        respond: bool = True,
    ) -> None:
        """Answer an ``McpApprovalRequested`` (see ``Engine.send_mcp_approval``)."""
        await self._call(
            lambda engine: engine.send_mcp_approval(
                request_id, approve, reason=reason, respond=respond
            )
        )

    async def update_session(
        self,
        session: SessionConfig | None = None,
        *,
        tools: Iterable[Tool] | None = None,
        instructions: str | None = None,
    ) -> None:
        """Change the session (see ``Engine.update_session``)."""
        await self._call(
            lambda engine: engine.update_session(session, tools=tools, instructions=instructions)
        )

    async def commit_audio(self, *, respond: bool = True) -> None:
        """End a push-to-talk turn (see ``Engine.commit_audio``)."""
        await self._call(lambda engine: engine.commit_audio(respond=respond))

    async def clear_audio(self) -> None:
        """Drop the uncommitted input audio (see ``Engine.clear_audio``)."""
        await self._call(lambda engine: engine.clear_audio())

    async def interrupt(self) -> None:
        """Stop the model now (see ``Engine.interrupt``)."""
        await self._call(lambda engine: engine.interrupt())

    async def create_response(
        self,
        *,
        instructions: str | None = None,
        conversation: str = "auto",
        metadata: Mapping[str, str] | None = None,
        output_modalities: Sequence[str] | None = None,
        input: Iterable[Any] | None = None,
        max_output_tokens: int | str | None = None,
        tool_choice: str | None = None,
        tools: Iterable[Tool] | None = None,
        voice: str | None = None,
    ) -> None:
        """Ask for a response with options (see ``Engine.create_response``)."""
        # Taken now: an iterator the caller passes is read once, on the caller's side.
        tools = None if tools is None else tuple(tools)
        await self._call(
            lambda engine: engine.create_response(
                instructions=instructions,
                conversation=conversation,
                metadata=metadata,
                output_modalities=output_modalities,
                input=input,
                max_output_tokens=max_output_tokens,
                tool_choice=tool_choice,
                tools=tools,
                voice=voice,
            )
        )

    async def send_image(self, data: bytes, mime_type: str, *, text: str | None = None) -> None:
        """Add a user image (see ``Engine.send_image``)."""
        await self._call(lambda engine: engine.send_image(data, mime_type, text=text))

    async def send_event(self, event: Mapping[str, Any]) -> None:
        """Send a raw client event (see ``Engine.send_event``)."""
        await self._call(lambda engine: engine.send_event(event))

    # ---- history ------------------------------------------------------------------------

    def history(self) -> tuple[HistoryItem, ...]:
        """The conversation as the engine knows it (see ``Engine.history``). A snapshot of
        immutable items: in guest mode it is read on the loop's thread, where trio runs; with
        ``mechanism="thread"`` the ledger's tuple is taken as it stands."""
        if self._closed:
            raise EngineClosed()
        engine = self._engine
        return engine.history() if engine is not None else ()

    async def add_item(self, item: HistoryItem) -> str:
        """Add an item to the conversation; returns its id (see ``Engine.add_item``)."""
        return await self._call(lambda engine: engine.add_item(item))

    async def delete_item(self, item_id: str) -> None:
        """Delete an item from the conversation (see ``Engine.delete_item``)."""
        await self._call(lambda engine: engine.delete_item(item_id))

    # ---- output -------------------------------------------------------------------------

    def events(self) -> AsyncioEventStream:
        """Host-visible events in order; ends when the engine closes (see ``Engine.events``)."""
        return AsyncioEventStream(self)

    def _attach_events(self) -> None:
        engine = self._engine
        if engine is None:
            self._run.deliver(self._end_events)
            return
        # Events move when the engine queues them, in the queuing task, with no pump task in
        # between (one task switch less per wakeup); the listener runs until the stream ends.
        engine._on_events(self._fill)
        self._fill()

    def _fill(self) -> None:
        """Trio side: move what the engine has queued to the asyncio side, up to the window;
        end the stream after the engine's last event."""
        engine = self._engine
        if engine is None:
            return
        events = self._events
        took = False
        while True:
            # ``not self._ahead()``, inlined (read afresh each time: in "thread" mode the
            # consumer's counts move under this loop).
            while (
                self._sent - self._taken < EVENT_WINDOW
                and self._sent_ms - self._taken_ms < AUDIO_AHEAD_MS
            ):
                item = engine._take_event_nowait()
                if item is None:
                    break
                # In "thread" mode the deque is shared: append/popleft are atomic, the
                # asyncio side only pops, and it is woken (below) after the append.
                events.append(item)
                event = item[1]
                took = True
                self._sent += 1
                if type(event) is AudioOut:
                    self._sent_ms += event.frame.duration_ms
            if engine._events_finished():
                engine._on_events(None)
                self._run.deliver(self._end_events)
                return
            if not self._ahead():
                break  # nothing more queued
            # Full: the consumer calls ``_resume`` once it has made room. Published before
            # looking again, because in "thread" mode the consumer may have emptied the
            # window since the check above, and it only resumes what it sees published.
            self._resume = self._fill
            if self._ahead():
                break
            self._resume = None  # room appeared meanwhile: go on here
        if took and not self._wake_pending:
            # One wake-up of the asyncio side per batch, not per event: in "thread" mode
            # each costs a write to the loop's self-pipe.
            self._wake_pending = True
            self._run.deliver(self._wake)

    def _move_rest(self, engine: Engine) -> None:
        """Trio side, as the engine's block has exited: move every event still queued in the
        engine, past the window. Under trio a consumer reading after the block still gets
        them (a closed conversation's ConversationClosed among them); here the engine is
        dropped next, so they must be on the asyncio side by then. Bounded by the engine's
        own queue; nothing is read from the network any more."""
        events = self._events
        moved = False
        while (item := engine._take_event_nowait()) is not None:
            events.append(item)
            moved = True
            self._sent += 1
            if type(item[1]) is AudioOut:
                self._sent_ms += item[1].frame.duration_ms
        engine._on_events(None)
        self._resume = None  # nothing waits over there any more
        if moved:
            self._run.deliver(self._wake)

    def _ahead(self) -> bool:
        return (
            self._sent - self._taken >= EVENT_WINDOW
            or self._sent_ms - self._taken_ms >= AUDIO_AHEAD_MS
        )

    def _drop(self, generation: int) -> None:
        """asyncio side: the trio engine dropped a replaced conversation's unread events
        (inside ``start()``); drop what of it was already handed over, as if read. Runs
        before that ``start()`` returns here (``deliver`` is in order)."""
        events = self._events
        # Only this side removes items; in "thread" mode the trio side may append at the
        # right meanwhile (never this generation any more), so delete by index, in place.
        index = 0
        while index < len(events):
            if events[index][0] != generation:
                index += 1
                continue
            event = events[index][1]
            del events[index]
            self._taken += 1
            if type(event) is AudioOut:
                self._taken_ms += event.frame.duration_ms
        self._resume_if_room()

    def _resume_if_room(self) -> None:
        """asyncio side: once the consumer is back under half the window, let the trio side
        move the events that wait (``_fill``)."""
        resume = self._resume
        if (
            resume is not None
            and self._sent - self._taken <= EVENT_WINDOW // 2
            and self._sent_ms - self._taken_ms <= AUDIO_AHEAD_MS / 2
        ):
            self._resume = None
            self._run.submit(resume)

    def _end_events(self) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        self._wake_pending = False
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def statistics(self) -> EngineStatistics:
        """A frozen snapshot of counters and queue depths (see ``Engine.statistics``).

        ``queue_depths`` gains ``"aio_audio"`` (frames staged on the asyncio side) and
        ``"aio_events"`` (events handed over but not yet read); staged drops are counted in
        ``audio_frames_dropped``.
        """
        engine = self._engine
        if engine is None and self._final is not None:
            base = self._final
        elif engine is None:
            base = EngineStatistics(
                conversations_started=0,
                running=False,
                server_events=0,
                host_events=0,
                parse_failures=0,
                unknown_events=0,
                client_events=0,
                audio_frames_in=0,
                audio_frames_dropped=0,
                audio_frames_out=0,
                stale_audio_dropped=0,
                truncations=0,
                bytes_in=0,
                bytes_out=0,
            )
        else:
            base = engine.statistics()
        depths = dict(base.queue_depths)
        depths["aio_audio"] = len(self._audio)
        depths["aio_events"] = len(self._events)
        return attrs.evolve(
            base,
            audio_frames_dropped=base.audio_frames_dropped
            + self._audio_dropped
            + self._audio_refused,
            queue_depths=depths,
        )

    @property
    def version(self) -> ProtocolVersion:
        return self.config.version

    # ---- calls into trio ----------------------------------------------------------------

    async def _call(self, fn: Callable[[Engine], Awaitable[T]]) -> T:
        """Run ``await fn(engine)`` on the trio side; its result or exception comes back."""
        if self._closed:
            raise EngineClosed()
        future: asyncio.Future[T] = self._loop.create_future()
        call = _Call()
        pending = self._pending
        pending.add(future)
        self._run.submit(lambda: self._spawn_call(fn, future, call), retry=True)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done():
                raise
            self._run.submit(call.cancel, retry=True)
            await wait_settled(future)
            if not future.cancelled():
                # Retrieved: the caller was cancelled, not failed; but an interrupt raised on
                # the trio side meanwhile is the host's and must not be lost.
                exc = future.exception()
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise exc from None
            raise
        finally:
            pending.discard(future)

    def _spawn_call(
        self, fn: Callable[[Engine], Awaitable[T]], future: asyncio.Future[T], call: _Call
    ) -> None:
        if call.spawned:
            return  # submitted again after an interrupt that landed once it had spawned
        calls, engine = self._calls, self._engine
        if calls is None or engine is None:
            self._run.deliver(_settle, future, EngineClosed())
            return
        call.spawned = True
        calls.start_soon(self._run_call, fn, engine, future, call)

    async def _run_call(
        self,
        fn: Callable[[Engine], Awaitable[T]],
        engine: Engine,
        future: asyncio.Future[T],
        call: _Call,
    ) -> None:
        outcome: Any = EngineClosed()  # if the engine is shut down
        try:
            with trio.CancelScope() as scope:
                call.scope = scope
                if call.cancelled:
                    scope.cancel()
                try:
                    outcome = _Value(await fn(engine))
                except Exception as exc:
                    outcome = _single(exc)
                except BaseException as exc:
                    # A KeyboardInterrupt/SystemExit landing in the call (a signal handler's
                    # raise on the loop's thread) is raised to the caller, as it would be in
                    # its own code; it must not end the loop's shared run.
                    interrupt = host_interrupt(exc)
                    if interrupt is None:
                        raise  # trio's cancellation
                    outcome = interrupt
            if scope.cancelled_caught:
                outcome = asyncio.CancelledError()
        finally:
            self._run.deliver(self._settle_call, future, outcome)

    def _settle_call(self, future: asyncio.Future[Any], outcome: Any) -> None:
        if future.done() and isinstance(outcome, KeyboardInterrupt | SystemExit):
            # The caller is gone (the run ended under it): the interrupt still is the host's.
            self._run.raise_in_host(outcome)
            return
        _settle_outcome(future, outcome)


@final
class AsyncioEventStream:
    """The async iterator ``AsyncioEngine.events()`` returns (see there)."""

    __slots__ = ("_engine",)

    def __init__(self, engine: AsyncioEngine) -> None:
        self._engine = engine

    def __aiter__(self) -> AsyncioEventStream:
        return self

    async def __anext__(self) -> HostEvent:
        # Every event passes here: the engine's side of it is inlined (one frame less).
        engine = self._engine
        events = engine._events
        while not events:
            if engine._ended:
                raise StopAsyncIteration
            if engine._resume is not None:  # nothing here and events wait over there
                engine._resume_if_room()
            if not engine._attached:
                engine._attached = True
                engine._run.submit(engine._attach_events)
            waiter = engine._loop.create_future()
            engine._waiters.append(waiter)
            try:
                await waiter
            finally:
                engine._waiters.remove(waiter)
        item = events.popleft()[1]
        # Any for the checks below: they narrow by ``type(x) is``, which mypy does not follow.
        event: Any = item
        engine._taken += 1
        kind = type(event)
        if kind is AudioOut:
            engine._taken_ms += event.frame.duration_ms
        if engine._resume is not None:  # only while the window was full
            engine._resume_if_room()
        if kind is ConversationStarted:
            engine._reading_session = event.session_id
        elif kind is ConversationClosed and engine._reading_session == engine._started_session:
            engine._running = False  # the end of the latest conversation (not an older one's)
        return item

    async def aclose(self) -> None:
        """Nothing to release (kept so ``contextlib.aclosing`` works)."""


# ---- helpers ------------------------------------------------------------------------------


@final
class _LoopWatch:
    """The asyncio loop as ``LoopReads``' watcher (guest mode: trio's code runs on the
    loop's thread, so ``add_reader`` is called from where it may be)."""

    __slots__ = ("_loop", "_watching")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._watching = True

    def watch(self, fd: int, ready: Callable[[], object]) -> bool:
        if not self._watching:
            return False
        try:
            self._loop.add_reader(fd, ready)
        except NotImplementedError:  # a loop without descriptor watching (Windows proactor)
            self._watching = False
            return False
        return True

    def unwatch(self, fd: int) -> None:
        self._loop.remove_reader(fd)


class _Call:
    """The trio scope of one call, so the asyncio side can cancel it (any time)."""

    __slots__ = ("cancelled", "scope", "spawned")

    def __init__(self) -> None:
        self.scope: trio.CancelScope | None = None
        self.cancelled = False
        self.spawned = False  # its trio task was started (a retried spawn does nothing)

    def cancel(self) -> None:
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()


@attrs.frozen
class _Value:
    value: Any


def _settle_outcome(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():
        return
    if isinstance(outcome, _Value):
        future.set_result(outcome.value)
    elif isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(outcome)


def _single(exc: BaseException) -> BaseException:
    """The exception itself, or the first leaf of a group (hosts never see groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _still_running(engine: Engine) -> bool:
    return engine.statistics().running
