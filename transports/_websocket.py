"""The WebSocket transport: ``connect_websocket()`` → ``WebSocketTransport`` (wsproto).

Design (SPEC §3 hot-path rule, §4):
- **Reading happens in the consumer's task.** A WebSocket library with a reader task of its
  own (trio-websocket, which this transport used to wrap) hands every message through an
  internal channel: each event then costs a wakeup of that task *and* of whoever reads it.
  Here there is no reader task: ``receive_batch()`` itself reads the socket
  (``_ws_reader.Receiver.read_once``: one read of up to 64 KiB, every wsproto event in it
  dispatched to the connection's handlers in ``_ws_connection.py``, complete text messages
  appended to a list without yielding). At a realtime pace an event costs one wakeup of the
  consumer; in a burst one read yields one batch. After the handshake the bytes first pass
  ``FrameSplitter`` (``_frames.py``): whole text frames are decoded there, every other frame
  goes to wsproto whole, so wsproto keeps the close handshake, pings, fragments and protocol
  errors. With ``LeanSocketStream`` (one wakeup per read), engine CPU per event at 50
  conversations × 50 events/s on the development VM fell from ≈ 140 µs to ≈ 75 µs, task
  steps per event from 4.15 to 2.15 (the engine's parser, then the host).
  ``WsConnection`` (``_ws_connection.py``) owns wsproto's state and every write: the
  opening request, pongs, close replies, pings, our messages; the behaviour it keeps from
  trio-websocket (handshakes, ping replies, abort and 1006 on EOF or reset, 1009) is pinned
  by ``test_transport_websocket*.py`` against trio-websocket's server.
- **Who reads when the consumer does not.** Three waits need the peer's answer while the
  consumer may be away, so they read themselves while nobody else is reading
  (``read_lock``; messages they read stay queued, in order, for the next batch): the
  keepalive waiting for its pong, ``aclose()`` waiting for the close reply, and the **idle
  reader**. The idle reader lives in the keepalive task: on each tick (``liveness_timeout
  / 4``, at most 0.5 s) where the consumer has been out of ``receive_batch`` since the
  previous tick, it reads until the consumer comes back, so the peer's pings are answered
  (and its close replied to) while the host or engine is not reading. It stops once
  ``_ws_reader.IDLE_READ_LIMIT`` characters of messages wait unread: beyond that, unread data waits
  in the kernel, where TCP flow control bounds it (the keepalive's read for its pong stops
  there too, and a ping whose pong is queued behind that much data counts as answered:
  the peer is sending, the consumer is the slow one). A consumer that comes back while the idle
  reader holds the lock cancels that read (a read is cancelled only while it waits for the
  socket, so no byte is lost; the TLS handshake is long done) and takes over: the hop costs
  one wakeup, once, after an idle period; a consumer that keeps reading never meets it.
- **One writer.** All writes (our text frames, keepalive pings, pongs and close replies) go
  through ``WsConnection._send``, serialised by a ``StrictFIFOLock`` in call order. A send
  never waits on reading (the write lock is never held across a read).
- **Binary frames** are dropped and counted (``TransportStatistics.binary_frames_dropped``):
  the realtime protocol is text-only, a binary frame carries no event, and the engine must
  never die on a frame.
- **Lifecycle.** The handshake and the keepalive run in a private nursery started inside
  the caller's nursery, so a handshake rejection never cancels the caller's tasks; it becomes
  ``ConnectError``. After the handshake a read that fails ends the transport with
  ``TransportEnded(reason="error")`` instead of raising into the reader. Liveness: a ping
  once the peer has sent nothing for ``liveness_timeout / 2`` seconds; no pong within
  another ``liveness_timeout / 2`` ends the transport with ``TransportEnded("error", 1006,
  "keepalive: ...")``, so a half-open peer is noticed within ``liveness_timeout`` of the
  last thing it sent (SPEC §3.4). A peer that streams is never pinged (as aiohttp's
  heartbeat, which any received message resets); a dead path the other way shows up as the
  server's own keepalive closing. An explicit ``ping_interval`` keeps its old meaning (a
  ping after ``ping_interval`` of silence, the same time for the pong);
  ``ping_interval=None`` turns keepalive and the idle reader off.
  ``aclose()`` discards messages not yet received: the next batch is just
  ``TransportEnded("requested", 1000)``; after a peer close, messages read before it come
  first.
- **TLS** verification is on for ``wss`` (``ssl.create_default_context()``), and the TLS
  handshake is completed inside ``connect_timeout`` so certificate errors surface as
  ``ConnectError`` instead of a hang.
"""

from __future__ import annotations

import math
import ssl
import urllib.parse
from collections.abc import Callable, Mapping
from functools import partial
from typing import Final, Literal

import trio

from duplex.protocol._audio import AudioFrame

from ._abc import (
    ENDED_ERROR,
    ENDED_REQUESTED,
    Counters,
    Inbound,
    LoopWatch,
    Transport,
    TransportEnded,
    TransportKind,
    TransportStatistics,
    ended_by_peer_close,
)
from ._errors import (
    ConnectError,
    TransportClosed,
    map_exceptions,
    printable,
    redact,
    server_text,
)
from ._lean_stream import LeanSocketStream, wrap_stream
from ._ws_connection import CloseReason, WsClosed, WsConnection
from ._ws_reader import Receiver

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "WebSocketTransport",
    "connect_websocket",
]

DEFAULT_MAX_MESSAGE_SIZE: Final = 16 * 2**20
#: The idle reader's tick, at most (pings are answered within about two ticks).
IDLE_TICK_MAX_S: Final = 0.5
DEFAULT_LIVENESS_TIMEOUT: Final = 5.0
CLOSE_TIMEOUT_S: Final = 2.0
_SECRET_HEADERS: Final = frozenset({"authorization", "api-key", "openai-insecure-api-key"})


class WebSocketTransport(Transport):
    """A connected realtime WebSocket. Create with ``connect_websocket``."""

    def __init__(
        self,
        ws: WsConnection,
        stream: trio.abc.Stream,
        scope: trio.CancelScope,
        receiver: Receiver,
    ) -> None:
        self._ws = ws
        self._stream = stream
        self._scope = scope  # covers the keepalive task
        self._receiver = receiver
        self._counters = Counters()
        self._closing = False  # aclose() was called
        self._closed = trio.Event()  # aclose() has finished
        self._finished = False  # TransportEnded was delivered
        self._fatal: str | None = None  # set when something other than the peer ended it
        self._tick = IDLE_TICK_MAX_S  # the keepalive's tick, set when it starts

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
        except WsClosed as exc:
            reason = _describe(exc.reason, self._receiver.secrets)
            raise TransportClosed(f"the WebSocket is closed ({reason})") from exc
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
            # A checkpoint even here (trio convention): a caller looping on receive_batch
            # must still see its cancellation.
            await trio.lowlevel.checkpoint()
            raise TransportClosed("the WebSocket has ended")
        receiver = self._receiver
        if receiver.items or self._ended():
            # A checkpoint even when data is ready (trio convention), once per batch.
            await trio.lowlevel.checkpoint()
        else:
            # Read in this task until a read produced a message or the end: a realtime event
            # costs one wakeup of the consumer, with no reader task in between. (The lock is
            # taken without a checkpoint when free, which is always but during a keepalive
            # ping or a close: the read itself is this call's checkpoint.)
            lock = receiver.read_lock
            receiver.consumer_in = True
            try:
                if not lock.acquire_nowait():
                    receiver.claim()  # the idle reader yields at once
                    await lock.acquire()
                try:
                    while not receiver.items and not self._ended():
                        await receiver.read_once()
                finally:
                    lock.release()
            finally:
                receiver.consumer_in = False
        return self._take_batch()

    def _take_batch(self) -> list[Inbound]:
        """The batch of what was read: the messages, then the end once there is one."""
        receiver = self._receiver
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
            batch = texts  # type: ignore[assignment]  # ours now: take() swapped it out
            if self._ended():
                batch.append(self._ended_item())
        if isinstance(batch[-1], TransportEnded):
            self._finished = True
        counters.count_batch(len(batch))
        return batch

    # ---- reading on the host's loop (``Transport.read_on``) -----------------------------
    # Plain TCP only: a TLS stream decrypts in trio's ``SSLStream``, which reads only by
    # awaiting, so ``wss://`` keeps ``receive_batch``.

    def read_on(self, loop: LoopWatch, ready: Callable[[], object]) -> bool:
        stream = self._stream
        receiver = self._receiver
        if (
            type(stream) is not LeanSocketStream
            or self._finished
            or self._ended()
            or receiver.items
            or receiver.backlog
            # An idle reader or a keepalive is reading: what it reads, the loop would not
            # see again. receive_batch takes over from it (``claim``).
            or receiver.read_lock.locked()
        ):
            return False
        if not stream.watch(loop, ready):
            return False
        # The idle reader stays away: this consumer is reading.
        receiver.consumer_in = True
        return True

    def stop_reading_on(self) -> None:
        stream = self._stream
        if type(stream) is LeanSocketStream:
            stream.unwatch()
        self._receiver.consumer_in = False

    def receive_batch_nowait(self) -> list[Inbound] | None:
        receiver = self._receiver
        if self._finished or self._closing or receiver.backlog or self._ended():
            return None
        if not receiver.items:
            if not receiver.read_lock.acquire_nowait():
                return None  # a keepalive or close waits for the peer's answer
            try:
                # Until a whole message, nothing more, or something for receive_batch: a
                # read that brought only part of a message says nothing of what is left.
                got = receiver.read_nowait()
                while got and not receiver.items:
                    got = receiver.read_nowait()
            finally:
                receiver.read_lock.release()
            if got is None:
                # Something after the messages needs receive_batch (a control frame, the
                # end): it delivers the messages first. Handing them over here would leave
                # the rest waiting for a readiness that a drained socket never reports.
                return None
            if not receiver.items:
                return []
        return self._take_batch()

    async def _read_until(self, done: Callable[[], bool], *, yielding: bool = False) -> None:
        """Read (when no one else is) until ``done()``; for waits that need the peer's answer
        while the consumer may not be reading: a pong, the close reply. ``yielding``: each
        read gives way to a consumer that comes back (``claim``), and reading resumes after
        it, so the wait still ends only with ``done()``."""
        receiver = self._receiver
        while not done() and not receiver.reader_done:
            if receiver.read_lock.locked():
                receiver.claim()
            async with receiver.read_lock:
                if done() or receiver.reader_done:
                    break
                try:
                    if not yielding:
                        await receiver.read_once()
                    else:
                        with trio.CancelScope() as scope:
                            receiver.idle_scope = scope
                            try:
                                await receiver.read_once()
                            finally:
                                receiver.idle_scope = None
                finally:
                    # Also when this wait is cut short part-way through dispatching a read
                    # (its pong came, and a handler was sending): what it read is passed on.
                    self._tell_loop_reader()

    def _tell_loop_reader(self) -> None:
        """After a read by another task while the host's loop watches for the consumer
        (``read_on``): what that read left for the consumer (messages, the end) came from
        data the loop will not see again, so the loop's reader is called now, in this task:
        it takes the messages (``receive_batch_nowait`` hands out what is queued whoever
        holds the lock) and applies them synchronously, or hands over to ``receive_batch``
        for the rest (the lock is held, so it reads nothing itself)."""
        stream = self._stream
        receiver = self._receiver
        if type(stream) is LeanSocketStream and (
            receiver.items or receiver.backlog or self._ended()
        ):
            stream.poke()

    def _ended_item(self) -> TransportEnded:
        """How the connection ended, by the rule in ``_abc`` (``TransportEnded``)."""
        receiver = self._receiver
        fatal = self._fatal or receiver.error
        if fatal is not None:
            return TransportEnded(ENDED_ERROR, 1006, fatal)
        if receiver.violation is not None:
            code, reason = receiver.violation
            return TransportEnded(
                ENDED_ERROR, code, f"the server broke the WebSocket protocol: {reason}"
            )
        close = self._ws.close_reason
        if receiver.oversized and close is not None:
            return TransportEnded(ENDED_ERROR, int(close.code), close.reason)
        if close is None or not receiver.peer_closed or close.code == 1006:
            return TransportEnded(
                ENDED_ERROR, 1006, "the connection was lost without a WebSocket close"
            )
        detail = server_text(close.reason, receiver.secrets) if close.reason else None
        return ended_by_peer_close(close.code, detail)

    async def aclose(self) -> None:
        if self._closing:
            # A second close (e.g. the WebRTC sideband reader reacting to the first) waits
            # for the one in progress; returning at once let its caller cancel the reader
            # before the server's close reply arrived, so every close took the full timeout.
            await self._closed.wait()
            return
        self._closing = True
        self._receiver.stop()
        self._receiver.claim()
        ws = self._ws
        try:
            with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
                scope.shield = True
                async with trio.open_nursery() as nursery:
                    # Nobody else may be reading: read the close reply here.
                    nursery.start_soon(self._read_until, ws.close_done.is_set)
                    await ws.aclose(1000)
                    nursery.cancel_scope.cancel()
        finally:
            # WsConnection.aclose returns at once once a close is under way (a peer-initiated
            # close, an oversized message); closing here releases the socket in every case.
            await trio.aclose_forcefully(self._stream)
            self._scope.cancel()
            self._closed.set()

    def statistics(self) -> TransportStatistics:
        return self._counters.snapshot("websocket")

    async def _keepalive(self, ping_every: float, pong_wait: float) -> None:
        """Liveness and the idle reader (module docstring): one task, one timer.

        A ping goes out only after ``ping_every`` without a read bringing data: a peer that
        is sending is alive (as aiohttp's heartbeat, which any received message resets), so
        a streaming conversation costs no ping and no pong. The time of the last read is
        known to a tick (this task does not look at the clock per read): the peer counts as
        heard at the previous check, never later than it was, so the bound holds."""
        tick = self._tick = min(IDLE_TICK_MAX_S, ping_every / 2)
        receiver = self._receiver
        heard = checked = trio.current_time()  # the handshake's answer was the last word
        reads = receiver.reads
        seen = -1
        while True:
            now = trio.current_time()
            if receiver.reads != reads:
                reads = receiver.reads
                heard = checked  # the peer spoke after the previous check
            checked = now
            next_ping = heard + ping_every
            if now >= next_ping:
                if not await self._ping(pong_wait):
                    return
                heard = checked = trio.current_time()
                reads = receiver.reads
                continue
            batches = self._counters.batches_in
            idle = not receiver.consumer_in and batches == seen  # no batch since last tick
            seen = batches
            if idle and not receiver.read_lock.locked():
                await self._idle_read(next_ping)
            else:
                await trio.sleep_until(min(next_ping, _next_tick(trio.current_time(), tick)))

    async def _idle_read(self, until: float) -> None:
        """Read for an absent consumer until it returns, ``until``, the end, or the limit."""
        receiver = self._receiver
        with trio.CancelScope(deadline=until) as scope:
            receiver.idle_scope = scope
            try:
                async with receiver.read_lock:
                    while not receiver.consumer_in and not self._ended() and not receiver.full():
                        await receiver.read_once()
            finally:
                receiver.idle_scope = None
        if not scope.cancelled_caught:
            # Stopped for the limit or the end: look again next tick.
            await trio.sleep_until(min(until, _next_tick(trio.current_time(), self._tick)))

    async def _ping(self, pong_wait: float) -> bool:
        """One ping; False (and the transport ended) when no pong came within ``pong_wait``."""
        ws = self._ws
        try:
            with trio.move_on_after(pong_wait) as timeout:
                async with trio.open_nursery() as nursery:
                    # The consumer reads the pong when it is reading; if it is not,
                    # read here (messages stay queued for its next receive_batch).
                    pong = trio.Event()
                    receiver = self._receiver
                    nursery.start_soon(
                        partial(self._read_until, yielding=True),
                        lambda: pong.is_set() or receiver.full(),
                    )
                    await ws.ping()
                    pong.set()
                    nursery.cancel_scope.cancel()
        except WsClosed:
            return False
        if timeout.cancelled_caught:
            if self._receiver.full():
                # The pong is queued behind more unread messages than the idle limit: the
                # peer is sending, the consumer is the slow one. Check again next time.
                return True
            self._fatal = f"keepalive: no answer to a ping within {pong_wait:g} s"
            # The reader sees the closed stream, records 1006 and exits, which wakes
            # receive_batch.
            await trio.aclose_forcefully(self._stream)
            return False
        return True


def _next_tick(now: float, tick: float) -> float:
    """The next multiple of ``tick`` on trio's clock, at most ``tick`` from ``now``.

    Every connection with the same tick wakes at the same instants, so a host with many
    conversations pays one scheduler wakeup per tick instead of one per connection (under
    ``duplex.aio``'s guest mode each wakeup is a round trip through trio's I/O thread)."""
    return math.floor(now / tick) * tick + tick


def _describe(close: CloseReason | None, secrets: tuple[str, ...]) -> str:
    if close is None:
        return "no close reason"
    reason = f": {server_text(close.reason, secrets)}" if close.reason else ""
    return f"code {int(close.code)}{reason}"


def _tls_message(exc: trio.BrokenResourceError, url: str) -> str:
    """A TLS handshake failure with the SSL error kept (trio wraps it, message empty)."""
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLError):
        reason = cause.reason or cause.strerror or str(cause)
        hint = ""
        if cause.reason == "WRONG_VERSION_NUMBER":
            hint = " (the port does not speak TLS: use ws:// for a plain server)"
        elif isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or reason
        return f"TLS handshake with {url} failed: {type(cause).__name__}: {reason}{hint}"
    if cause is not None:
        return f"TLS handshake with {url} failed: {type(cause).__name__}: {cause}"
    return f"TLS handshake with {url} failed: the server closed the connection"


def _split_url(url: str) -> tuple[str, int, str, bool]:
    """Host, port, resource and TLS flag of a ws/wss URL; ``ValueError`` saying what is
    wrong with it otherwise."""
    shown = printable(redact(url))

    def bad(what: str) -> ValueError:
        return ValueError(f"invalid WebSocket URL {shown!r}: {what}")

    if not isinstance(url, str) or not url.strip():
        raise bad("empty")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        raise bad(str(exc)) from None
    if parts.scheme not in ("ws", "wss"):
        raise bad(f"the scheme must be ws or wss, not {parts.scheme!r}")
    if not parts.hostname:
        raise bad("no host name")
    secure = parts.scheme == "wss"
    port = port or (443 if secure else 80)
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return parts.hostname, port, resource, secure


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
    ping_interval: float | Literal["auto"] | None = "auto",
    ssl_context: ssl.SSLContext | None = None,
    liveness_timeout: float = DEFAULT_LIVENESS_TIMEOUT,
) -> WebSocketTransport:
    """Open a realtime WebSocket to ``url`` (``ws://`` or ``wss://``).

    The connection's background tasks run in ``nursery``; ``aclose()`` the transport to end
    them. ``headers`` are sent with the upgrade request (``Authorization`` among them).

    ``liveness_timeout``: a peer that answers nothing (half-open, vanished without a FIN) is
    noticed within this many seconds: a ping every half of it, the other half for the pong.
    ``ping_interval``: ``"auto"`` (derive from ``liveness_timeout``), a number of seconds
    (ping after that long without data from the peer, wait as long for the pong), or
    ``None`` (no keepalive, no idle reader).

    Raises:
        ConnectError: TCP, TLS or the upgrade failed, or ``connect_timeout`` elapsed;
            ``status`` holds the HTTP status of a rejected upgrade.
        ValueError: ``url`` is not a ws/wss URL (the message says what is wrong), or
            ``liveness_timeout`` is not positive.
    """
    host, port, resource, secure = _split_url(url)
    if not liveness_timeout > 0:
        raise ValueError(f"liveness_timeout must be > 0 seconds, not {liveness_timeout!r}")
    if secure and ssl_context is None:
        ssl_context = ssl.create_default_context()
    elif not secure:
        ssl_context = None
    host_header = host if port in (80, 443) else f"{host}:{port}"
    extra_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    secret_values = [v for k, v in headers.items() if k.lower() in _SECRET_HEADERS]
    secrets = tuple(secret_values + [v.split()[-1] for v in secret_values if " " in v])
    shown_url = printable(redact(url, secrets))

    async def run_connection(task_status: trio.TaskStatus[WebSocketTransport]) -> None:
        scope = trio.CancelScope()
        transport: WebSocketTransport | None = None
        opened: trio.abc.AsyncResource | None = None  # closed here if connecting fails
        try:
            with scope:
                async with trio.open_nursery() as inner:
                    stream: trio.abc.Stream
                    tcp = opened = wrap_stream(await trio.open_tcp_stream(host, port))
                    if ssl_context is None:
                        stream = tcp
                    else:
                        ssl_stream = trio.SSLStream(
                            tcp, ssl_context, server_hostname=host, https_compatible=True
                        )
                        try:
                            await ssl_stream.do_handshake()
                        except trio.BrokenResourceError as exc:
                            raise ConnectError(_tls_message(exc, shown_url)) from exc
                        stream = ssl_stream
                    receiver = Receiver(max_message_size, stream, secrets)
                    ws = WsConnection(stream, host_header, resource, extra_headers)
                    receiver.install(ws)
                    # A rejection (UpgradeRejected) or a broken answer (ConnectError) raises
                    # here; an answer that never comes ends with the stream or the timeout.
                    await receiver.handshake()
                    if not ws.opened:
                        await trio.aclose_forcefully(stream)
                        raise ConnectError("the server closed the connection during the handshake")
                    receiver.opened = True
                    transport = WebSocketTransport(ws, stream, scope, receiver)
                    task_status.started(transport)
                    if ping_interval == "auto":
                        half = liveness_timeout / 2
                        inner.start_soon(transport._keepalive, half, half)
                    elif ping_interval is not None:
                        inner.start_soon(transport._keepalive, ping_interval, ping_interval)
        except BaseException as exc:
            leaf = _leaf(exc)
            if transport is None:
                # A failed connect releases its socket now, not when the garbage collector
                # finds the traceback cycle (issue 12.5): 401, 429, timeout, TLS, bad accept.
                if opened is not None:
                    await trio.aclose_forcefully(opened)
                if leaf is exc:
                    raise
                raise leaf from leaf.__cause__  # keeps the leaf's own cause
            if isinstance(leaf, Exception):
                # After the handshake nothing may escape into the caller's nursery (the
                # keepalive task, say): record it and wake receive_batch to report the end.
                transport._fatal = server_text(f"{type(leaf).__name__}: {leaf}", secrets)
                transport._receiver.reader_done = True
                await trio.aclose_forcefully(transport._stream)
            else:
                # Cancelled: the owner's nursery is going away. aclose() has usually closed
                # the socket already; if not (nobody called it, or a cancelled start() never
                # received the transport: trio's nursery.start() can raise Cancelled after
                # the task started), release the socket now rather than at garbage collection.
                await trio.aclose_forcefully(transport._stream)
                raise

    try:
        with (
            map_exceptions(f"WebSocket connect to {shown_url}", secrets=secrets),
            trio.fail_after(connect_timeout),
        ):
            transport: WebSocketTransport = await nursery.start(run_connection)
    except ConnectError as exc:
        if isinstance(exc.__cause__, trio.TooSlowError):
            raise ConnectError(
                f"WebSocket connect to {shown_url} timed out after {connect_timeout:g} s"
            ) from exc.__cause__
        raise
    return transport
