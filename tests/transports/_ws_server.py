"""A scriptable loopback trio-websocket server for transport tests.

``WsServer`` accepts connections on 127.0.0.1 (port 0) and hands every accepted server-side
``WebSocketConnection`` to the test through ``accept()``, so each test scripts the server
inline. Paths select handshake behaviour: ``/reject/<status>`` rejects the upgrade with that
HTTP status; ``/hangup`` closes the socket without answering; anything else is accepted.
Every connection is released (and closed) when the server's ``serve`` context exits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
        if len(server.requests) <= reject_first:
            await request.reject(503, body=b"not yet")
            return
        if path.startswith("/reject/"):
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
