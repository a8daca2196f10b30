"""The read side of the WebSocket transport: ``Receiver`` and its ``ReadGate``.

``Receiver.read_once`` is one socket read and the dispatch of everything in it, run by
whichever task needs data (``_websocket``'s module docstring says who and when): whole text
frames come out of ``FrameSplitter`` as messages, every other frame goes to wsproto, whose
events go to the connection's handlers (``_ws_connection.WsConnection``) or, for messages,
to this receiver's list. Nothing here has a task of its own.

Invariants:
- One reader at a time: every read happens under ``read_lock`` (a ``ReadGate``).
- Messages are kept in arrival order in ``items`` until ``take()``; after a local close
  (``stop``) nothing more is kept.
- After the handshake nothing raises out of ``read_once``: a failure ends reading
  (``reader_done``) and is recorded (``error``, ``violation``, ``oversized``) for the
  transport to report as its end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, cast

import trio
import wsproto.events
import wsproto.utilities
from wsproto.connection import ConnectionState

from ._errors import ConnectError, server_text
from ._frames import FrameSplitter, Part
from ._lean_stream import LeanSocketStream
from ._ws_connection import WsClosed, WsConnection

__all__ = ["IDLE_READ_LIMIT", "RECEIVE_BUFFER_SIZE", "ReadGate", "Receiver"]

RECEIVE_BUFFER_SIZE: Final = 64 * 2**10
#: The idle reader stops reading once this many characters of messages wait unread.
IDLE_READ_LIMIT: Final = 2**20


class ReadGate:
    """Who reads the socket: one task at a time (``Receiver.read_lock``).

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


class Receiver:
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
        self.read_lock = ReadGate()
        self.consumer_in = False  # receive_batch is reading (or waiting to)
        self.reads = 0  # socket reads that brought data
        self.idle_scope: trio.CancelScope | None = None  # the idle reader's current read
        # Parts a read on the host's loop took from the socket but could not dispatch
        # without waiting (``read_nowait``); ``read_once`` dispatches them first.
        self.backlog: list[Part | BaseException | None] = []
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
        if self.backlog:
            # What a read on the host's loop (``read_nowait``) could not dispatch without
            # waiting, in stream order, before anything newer.
            backlog, self.backlog = self.backlog, []
            await self._dispatch(backlog)
            return
        try:
            data = await self._stream.receive_some(RECEIVE_BUFFER_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._lost()
            return
        if not data:
            self._eof()
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
        await self._dispatch(splitter.feed(data))

    async def _dispatch(self, parts: Sequence[Part | BaseException | None]) -> None:
        """Hand what one read brought on, in order: text messages to ``items``, other frames
        to wsproto; (from ``backlog`` only) ``None`` is the end of the stream, an exception
        a failed read."""
        for part in parts:
            if type(part) is str:
                if not self.discard and not self.peer_closed:
                    self.items.append(part)
            elif type(part) is bytes:
                if not await self._to_wsproto(part):
                    return
            elif part is None:
                self._eof()
                return
            elif isinstance(part, BaseException):
                self._lost()
                return
            else:  # TOO_BIG
                await self._too_big()
                self.reader_done = True
                return

    def read_nowait(self) -> bool | None:
        """One read without waiting, for a consumer on the host's loop
        (``Transport.read_on``): True when it brought data and every frame in it was a
        whole text message (now in ``items``), False when nothing was there. None when the
        rest needs ``read_once`` (a control or binary frame, the end, a failed read): it is
        kept in ``backlog``, which the next ``read_once`` dispatches first, so nothing is
        lost or reordered. The caller holds ``read_lock``; only after the handshake."""
        stream = self._stream
        splitter = self._splitter
        assert isinstance(stream, LeanSocketStream)
        assert splitter is not None
        try:
            data = stream.read_nowait(RECEIVE_BUFFER_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError) as exc:
            self.backlog.append(exc)
            return None
        if data is None:
            return False
        if not data:
            self.backlog.append(None)
            return None
        self.reads += 1
        parts = splitter.feed(data)
        items = self.items
        keep = not self.discard and not self.peer_closed
        for index, part in enumerate(parts):
            if type(part) is not str:
                self.backlog.extend(parts[index:])
                return None
            if keep:
                items.append(part)
        return True

    def _lost(self) -> None:
        """The stream broke or was closed under the reader."""
        ws = self._ws
        assert ws is not None
        ws.abort()
        self.reader_done = True

    def _eof(self) -> None:
        ws = self._ws
        assert ws is not None
        if ws.proto.state is not ConnectionState.CLOSED:
            ws.abort()  # TCP closed before the WebSocket: 1006
        self.reader_done = True

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
