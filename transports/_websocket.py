"""The WebSocket transport: ``connect_websocket()`` → ``WebSocketTransport`` (wsproto).

Design (SPEC §3 hot-path rule, §4):
- **Reading happens in the consumer's task.** A WebSocket library with a reader task of its
  own (trio-websocket, which this transport used to wrap) hands every message through an
  internal channel: each event then costs a wakeup of that task *and* of whoever reads it.
  Here there is no reader task: ``receive_batch()`` itself reads the socket
  (``_Receiver.read_once``: one read of up to 64 KiB, every wsproto event in it dispatched to
  the connection's handlers in ``_ws_connection.py``, complete text messages appended to a
  list without yielding). At a realtime pace an event costs one wakeup of the consumer; in
  a burst one read yields one batch. After the handshake the bytes first pass
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
  ``IDLE_READ_LIMIT`` characters of messages wait unread: beyond that, unread data waits
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

import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, Final, Literal, cast

import trio
import wsproto.events
import wsproto.utilities
from wsproto.connection import ConnectionState

from duplex.protocol._audio import AudioFrame

from ._abc import (
    ENDED_ERROR,
    ENDED_REQUESTED,
    Counters,
    Inbound,
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
from ._frames import FrameSplitter
from ._lean_stream import wrap_stream
from ._ws_connection import CloseReason, WsClosed, WsConnection

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "WebSocketTransport",
    "connect_websocket",
]

DEFAULT_MAX_MESSAGE_SIZE: Final = 16 * 2**20
RECEIVE_BUFFER_SIZE: Final = 64 * 2**10
#: The idle reader stops reading once this many characters of messages wait unread.
IDLE_READ_LIMIT: Final = 2**20
#: The idle reader's tick, at most (pings are answered within about two ticks).
IDLE_TICK_MAX_S: Final = 0.5
DEFAULT_LIVENESS_TIMEOUT: Final = 5.0
CLOSE_TIMEOUT_S: Final = 2.0
_SECRET_HEADERS: Final = frozenset({"authorization", "api-key", "openai-insecure-api-key"})


class _ReadGate:
    """Who reads the socket: one task at a time (``_Receiver.read_lock``).

    A flag and a parking lot rather than ``trio.Lock``: the consumer takes the gate and gives
    it back once per batch, and a Lock's owner bookkeeping (its parking-lot breaker, the
    owner checks) cost more than the rest of taking a batch. Nothing here needs an owner:
    every holder releases in a ``finally`` of its own.
    """

    __slots__ = ("_lot", "held")

    def __init__(self) -> None:
        self.held = False
        self._lot = trio.lowlevel.ParkingLot()

    def locked(self) -> bool:
        return self.held

    def acquire_nowait(self) -> bool:
        """Take the gate if it is free (no checkpoint); False if someone holds it."""
        if self.held:
            return False
        self.held = True
        return True

    async def acquire(self) -> None:
        """Take the gate, waiting for it (a checkpoint, as ``trio.Lock.acquire``)."""
        if not self.held:
            await trio.lowlevel.checkpoint()
        while self.held:
            await self._lot.park()  # a cancelled wait takes nothing
        self.held = True

    def release(self) -> None:
        self.held = False
        if self._lot:
            self._lot.unpark()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class _Receiver:
    """The read side (see module docstring): the connection's event handlers, driven by
    ``read_once`` in whichever task is reading, and the list of complete text messages they
    fill. Everything runs on the trio thread."""

    def __init__(
        self, max_message_size: int, stream: trio.abc.Stream, secrets: tuple[str, ...] = ()
    ) -> None:
        self._max_message_size = max_message_size
        self._stream = stream
        self.secrets = secrets  # removed from every text built from server data
        self.items: list[str] = []
        self.binary = 0  # binary messages dropped since the last batch
        # One reader at a time (receive_batch, the keepalive while it waits for a pong,
        # aclose while it waits for the close reply); never held while waiting to write
        # anything but a control frame (pong, close reply).
        self.read_lock = _ReadGate()
        self.consumer_in = False  # receive_batch is reading (or waiting to)
        self.reads = 0  # socket reads that brought data
        self.idle_scope: trio.CancelScope | None = None  # the idle reader's current read
        self._parts: list[str | bytes] = []
        self._size = 0
        self.peer_closed = False  # a close frame arrived
        self.reader_done = False  # reading is over: EOF, a broken stream, a protocol error
        self.oversized = False
        self.opened = False  # the handshake completed
        self.error: str | None = None  # reading failed after the handshake
        # The server broke the protocol (wsproto's close code and reason for it): an error,
        # never a clean close.
        self.violation: tuple[int, str] | None = None
        self.discard = False  # closing locally: drop what still arrives
        self._ws: WsConnection | None = None
        self._splitter: FrameSplitter | None = None  # set once the handshake is done
        self._head_tail = b""  # the end of the HTTP answer may span reads
        self._handlers: dict[type[Any], Callable[[Any], Awaitable[None]]] = {}

    def install(self, ws: WsConnection) -> None:
        """Dispatch what is read to ``ws``'s handlers (and messages to this receiver)."""
        self._ws = ws

        async def on_close(event: wsproto.events.CloseConnection) -> None:
            state = ws.proto.state
            if state is ConnectionState.REMOTE_CLOSING or state is ConnectionState.CLOSED:
                # A close frame from the peer: the connection answers it.
                await ws.on_close(event)
                self.peer_closed = True
            else:
                # wsproto reports a frame it could not parse (invalid UTF-8, a masked server
                # frame, RSV bits, a bad close code, an oversized ping) as a CloseConnection
                # without any close frame having arrived: that is a protocol violation.
                await self._fail(int(event.code), event.reason or "protocol error")

        events = wsproto.events
        self._handlers = {
            events.AcceptConnection: ws.on_accept,
            events.RejectConnection: ws.on_reject,
            events.RejectData: ws.on_reject_data,
            events.CloseConnection: on_close,
            events.Ping: ws.on_ping,
            events.Pong: ws.on_pong,
            events.TextMessage: self.on_message,
            events.BytesMessage: self.on_message,
        }

    async def handshake(self) -> None:
        """Send the upgrade request and read until the server answered it."""
        ws = self._ws
        assert ws is not None
        try:
            await ws.send_request()
        except WsClosed:
            self.reader_done = True
            return
        # Under the read lock: the read that completes the handshake may carry frames after
        # the 101 (even a close), and they are dispatched before connect returns; a
        # receive_batch starting then must wait for them instead of reading past them.
        async with self.read_lock:
            while not ws.opened and not self.reader_done:
                await self.read_once()

    async def read_once(self) -> None:
        """One socket read and the dispatch of every event in it: a reader loop's body, run
        by the task that wants data instead of a task of its own. After the
        handshake nothing escapes: a failure ends reading and is reported as the end."""
        try:
            await self._read_once()
        except Exception as exc:
            if not self.opened:
                raise
            self.reader_done = True
            self.error = server_text(f"{type(exc).__name__}: {exc}", self.secrets)

    async def _read_once(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            data = await self._stream.receive_some(RECEIVE_BUFFER_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            ws.abort()
            self.reader_done = True
            return
        if not data:
            if ws.proto.state is not ConnectionState.CLOSED:
                ws.abort()  # TCP closed before the WebSocket: 1006
            self.reader_done = True
            return
        self.reads += 1  # the peer spoke: the keepalive need not ask (``_keepalive``)
        data = bytes(data) if type(data) is not bytes else data  # TLS may hand a bytearray
        splitter = self._splitter
        if splitter is None:
            # The opening handshake: wsproto (h11) reads the HTTP answer. Frames that follow
            # it in the same read must not reach wsproto's buffer, or the splitter would
            # start mid-frame: cut at the end of the headers (a 101 has no body).
            probe = self._head_tail + data
            cut = probe.find(b"\r\n\r\n")
            if cut < 0:
                self._head_tail = probe[-3:]
                await self._to_wsproto(data)
                return
            cut += 4 - len(self._head_tail)
            if not await self._to_wsproto(data[:cut]):
                return
            data = data[cut:]
            if not ws.opened:
                if data:
                    await self._to_wsproto(data)  # a rejection's body
                return
            splitter = self._splitter = FrameSplitter(self._max_message_size)
            if not data:
                return
        for part in splitter.feed(data):
            if type(part) is str:
                if not self.discard and not self.peer_closed:
                    self.items.append(part)
            elif type(part) is bytes:
                if not await self._to_wsproto(part):
                    return
            else:  # TOO_BIG
                await self._too_big()
                self.reader_done = True
                return

    async def _to_wsproto(self, data: bytes) -> bool:
        """Feed wsproto and dispatch its events; False once reading is over."""
        ws = self._ws
        assert ws is not None
        proto = ws.proto
        if proto.state is not ConnectionState.CLOSED:
            try:
                proto.receive_data(data)
            except wsproto.utilities.RemoteProtocolError as err:
                if not self.opened:
                    # The answer to our upgrade is not a WebSocket handshake: nothing to send
                    # back (the hint is an HTTP rejection only a server can send).
                    raise ConnectError(_handshake_message(err)) from err
                hint = err.event_hint
                code = hint.code if isinstance(hint, wsproto.events.CloseConnection) else 1002
                await self._fail(int(code), str(err))
                return False
        handlers = self._handlers
        for event in proto.events():
            handler = handlers.get(type(event))
            if handler is None:
                continue
            try:
                await handler(event)
            except WsClosed:
                self.reader_done = True
                return False
        if self.oversized:
            self.reader_done = True
            return False
        return True

    async def on_message(
        self, event: wsproto.events.TextMessage | wsproto.events.BytesMessage
    ) -> None:
        if self.oversized:
            return
        data = cast("str | bytes", event.data)  # bytearray only for outgoing data
        if event.message_finished and not self._parts:
            # The common case: a whole message in one frame. No yield anywhere below.
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
            if not self.discard:
                self.items.append(message)
        else:
            self.binary += 1

    async def _fail(self, code: int, reason: str) -> None:
        """Fail the connection after a protocol violation (RFC 6455 §7.1.7): tell the server
        why when the connection is still open, close the socket, stop reading."""
        ws = self._ws
        assert ws is not None
        if self.violation is None:
            self.violation = (code, server_text(reason, self.secrets))
        await ws.fail(code)
        self.reader_done = True

    async def _too_big(self) -> None:
        # Close with 1009 and stop reading (RFC 6455 §7.4.1).
        ws = self._ws
        assert ws is not None
        self._parts = []
        self._size = 0
        self.oversized = True
        await ws.refuse_oversized(self._max_message_size)

    def full(self) -> bool:
        """Enough unread messages wait: reading for an absent consumer stops here."""
        return sum(map(len, self.items)) >= IDLE_READ_LIMIT

    def claim(self) -> None:
        """Someone needs the read lock: the idle reader gives it up at once."""
        scope = self.idle_scope
        if scope is not None:
            scope.cancel()

    def stop(self) -> None:
        """Local close: what is unread is dropped, and so is whatever still arrives."""
        self.discard = True
        self.items = []

    def take(self) -> list[str]:
        items = self.items
        self.items = []
        return items


class WebSocketTransport(Transport):
    """A connected realtime WebSocket. Create with ``connect_websocket``."""

    def __init__(
        self,
        ws: WsConnection,
        stream: trio.abc.Stream,
        scope: trio.CancelScope,
        receiver: _Receiver,
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
                if not yielding:
                    await receiver.read_once()
                    continue
                with trio.CancelScope() as scope:
                    receiver.idle_scope = scope
                    try:
                        await receiver.read_once()
                    finally:
                        receiver.idle_scope = None

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
                await trio.sleep_until(min(next_ping, trio.current_time() + tick))

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
            await trio.sleep_until(min(until, trio.current_time() + self._tick))

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


def _describe(close: CloseReason | None, secrets: tuple[str, ...]) -> str:
    if close is None:
        return "no close reason"
    reason = f": {server_text(close.reason, secrets)}" if close.reason else ""
    return f"code {int(close.code)}{reason}"


def _handshake_message(err: wsproto.utilities.RemoteProtocolError) -> str:
    """What a broken answer to the upgrade request means, in the caller's terms."""
    detail = str(err)
    if "accept token" in detail:
        return (
            "WebSocket handshake failed: the server's Sec-WebSocket-Accept does not match the "
            "Sec-WebSocket-Key sent (not a WebSocket server, or a proxy rewrote the answer)"
        )
    if detail == "Bad HTTP message":
        return (
            "WebSocket handshake failed: the server's answer is not HTTP (a TLS port reached "
            "with ws:// instead of wss://, or not a web server)"
        )
    return f"WebSocket handshake failed: the server's answer is not a WebSocket upgrade ({detail})"


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
                    receiver = _Receiver(max_message_size, stream, secrets)
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
