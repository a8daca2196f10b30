"""The WebSocket transport: ``connect_websocket()`` → ``WebSocketTransport`` (trio-websocket).

Design (SPEC §3 hot-path rule, §4):
- **Batch draining.** trio-websocket's reader task parses frames and puts each complete
  message on an internal memory channel (``WebSocketConnection._recv_channel``). Its public
  ``get_message()`` costs one scheduler round trip per message. ``receive_batch`` instead
  awaits the channel once and then drains it with ``receive_nowait()`` until it would block,
  so a burst costs one wakeup. This relies on the private ``_recv_channel`` attribute
  (present and unchanged from trio-websocket 0.9 through 0.12); ``test_websocket.py`` pins
  the reliance with a test that fails loudly if the attribute disappears.
- **Queue size.** ``message_queue_size`` (default 1024) bounds how far the reader runs ahead
  of the engine: enough for a ~20 s burst of 20 ms audio deltas (≈ 10 MB), after which the
  reader blocks and TCP applies backpressure to the server. trio-websocket's default of 1
  would force a task switch per message. The reader's socket read size is 64 KiB (the
  default 4 KiB is smaller than one audio delta).
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
- **TLS** verification is on for ``wss`` (``ssl.create_default_context()``), and the TLS
  handshake is completed inside ``connect_timeout`` so certificate errors surface as
  ``ConnectError`` instead of a hang.
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import trio
import trio_websocket

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


class WebSocketTransport(Transport):
    """A connected realtime WebSocket. Create with ``connect_websocket``."""

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.abc.Stream,
        scope: trio.CancelScope,
    ) -> None:
        self._ws = ws
        self._stream = stream
        self._scope = scope  # covers the reader and keepalive tasks
        # Private on purpose (see module docstring): draining it is the batch fast path.
        self._recv: trio.MemoryReceiveChannel[str | bytes] = ws._recv_channel
        self._counters = Counters()
        self._closing = False  # aclose() was called
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

    async def receive_batch(self) -> list[Inbound]:
        if self._finished:
            raise TransportClosed("the WebSocket has ended")
        recv = self._recv
        items: list[Inbound] = []
        n_text = n_chars = n_binary = 0
        try:
            while not items:
                # One checkpoint per batch: the first message (or the wait for it)...
                message = await recv.receive()
                while True:
                    if type(message) is str:
                        items.append(message)
                        n_text += 1
                        n_chars += len(message)
                    else:
                        n_binary += 1
                    # ...then everything the reader already queued, with no further yield.
                    try:
                        message = recv.receive_nowait()
                    except trio.WouldBlock:
                        break
        except (trio.EndOfChannel, trio.ClosedResourceError) as exc:
            items.append(self._ended_item(peer_closed=isinstance(exc, trio.EndOfChannel)))
            self._finished = True
        finally:
            counters = self._counters
            counters.messages_in += n_text
            counters.bytes_in += n_chars
            counters.binary_frames_dropped += n_binary
        self._counters.count_batch(len(items))
        return items

    def _ended_item(self, *, peer_closed: bool) -> TransportEnded:
        if self._fatal is not None:
            return TransportEnded(ENDED_ERROR, 1006, self._fatal)
        if self._closing:
            return TransportEnded(ENDED_REQUESTED, 1000, None)
        close = self._ws.closed
        if close is None:
            return TransportEnded(ENDED_ERROR, None, "the connection ended")
        if close.code == 1006:
            return TransportEnded(ENDED_ERROR, 1006, close.reason or "connection lost")
        if not peer_closed:
            # trio-websocket closed our end itself: the only case is an oversized message
            # (it sent close 1009 to the peer).
            return TransportEnded(ENDED_ERROR, close.code, close.reason)
        return TransportEnded(ENDED_CLOSED, close.code, close.reason)

    async def aclose(self) -> None:
        if self._closing:
            await trio.lowlevel.checkpoint()
            return
        self._closing = True
        try:
            with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
                scope.shield = True
                await self._ws.aclose(1000)
        finally:
            # trio-websocket leaves the socket open after a peer-initiated close or an
            # oversized message; closing it here makes aclose() release it in every case.
            await trio.aclose_forcefully(self._stream)
            self._scope.cancel()

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
                # The reader sees the closed stream, records 1006 and closes the queue,
                # which wakes receive_batch.
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
    """Duck-typed nursery for trio-websocket: runs its reader task and reports when it ends.

    trio-websocket waits for the opening handshake with no end condition other than success:
    if the server closes the socket before answering, the reader exits quietly and the
    handshake waits forever. Wrapping the reader lets us cancel that wait instead.
    """

    def __init__(self, nursery: trio.Nursery, on_exit: Callable[[], object]) -> None:
        self._nursery = nursery
        self._on_exit = on_exit

    def start_soon(self, fn: Callable[[], Awaitable[object]], *args: Any, **kwargs: Any) -> None:
        async def run() -> None:
            await fn(*args)
            self._on_exit()  # only on a normal return; exceptions propagate as they are

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
                    with handshake:
                        ws = await trio_websocket.wrap_client_stream(
                            _ReaderStarter(inner, handshake.cancel),  # type: ignore[arg-type]
                            stream,
                            host_header,
                            resource,
                            extra_headers=extra_headers,
                            message_queue_size=message_queue_size,
                            max_message_size=max_message_size,
                            receive_buffer_size=RECEIVE_BUFFER_SIZE,
                        )
                    if handshake.cancelled_caught:
                        await trio.aclose_forcefully(stream)
                        raise ConnectError("the server closed the connection during the handshake")
                    transport = WebSocketTransport(ws, stream, scope)
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
                # After the handshake nothing may escape into the caller's nursery: the
                # reader's queue is already closed, so receive_batch reports the end.
                transport._fatal = redact(f"{type(leaf).__name__}: {leaf}", secrets)
                await trio.aclose_forcefully(transport._stream)
            else:
                raise

    with map_exceptions("WebSocket connect", secrets=secrets), trio.fail_after(connect_timeout):
        transport: WebSocketTransport = await nursery.start(run_connection)
    return transport
