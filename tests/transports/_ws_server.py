"""A scriptable loopback trio-websocket server for transport tests.

``WsServer`` accepts connections on 127.0.0.1 (port 0) and hands every accepted server-side
``WebSocketConnection`` to the test through ``accept()``, so each test scripts the server
inline. Paths select handshake behaviour: ``/reject/<status>`` rejects the upgrade with that
HTTP status; ``/hangup`` closes the socket without answering; anything else is accepted.
Every connection is released (and closed) when the server's ``serve`` context exits.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import trio
import trio_websocket


class WsServer:
    def __init__(self, port: int, accepted: trio.MemoryReceiveChannel[ServerConn]) -> None:
        self.port = port
        self._accepted = accepted
        self.requests: list[tuple[str, list[tuple[bytes, bytes]]]] = []

    def url(self, path: str = "/v1/realtime") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def accept(self) -> ServerConn:
        """The next accepted connection."""
        return await self._accepted.receive()


class ServerConn:
    """A server-side connection plus the event that keeps its handler alive."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, path: str) -> None:
        self.ws = ws
        self.path = path
        self.release = trio.Event()

    async def drop(self) -> None:
        """Close the TCP connection with no close frame (an abrupt drop)."""
        await trio.aclose_forcefully(self.ws._stream)
        self.release.set()


@asynccontextmanager
async def serve(reject_first: int = 0) -> AsyncIterator[WsServer]:
    """Serve on 127.0.0.1; the first ``reject_first`` upgrades are rejected with HTTP 503."""
    send, receive = trio.open_memory_channel[ServerConn](100)
    conns: list[ServerConn] = []
    server: WsServer

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        path = request.path
        server.requests.append((path, list(request.headers)))
        # A client may go away while its rejection is being written (a transport abandoning a
        # join it no longer needs): that is the client's right, not a server failure.
        if len(server.requests) <= reject_first:
            with contextlib.suppress(trio_websocket.ConnectionClosed):
                await request.reject(503, body=b"not yet")
            return
        if path.startswith("/reject/"):
            with contextlib.suppress(trio_websocket.ConnectionClosed):
                await request.reject(int(path.rsplit("/", 1)[1]), body=b"no")
            return
        if path.startswith("/hangup"):
            await trio.aclose_forcefully(request._connection._stream)
            return
        ws = await request.accept()
        conn = ServerConn(ws, path)
        conns.append(conn)
        await send.send(conn)
        await conn.release.wait()

    async with trio.open_nursery() as nursery:
        ws_server = await nursery.start(
            trio_websocket.serve_websocket,
            handler,
            "127.0.0.1",
            0,
            None,
        )
        server = WsServer(ws_server.port, receive)
        try:
            yield server
        finally:
            for conn in conns:
                conn.release.set()
            nursery.cancel_scope.cancel()


class RawConn:
    """One connection to ``serve_raw``: what the client sent, and when it closed."""

    def __init__(self) -> None:
        self.request = b""
        self.received = b""  # what the client sent after the request head
        self.eof = trio.Event()  # the client closed its side (or reset the connection)


class RawServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conns: list[RawConn] = []

    def url(self, path: str = "/v1/realtime", scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    @property
    def open_connections(self) -> int:
        """Connections whose client side has not closed yet."""
        return sum(not conn.eof.is_set() for conn in self.conns)


async def _read_head(stream: trio.SocketStream, conn: RawConn) -> bool:
    # A TLS ClientHello (first byte 0x16) is answered at once, as a plain HTTP server
    # answers a request it cannot parse.
    while b"\r\n\r\n" not in conn.request and conn.request[:1] != b"\x16":
        data = await stream.receive_some(65536)
        if not data:
            return False
        conn.request += data
    return True


def websocket_accept(request: bytes) -> bytes:
    """The correct ``Sec-WebSocket-Accept`` value for a client's upgrade request."""
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            digest = hashlib.sha1(value.strip() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
            return base64.b64encode(digest.digest())
    raise ValueError("no Sec-WebSocket-Key")


@asynccontextmanager
async def serve_raw(
    answer: bytes | Callable[[bytes], bytes] | None,
    *,
    drain: bool = True,
    talk: Callable[[trio.SocketStream], Awaitable[object]] | None = None,
) -> AsyncIterator[RawServer]:
    """A TCP server that reads one HTTP request head, writes ``answer`` (bytes, or built from
    the request; ``None`` answers nothing) and then waits for the client to close, recording
    the EOF (``drain=False``: it never reads again, like a stalled peer). It never closes
    first, so a client that does not close its socket shows up in ``open_connections``.
    ``talk(stream)``, if given, runs after the answer beside the reading (raw frames the
    server sends on its own)."""
    server: RawServer

    async def handler(stream: trio.SocketStream) -> None:
        conn = RawConn()
        server.conns.append(conn)
        try:
            if await _read_head(stream, conn) and answer is not None:
                await stream.send_all(answer if isinstance(answer, bytes) else answer(conn.request))
            if b"\r\n\r\n" in conn.request:
                conn.request, _, conn.received = conn.request.partition(b"\r\n\r\n")
            async with trio.open_nursery() as nursery:
                if talk is not None:
                    nursery.start_soon(talk, stream)
                if not drain:  # a peer that stops reading: the client's sends fill the window
                    await trio.sleep_forever()
                while data := await stream.receive_some(65536):
                    conn.received += data
                nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            conn.eof.set()
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        server = RawServer(listeners[0].socket.getsockname()[1])
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


def upgrade_then(frames: bytes) -> Callable[[bytes], bytes]:
    """A ``serve_raw`` answer: a correct 101 upgrade, then ``frames`` (raw server frames)."""

    def answer(request: bytes) -> bytes:
        return (
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
            b"connection: Upgrade\r\nsec-websocket-accept: "
            + websocket_accept(request)
            + b"\r\n\r\n"
            + frames
        )

    return answer


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    """One unmasked server frame (payload < 64 KiB)."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    if len(payload) < 126:
        return head + bytes([len(payload)]) + payload
    return head + bytes([126]) + len(payload).to_bytes(2, "big") + payload


def client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, unmasked payload) of each whole frame in what a client sent."""
    frames = []
    pos = 0
    while pos + 6 <= len(data):
        opcode = data[pos] & 0x0F
        length = data[pos + 1] & 0x7F
        head = 2
        if length == 126:
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            head = 4
        mask = data[pos + head : pos + head + 4]
        payload = bytes(
            b ^ mask[i % 4] for i, b in enumerate(data[pos + head + 4 : pos + head + 4 + length])
        )
        frames.append((opcode, payload))
        pos += head + 4 + length
    return frames


def client_close_code(data: bytes) -> int | None:
    """The code of the first close frame in what a client sent (client frames are masked)."""
    for opcode, payload in client_frames(data):
        if opcode == 0x8:
            return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
    return None
