"""The WebSocket transport: ``connect_websocket()`` → ``WebSocketTransport`` (trio-websocket).

Design (SPEC §3 hot-path rule, §4):
- **Batch draining.** trio-websocket's reader task parses frames and, per complete message,
  awaits ``send`` on an internal memory channel: one scheduler round trip per message in the
  reader and another in whoever calls ``get_message()``. So before the reader starts, the
  connection's message and close handlers are replaced (instance attributes; trio-websocket
  looks them up when its reader starts) by ``_Receiver`` methods that append complete text
  messages to a plain list without yielding and wake the consumer once. The reader then
  yields once per socket read (64 KiB), and ``receive_batch`` swaps the whole list out: a
  burst costs one wakeup per read, not two per message. Measured on a loopback burst of
  realtime-shaped events (2/3 audio deltas of 20 ms): ≈ 16 µs CPU per message against
  ≈ 35 µs for a bare ``get_message()`` loop; what remains is wsproto's frame parser
  (≈ 10 µs). This relies on private names of trio-websocket 0.12 (``_handle_message_event``,
  ``_handle_close_connection_event``, ``_reader_task``, ``_close_reason``,
  ``_reader_running``, ``_send``); ``test_transport_websocket.py`` pins each so an upgrade
  that changes them fails loudly, not subtly.
- **Queue bound.** ``message_queue_size`` (default 1024) bounds how far the reader runs
  ahead of the engine: enough for a ~20 s burst of 20 ms audio deltas (≈ 10 MB). When the
  list holds that many messages the reader parks until ``receive_batch`` drains it, so TCP
  applies backpressure to the server. (A parked reader also stops reading pongs: an engine
  that stops reading for 2 × ``ping_interval`` is reported dead by the keepalive.)
- **One writer.** All writes (our text frames, keepalive pings, trio-websocket's pongs and
  close replies) are serialised by trio-websocket's ``StrictFIFOLock``, in call order. A send
  never waits on reading: the reader blocks on the message queue, never on the write lock.
- **Binary frames** are dropped and counted (``TransportStatistics.binary_frames_dropped``):
  the realtime protocol is text-only, a binary frame carries no event, and the engine must
  never die on a frame.
- **Lifecycle.** The connection runs in a private nursery started inside the caller's
  nursery, so a handshake rejection or a reader crash never cancels the caller's tasks; it
  becomes ``ConnectError`` (before the handshake) or ``TransportEnded(reason="error")``
  (after). Keepalive: a ping every ``ping_interval`` seconds; no pong within another
  ``ping_interval`` ends the transport with ``TransportEnded("error", 1006, ...)``.
  ``aclose()`` discards messages not yet received: the next batch is just
  ``TransportEnded("requested", 1000)``; after a peer close, queued messages come first.
- **TLS** verification is on for ``wss`` (``ssl.create_default_context()``), and the TLS
  handshake is completed inside ``connect_timeout`` so certificate errors surface as
  ``ConnectError`` instead of a hang.
"""

from __future__ import annotations

import contextlib
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, cast

import trio
import trio_websocket
import wsproto.events

from protocol._audio import AudioFrame

from ._abc import (
    ENDED_CLOSED,
    ENDED_ERROR,
    ENDED_REQUESTED,
    Counters,
    Inbound,
    Transport,
    TransportEnded,
    TransportKind,
    TransportStatistics,
)
from ._errors import ConnectError, TransportClosed, map_exceptions, redact

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MESSAGE_QUEUE_SIZE",
    "WebSocketTransport",
    "connect_websocket",
]

DEFAULT_MAX_MESSAGE_SIZE: Final = 16 * 2**20
DEFAULT_MESSAGE_QUEUE_SIZE: Final = 1024
RECEIVE_BUFFER_SIZE: Final = 64 * 2**10
CLOSE_TIMEOUT_S: Final = 2.0
_SECRET_HEADERS: Final = frozenset({"authorization", "api-key", "openai-insecure-api-key"})


class _Receiver:
    """The batch fast path: replacement handlers for trio-websocket's reader (see module
    docstring) and the list they fill. Everything runs on the trio thread."""

    def __init__(self, max_message_size: int, queue_size: int) -> None:
        self._max_message_size = max_message_size
        self._queue_size = queue_size
        self.items: list[str] = []
        self.binary = 0  # binary messages dropped since the last batch
        self.lot = trio.lowlevel.ParkingLot()  # the consumer waits here
        self._space = trio.lowlevel.ParkingLot()  # the reader waits here when full
        self._parts: list[str | bytes] = []
        self._size = 0
        self.peer_closed = False  # a close frame arrived
        self.reader_done = False  # trio-websocket's reader task returned or raised
        self.oversized = False
        self.opened = False  # the handshake completed
        self.error: str | None = None  # the reader crashed after the handshake
        self.discard = False  # closing locally: drop what still arrives, never park
        self._ws: trio_websocket.WebSocketConnection | None = None

    def install(self, ws: trio_websocket.WebSocketConnection) -> None:
        """Replace the handlers; must run before ``ws._reader_task`` starts."""
        self._ws = ws
        original_close = ws._handle_close_connection_event

        async def on_close(event: wsproto.events.CloseConnection) -> None:
            await original_close(event)
            self.peer_closed = True
            self.lot.unpark_all()

        ws._handle_message_event = self.on_message  # type: ignore[method-assign]
        ws._handle_close_connection_event = on_close  # type: ignore[method-assign]

    async def on_message(
        self, event: wsproto.events.TextMessage | wsproto.events.BytesMessage
    ) -> None:
        data = cast("str | bytes", event.data)  # bytearray only for outgoing data
        if event.message_finished and not self._parts:
            # The common case: a whole message in one frame. No yield anywhere below
            # unless the queue is full.
            if len(data) > self._max_message_size:
                await self._too_big()
                return
            message: str | bytes = data
        else:
            self._parts.append(data)
            self._size += len(data)
            if self._size > self._max_message_size:
                await self._too_big()
                return
            if not event.message_finished:
                return
            if isinstance(data, str):
                message = "".join(cast("list[str]", self._parts))
            else:
                message = b"".join(cast("list[bytes]", self._parts))
            self._parts = []
            self._size = 0
        if type(message) is str:
            if self.discard:
                return
            items = self.items
            items.append(message)
            if len(items) == 1:
                self.lot.unpark_all()
            elif len(items) >= self._queue_size:
                await self._space.park()
        else:
            self.binary += 1
            self.lot.unpark_all()

    async def _too_big(self) -> None:
        # What trio-websocket itself does for an oversized message: close with 1009 and
        # stop reading.
        ws = self._ws
        assert ws is not None
        reason = f"message exceeded {self._max_message_size} bytes"
        self._parts = []
        self._size = 0
        self.oversized = True
        ws._close_reason = trio_websocket.CloseReason(1009, reason)
        ws._reader_running = False
        self.lot.unpark_all()
        with contextlib.suppress(trio_websocket.ConnectionClosed):
            await ws._send(wsproto.events.CloseConnection(code=1009, reason=reason))

    def stop(self) -> None:
        """Local close: wake everyone and let a parked reader run on to see the close reply
        (otherwise ``aclose`` would wait out its timeout behind a full queue)."""
        self.discard = True
        self.items = []
        self.lot.unpark_all()
        self._space.unpark_all()

    def take(self) -> list[str]:
        items = self.items
        self.items = []
        self._space.unpark_all()
        return items


class WebSocketTransport(Transport):
    """A connected realtime WebSocket. Create with ``connect_websocket``."""

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.abc.Stream,
        scope: trio.CancelScope,
        receiver: _Receiver,
    ) -> None:
        self._ws = ws
        self._stream = stream
        self._scope = scope  # covers the reader and keepalive tasks
        self._receiver = receiver
        self._counters = Counters()
        self._closing = False  # aclose() was called
        self._closed = trio.Event()  # aclose() has finished
        self._finished = False  # TransportEnded was delivered
        self._fatal: str | None = None  # set when something other than the peer ended it

    @property
    def kind(self) -> TransportKind:
        return "websocket"

    @property
    def audio_native(self) -> bool:
        return False

    async def send_text(self, text: str) -> None:
        if self._closing or self._finished:
            raise TransportClosed("the WebSocket is closed")
        try:
            await self._ws.send_message(text)
        except trio_websocket.ConnectionClosed as exc:
            raise TransportClosed(f"the WebSocket is closed ({_describe(exc.reason)})") from exc
        counters = self._counters
        counters.messages_out += 1
        counters.bytes_out += len(text)

    async def send_audio(self, frame: AudioFrame) -> None:
        raise TypeError(
            "the WebSocket transport is not audio-native: send input_audio_buffer.append events"
        )

    def _ended(self) -> bool:
        r = self._receiver
        return self._closing or r.peer_closed or r.reader_done or r.oversized

    async def receive_batch(self) -> list[Inbound]:
        if self._finished:
            raise TransportClosed("the WebSocket has ended")
        receiver = self._receiver
        if receiver.items or self._ended():
            # A checkpoint even when data is ready (trio convention), once per batch.
            await trio.lowlevel.checkpoint()
        while not receiver.items and not self._ended():
            await receiver.lot.park()
        counters = self._counters
        if receiver.binary:
            counters.binary_frames_dropped += receiver.binary
            receiver.binary = 0
        batch: list[Inbound]
        if self._closing:
            batch = [TransportEnded(ENDED_REQUESTED, 1000, None)]  # local close drops unread
        else:
            texts = receiver.take()
            counters.messages_in += len(texts)
            counters.bytes_in += sum(map(len, texts))
            batch = cast("list[Inbound]", texts)  # ours now: take() swapped it out
            if self._ended():
                batch.append(self._ended_item())
        if isinstance(batch[-1], TransportEnded):
            self._finished = True
        counters.count_batch(len(batch))
        return batch

    def _ended_item(self) -> TransportEnded:
        receiver = self._receiver
        fatal = self._fatal or receiver.error
        if fatal is not None:
            return TransportEnded(ENDED_ERROR, 1006, fatal)
        close = self._ws.closed
        if receiver.oversized and close is not None:
            return TransportEnded(ENDED_ERROR, close.code, close.reason)
        if close is None:
            return TransportEnded(ENDED_ERROR, None, "the connection ended")
        if close.code == 1006 or not receiver.peer_closed:
            return TransportEnded(ENDED_ERROR, close.code, close.reason or "connection lost")
        return TransportEnded(ENDED_CLOSED, close.code, close.reason)

    async def aclose(self) -> None:
        if self._closing:
            # A second close (e.g. the WebRTC sideband reader reacting to the first) waits
            # for the one in progress; returning at once let its caller cancel the reader
            # before the server's close reply arrived, so every close took the full timeout.
            await self._closed.wait()
            return
        self._closing = True
        self._receiver.stop()
        try:
            with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
                scope.shield = True
                await self._ws.aclose(1000)
        finally:
            # trio-websocket leaves the socket open after a peer-initiated close or an
            # oversized message; closing it here makes aclose() release it in every case.
            await trio.aclose_forcefully(self._stream)
            self._scope.cancel()
            self._closed.set()

    def statistics(self) -> TransportStatistics:
        return self._counters.snapshot("websocket")

    async def _keepalive(self, interval: float) -> None:
        ws = self._ws
        while True:
            await trio.sleep(interval)
            try:
                with trio.move_on_after(interval) as timeout:
                    await ws.ping()
            except trio_websocket.ConnectionClosed:
                return
            if timeout.cancelled_caught:
                self._fatal = f"keepalive: no pong within {interval:g} s"
                # The reader sees the closed stream, records 1006 and exits, which wakes
                # receive_batch.
                await trio.aclose_forcefully(self._stream)
                return


def _describe(close: trio_websocket.CloseReason | None) -> str:
    if close is None:
        return "no close reason"
    return f"code {close.code}" + (f": {close.reason}" if close.reason else "")


def _split_url(url: str) -> tuple[str, int, str, bool]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"WebSocket URL scheme must be ws or wss, not {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("WebSocket URL has no host")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return parts.hostname, port, resource, secure


class _ReaderStarter:
    """Duck-typed nursery for trio-websocket: starts its reader task with our handlers
    installed, and reports when the reader ends.

    trio-websocket waits for the opening handshake with no end condition other than success:
    if the server closes the socket before answering, the reader exits quietly and the
    handshake waits forever. ``on_exit`` lets the caller cancel that wait instead.
    """

    def __init__(
        self, nursery: trio.Nursery, receiver: _Receiver, on_exit: Callable[[], object]
    ) -> None:
        self._nursery = nursery
        self._receiver = receiver
        self._on_exit = on_exit

    def start_soon(self, fn: Callable[[], Awaitable[object]], *args: Any, **kwargs: Any) -> None:
        ws = getattr(fn, "__self__", None)
        if not isinstance(ws, trio_websocket.WebSocketConnection):
            raise RuntimeError("trio-websocket started an unexpected task; the fast path is off")
        self._receiver.install(ws)

        receiver = self._receiver

        async def run() -> None:
            try:
                await fn(*args)
            except Exception as exc:
                receiver.reader_done = True
                receiver.lot.unpark_all()
                if not receiver.opened:
                    raise  # a handshake failure (e.g. ConnectionRejected): connect reports it
                # After the handshake nothing may escape into the caller's nursery.
                receiver.error = redact(f"{type(exc).__name__}: {exc}")
            else:
                receiver.reader_done = True
                receiver.lot.unpark_all()
                if not receiver.opened:
                    self._on_exit()

        self._nursery.start_soon(run)


def _leaf(exc: BaseException) -> BaseException:
    """The single interesting exception inside nested groups (else ``exc`` itself)."""
    while isinstance(exc, BaseExceptionGroup):
        leaves = [e for e in exc.exceptions if not isinstance(e, trio.Cancelled)]
        if len(leaves) != 1:
            return exc
        exc = leaves[0]
    return exc


async def connect_websocket(
    nursery: trio.Nursery,
    url: str,
    headers: Mapping[str, str],
    *,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    connect_timeout: float = 10.0,
    ping_interval: float | None = 20.0,
    ssl_context: ssl.SSLContext | None = None,
    message_queue_size: int = DEFAULT_MESSAGE_QUEUE_SIZE,
) -> WebSocketTransport:
    """Open a realtime WebSocket to ``url`` (``ws://`` or ``wss://``).

    The connection's background tasks run in ``nursery``; ``aclose()`` the transport to end
    them. ``headers`` are sent with the upgrade request (``Authorization`` among them).

    Raises:
        ConnectError: TCP, TLS or the upgrade failed, or ``connect_timeout`` elapsed;
            ``status`` holds the HTTP status of a rejected upgrade.
        ValueError: ``url`` is not a ws/wss URL.
    """
    host, port, resource, secure = _split_url(url)
    if secure and ssl_context is None:
        ssl_context = ssl.create_default_context()
    elif not secure:
        ssl_context = None
    host_header = host if port in (80, 443) else f"{host}:{port}"
    extra_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    secrets = [v for k, v in headers.items() if k.lower() in _SECRET_HEADERS]
    secrets += [v.split()[-1] for v in secrets if " " in v]

    async def run_connection(task_status: trio.TaskStatus[WebSocketTransport]) -> None:
        scope = trio.CancelScope()
        transport: WebSocketTransport | None = None
        try:
            with scope:
                async with trio.open_nursery() as inner:
                    stream: trio.abc.Stream
                    if ssl_context is None:
                        stream = await trio.open_tcp_stream(host, port)
                    else:
                        ssl_stream = await trio.open_ssl_over_tcp_stream(
                            host, port, ssl_context=ssl_context, https_compatible=True
                        )
                        await ssl_stream.do_handshake()
                        stream = ssl_stream
                    handshake = trio.CancelScope()
                    receiver = _Receiver(max_message_size, message_queue_size)
                    with handshake:
                        ws = await trio_websocket.wrap_client_stream(
                            _ReaderStarter(inner, receiver, handshake.cancel),  # type: ignore[arg-type]
                            stream,
                            host_header,
                            resource,
                            extra_headers=extra_headers,
                            # Unused by the fast path (our handlers bypass trio-websocket's
                            # queue and size check); kept consistent in case it runs.
                            message_queue_size=message_queue_size,
                            max_message_size=max_message_size,
                            receive_buffer_size=RECEIVE_BUFFER_SIZE,
                        )
                    if handshake.cancelled_caught:
                        await trio.aclose_forcefully(stream)
                        raise ConnectError("the server closed the connection during the handshake")
                    receiver.opened = True
                    transport = WebSocketTransport(ws, stream, scope, receiver)
                    task_status.started(transport)
                    if ping_interval is not None:
                        inner.start_soon(transport._keepalive, ping_interval)
        except BaseException as exc:
            leaf = _leaf(exc)
            if transport is None:
                if leaf is exc:
                    raise
                raise leaf from None
            if isinstance(leaf, Exception):
                # After the handshake nothing may escape into the caller's nursery (the
                # keepalive task, say): record it and wake receive_batch to report the end.
                transport._fatal = redact(f"{type(leaf).__name__}: {leaf}", secrets)
                transport._receiver.reader_done = True
                transport._receiver.lot.unpark_all()
                await trio.aclose_forcefully(transport._stream)
            else:
                raise

    with map_exceptions("WebSocket connect", secrets=secrets), trio.fail_after(connect_timeout):
        transport: WebSocketTransport = await nursery.start(run_connection)
    return transport
