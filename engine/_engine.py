"""``open_engine`` and ``Engine``: the host-facing API (SPEC §3).

The engine owns one nursery for its whole life and at most one conversation at a time.

Invariants:
- ``start()`` while a conversation runs replaces it: the old one is cancelled and emits
  nothing more. Its events still sitting in the host channel are dropped by ``events()``,
  which skips the generations that were replaced while running, so nothing stale reaches
  the host after ``start()`` returns. (A closed or ended conversation's events, its
  ``ConversationClosed`` included, are still delivered after the next ``start()``.)
- ``close()`` of a running conversation emits exactly one ``ConversationClosed("requested")``;
  with nothing running it does nothing (there is no conversation to close).
- A failed ``start()`` raises ``ConversationStartError`` and emits no ``ConversationClosed``.
- ``send_audio`` never blocks: a full queue drops the frame and counts it.
- Structural events are never dropped: the host channel is bounded, so a host that stops
  reading slows the engine's reading of the network instead (backpressure).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, final

import attrs
import trio

from duplex.protocol import (
    AudioFrame,
    AudioOut,
    LocalProtocolError,
    ProtocolVersion,
    SessionMode,
    call_session_payload,
    prompt_update_event,
    realtime_headers,
    realtime_websocket_url,
    session_start_event,
    text_item_event,
)
from duplex.transports import Transport, TransportError, connect_webrtc, connect_websocket

from ._config import EngineConfig
from ._conversation import CLOSING, REPLACED, RUNNING, Conversation, HostBatch
from ._errors import (
    ConversationClosed,
    ConversationNotRunning,
    ConversationStarted,
    ConversationStartError,
    EngineClosed,
    EngineError,
    HandoffNotActive,
    UnsupportedByDialect,
)
from ._host_events import HostEvent

__all__ = ["Engine", "EngineStatistics", "EventStream", "open_engine"]

logger = logging.getLogger(__name__)


@final
@attrs.frozen
class EngineStatistics:
    """A snapshot of the engine's counters (of the current or last conversation).

    ``queue_depths`` maps each internal queue (``audio_in``, ``outbound``, ``handoff``,
    ``parsed``, ``host``) to the number of items waiting in it.
    """

    conversations_started: int
    running: bool
    server_events: int
    host_events: int
    parse_failures: int
    unknown_events: int
    client_events: int
    audio_frames_in: int
    audio_frames_dropped: int
    audio_frames_out: int
    stale_audio_dropped: int
    truncations: int
    bytes_in: int
    bytes_out: int
    queue_depths: dict[str, int] = attrs.field(factory=dict)


TransportFactory = Callable[[trio.Nursery], Awaitable[Transport]]


@asynccontextmanager
async def open_engine(
    config: EngineConfig, *, transport_factory: TransportFactory | None = None
) -> AsyncIterator[Engine]:
    """Run an engine for the duration of the ``async with`` block.

    Args:
        config: connection and session settings.
        transport_factory: connect with this instead of ``config.transport`` (a custom or
            in-memory transport); it is called with the conversation's nursery.

    On exit any running conversation is cancelled (no further events) and ``events()``
    iterators end.
    """
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            engine = Engine(config, nursery, transport_factory=transport_factory)
            try:
                yield engine
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                await engine._shutdown()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        escaping = _unwrap(group, body_error)
    else:
        return
    # Raised outside the ``except`` so the host's exception is not chained to the group.
    raise escaping


def _unwrap(group: BaseExceptionGroup[Any], body_error: BaseException | None) -> BaseException:
    """The one exception a host should see for a group leaving the engine's nursery.

    The nursery wraps whatever ends it in an exception group; a host must see its own
    exception (a ``ValueError``, ``KeyboardInterrupt``, a ``ConversationStartError`` from
    ``start()``) as itself. Cancellations of the engine's own tasks are noise; any other
    exception from an engine task is a defect and surfaces as ``EngineError`` with the
    original as ``__cause__``.
    """
    from_body: set[int] = set()
    if body_error is not None:
        from_body.add(id(body_error))
        if isinstance(body_error, BaseExceptionGroup):
            from_body.update(id(leaf) for leaf in _leaves(body_error))
    internal = [
        leaf
        for leaf in _leaves(group)
        if id(leaf) not in from_body and not isinstance(leaf, trio.Cancelled)
    ]
    for leaf in internal:
        if isinstance(leaf, KeyboardInterrupt | SystemExit):
            return leaf
    if body_error is not None:
        return body_error  # the host's own exception (a group only if the host raised one)
    if internal:
        error = EngineError(f"internal error: {type(internal[0]).__name__}: {internal[0]}")
        error.__cause__ = internal[0]
        return error
    return group


class Engine:
    """The conversation manager. Create it with ``open_engine``."""

    def __init__(
        self,
        config: EngineConfig,
        nursery: trio.Nursery,
        *,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        self.config = config
        self._transport_factory = transport_factory
        self._nursery = nursery
        # Bounded host channel: see EngineConfig.event_queue_size (batches, not events).
        self._host_send, self._host_recv = trio.open_memory_channel[HostBatch](
            config.event_queue_size
        )
        self._generation = 0
        # Generations replaced while running: their undelivered events are dropped. Only
        # these: a closed or naturally ended conversation keeps its ConversationClosed even
        # when the host reads it after the next start().
        self._replaced: set[int] = set()
        self._current: Conversation | None = None
        self._lock = trio.Lock()  # start/close are serialised: one lifecycle change at a time
        self._late_closed: trio.Event | None = None  # see close()
        self._started = 0
        self._host_events = 0
        # Events of the batch being handed out (the host takes them one at a time).
        self._pending: deque[HostEvent] = deque()
        self._pending_conversation: Conversation | None = None
        self._closed = False  # the open_engine block has exited

    # ---- lifecycle ------------------------------------------------------------------

    async def start(
        self, prompt: str | None = None, conversation_id: str | None = None
    ) -> ConversationStarted:
        """Connect and start a conversation, replacing any running one.

        Args:
            prompt: the session instructions (``None`` sends an empty prompt).
            conversation_id: v1 only: the backend conversation to continue.

        Raises:
            ConversationStartError: invalid settings (voice, modality) or the connection
                failed (``status`` holds the HTTP status when the server refused).
        """
        self._check_open()
        config = self.config
        if self._transport_factory is None and not (config.api_key or "").strip():
            # Checked before any connection, on every transport: a keyless WebSocket upgrade
            # would only come back as an unexplained HTTP 401.
            raise ConversationStartError(
                "no API key: set the OPENAI_API_KEY environment variable "
                "(EngineConfig.from_env()) or pass api_key= to EngineConfig"
            )
        async with self._lock:
            self._check_open()
            if self._late_closed is not None:
                await self._late_closed.wait()
                self._late_closed = None
            await self._stop_current(REPLACED)
            session_id = f"duplex_{uuid.uuid4().hex}"
            try:
                start_event = session_start_event(
                    config.version,
                    mode=config.mode,
                    instructions=prompt,
                    conversation_id=conversation_id,
                    voice=config.voice,
                    output_modality=config.output_modality,
                    handoff_tool_name=config.handoff_tool_name,
                    silence_tool_name=config.silence_tool_name,
                )
                # Builds the headers: a blank key or a bad header value fails here.
                connect = self._connector(session_id, start_event)
            except LocalProtocolError as exc:
                raise ConversationStartError(str(exc)) from exc
            self._generation += 1
            conversation = Conversation(
                config=config,
                generation=self._generation,
                session_id=session_id,
                connect=connect,
                start_event=start_event,
                host_send=self._host_send,
                send_late=self._spawn_late,
            )
            url = self._display_url()
            try:
                with trio.fail_after(config.connect_timeout + config.close_timeout):
                    started: ConversationStarted = await self._nursery.start(conversation.run)
            except trio.TooSlowError as exc:
                raise ConversationStartError(
                    f"connecting to {url} timed out after {config.connect_timeout:g} s "
                    "(EngineConfig.connect_timeout)",
                    url=url,
                ) from exc
            except TransportError as exc:
                raise _transport_start_error(exc, url, config.connect_timeout) from exc
            except BaseExceptionGroup as group:
                raise _start_error(group, url, config.connect_timeout) from _first_leaf(group)
            self._current = conversation
            self._started += 1
            return started

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosed()

    def _display_url(self) -> str:
        """Where ``start()`` connects, for error messages (a URL never carries the key)."""
        config = self.config
        if self._transport_factory is not None:
            return "the custom transport"
        if config.transport == "webrtc":
            return f"{config.base_url.rstrip('/')}/realtime/calls"
        try:
            return realtime_websocket_url(
                config.base_url, version=config.version, mode=config.mode, model=config.model
            )
        except LocalProtocolError:
            return config.base_url

    def _connector(self, session_id: str, start_event: Any) -> Any:
        config = self.config
        headers = realtime_headers(
            api_key=config.api_key,
            session_id=session_id,
            extra=dict(config.headers),
            version=config.version,
        )

        factory = self._transport_factory

        async def connect(nursery: trio.Nursery) -> Transport:
            if factory is not None:
                return await factory(nursery)
            if config.transport == "websocket":
                url = realtime_websocket_url(
                    config.base_url, version=config.version, mode=config.mode, model=config.model
                )
                return await connect_websocket(
                    nursery,
                    url,
                    headers,
                    max_message_size=config.max_message_size,
                    connect_timeout=config.connect_timeout,
                )
            transport: Transport = await connect_webrtc(
                nursery,
                base_url=config.base_url,
                api_key=config.api_key or "",
                session=call_session_payload(start_event, config.model),
                control=config.webrtc_control,
                version=config.version.value,
                headers=headers,
                connect_timeout=config.connect_timeout,
            )
            return transport

        return connect

    async def close(self) -> bool:
        """Close the running conversation. Emits exactly one ``ConversationClosed("requested")``.

        Never waits for the host to read ``events()`` (the event is queued behind the
        conversation's undelivered events, before the next conversation's).

        Returns:
            True if a conversation was running; False (and nothing emitted) otherwise.
        """
        self._check_open()
        async with self._lock:
            conversation = self._current
            if conversation is None or conversation.state != RUNNING:
                return False
            await self._stop_current(CLOSING)
            closed = (conversation.generation, [ConversationClosed("requested")])
            try:
                self._host_send.send_nowait(closed)
            except trio.WouldBlock:
                # The host channel is full and the host may be the caller itself: close()
                # must not wait for it to read. A task delivers the event; the next start()
                # waits until it is queued, so it still precedes the next Started.
                queued = trio.Event()
                self._late_closed = queued
                self._spawn_late(closed, queued)
            return True

    def _spawn_late(self, item: HostBatch, queued: trio.Event) -> None:
        self._nursery.start_soon(self._send_late, item, queued)

    async def _send_late(self, item: HostBatch, queued: trio.Event) -> None:
        # send() parks this task in the channel's FIFO of senders before its first yield,
        # so once anyone observes ``queued`` the item is already ahead of later sends.
        queued.set()
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await self._host_send.send(item)  # the engine may be shutting down

    async def _stop_current(self, new_state: str) -> None:
        conversation = self._current
        if conversation is None:
            return
        if conversation.cancel(new_state) and new_state == REPLACED:
            self._replaced.add(conversation.generation)
        await conversation.done.wait()
        self._current = None if new_state == REPLACED else conversation

    async def _shutdown(self) -> None:
        self._closed = True
        with trio.CancelScope(shield=True):
            if self._current is not None:
                self._current.cancel(REPLACED)
                with trio.move_on_after(self.config.close_timeout):
                    await self._current.done.wait()
            await self._host_send.aclose()

    # ---- input ----------------------------------------------------------------------

    def _running(self) -> Conversation:
        self._check_open()
        conversation = self._current
        if conversation is None or conversation.state != RUNNING:
            raise ConversationNotRunning()
        return conversation

    def send_audio(self, frame: AudioFrame) -> bool:
        """Queue microphone audio (PCM16 of any rate/channels). Never blocks.

        Returns:
            False when the audio queue was full and the frame was dropped (counted in
            ``statistics().audio_frames_dropped``).

        Raises:
            ConversationNotRunning: no conversation is running.
        """
        return self._running().submit_audio(frame)

    async def send_text(self, text: str, *, respond: bool = True) -> None:
        """Add a user text message; unless ``respond=False``, ask the model to answer it.

        On v2 the answer is requested with ``response.create`` through the single-active-
        response queue. A v1 backend answers text items by itself (the Rust original never
        sends ``response.create`` on v1), so there ``respond`` only documents intent.

        Raises:
            ConversationNotRunning: no conversation is running.
            UnsupportedByDialect: the session is a transcription session.
        """
        conversation = self._running()
        if conversation.transcription:
            raise UnsupportedByDialect("transcription sessions do not take text input")
        item = text_item_event(self.config.version, text, user_prefix=self.config.user_text_prefix)
        await conversation.send_client_event(item)
        if respond and self.config.version is ProtocolVersion.V2:
            await conversation.request_response()

    async def send_handoff_output(self, handoff_id: str, text: str, *, final: bool = True) -> None:
        """Answer a ``HandoffRequested``: progress (``final=False``) or the final result.

        Raises:
            ConversationNotRunning: no conversation is running.
            HandoffNotActive: ``handoff_id`` is not a handoff the engine is waiting on (never
                requested, already finished, or a v2 steering request that was acknowledged).
        """
        conversation = self._running()
        if handoff_id not in conversation.handoffs.answerable:
            raise HandoffNotActive(f"no active handoff with id {handoff_id!r}")
        if final:
            # Decided here, synchronously, so a second final for the same id is refused at once.
            conversation.handoffs.answerable.discard(handoff_id)
        await conversation.submit_handoff_output(handoff_id, text, final=final)

    async def update_prompt(self, prompt: str) -> None:
        """Change the session instructions (``session.update``).

        Raises:
            ConversationNotRunning: no conversation is running.
        """
        conversation = self._running()
        mode: SessionMode = self.config.mode
        await conversation.send_client_event(
            prompt_update_event(self.config.version, prompt, mode=mode)
        )

    # ---- output ---------------------------------------------------------------------

    def events(self) -> EventStream:
        """Host-visible events in order: ``ConversationStarted``, the protocol vocabulary,
        ``ConversationClosed``. Ends when the engine closes.

        The iterator is cancel-safe: a cancelled ``__anext__`` (a timeout around
        ``async for``) loses nothing, and the next iteration — of this or of a new
        ``events()`` iterator — continues where it stopped."""
        return EventStream(self)

    async def _next_event(self) -> HostEvent:
        pending = self._pending
        while not pending:
            try:
                generation, batch = await self._host_recv.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                raise StopAsyncIteration from None
            if generation in self._replaced:
                continue  # a replaced conversation's leftovers
            # Only whole batches are taken, so every pending event is of this generation.
            self._pending_conversation = self._current if generation == self._generation else None
            pending.extend(batch)
        event = pending.popleft()
        conversation = self._pending_conversation
        if conversation is not None and type(event) is AudioOut:
            conversation.delivered(event)
        self._host_events += 1
        return event

    def statistics(self) -> EngineStatistics:
        """A frozen snapshot of counters and queue depths."""
        conversation = self._current
        transport = conversation.transport if conversation is not None else None
        tstats = transport.statistics() if transport is not None else None
        counters = conversation.counters if conversation is not None else None
        depths = conversation.queue_depths() if conversation is not None else {}
        depths["host"] = self._host_send.statistics().current_buffer_used
        return EngineStatistics(
            conversations_started=self._started,
            running=conversation is not None and conversation.state == RUNNING,
            server_events=counters.server_events if counters else 0,
            host_events=self._host_events,
            parse_failures=counters.parse_failures if counters else 0,
            unknown_events=counters.unknown_events if counters else 0,
            client_events=counters.client_events if counters else 0,
            audio_frames_in=counters.audio_in if counters else 0,
            audio_frames_dropped=counters.audio_in_dropped if counters else 0,
            audio_frames_out=counters.audio_out if counters else 0,
            stale_audio_dropped=counters.stale_audio_dropped if counters else 0,
            truncations=counters.truncations if counters else 0,
            bytes_in=tstats.bytes_in if tstats else 0,
            bytes_out=tstats.bytes_out if tstats else 0,
            queue_depths=depths,
        )

    @property
    def version(self) -> ProtocolVersion:
        return self.config.version


@final
class EventStream:
    """The async iterator ``Engine.events()`` returns (see there)."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> HostEvent:
        return await self._engine._next_event()

    async def aclose(self) -> None:
        """Nothing to release (kept so ``contextlib.aclosing`` works)."""


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    return leaves


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException | None:
    leaves = _leaves(group)
    for leaf in leaves:
        if isinstance(leaf, TransportError):
            return leaf
    return leaves[0] if leaves else None


def _transport_start_error(
    exc: TransportError, url: str, timeout: float | None = None
) -> ConversationStartError:
    message = f"connecting to {url} failed: {exc}"
    if timeout is not None and "timed out" in str(exc) and f"{timeout:g} s" not in str(exc):
        message += f" (EngineConfig.connect_timeout = {timeout:g} s)"
    return ConversationStartError(message, status=getattr(exc, "status", None), url=url)


def _start_error(
    group: BaseExceptionGroup[Any], url: str, timeout: float
) -> ConversationStartError:
    """The single meaningful error inside a connect failure's exception group."""
    leaves = _leaves(group)
    for leaf in leaves:
        if isinstance(leaf, TransportError):
            return _transport_start_error(leaf, url, timeout)
    for leaf in leaves:
        if isinstance(leaf, trio.TooSlowError):
            return ConversationStartError(f"connecting to {url} timed out", url=url)
    first = leaves[0] if leaves else group
    return ConversationStartError(
        f"starting the conversation with {url} failed: {type(first).__name__}: {first}", url=url
    )
