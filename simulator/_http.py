"""The simulator's own sockets: HTTP/1.1 (h11) and the WebSocket upgrade (wsproto) on trio.

``HttpConnection`` wraps one accepted stream (a ``trio.SocketStream``, or a ``trio.SSLStream``
over one when the simulator serves TLS). It reads requests with h11
(keep-alive: one request after another), answers them, and on a WebSocket upgrade hands the
same socket to a ``WebSocket`` driven by ``wsproto.WSConnection`` (the upgrade request is
re-serialised from h11's parsed request and fed to wsproto, so the handshake — accept token,
subprotocol, ``permessage-deflate`` negotiation — is wsproto's public API, not ours).

Because the simulator owns the socket, faults act on it directly: ``reset`` sets ``SO_LINGER``
to 0 on the TCP socket (under TLS too) and closes it, so the peer sees a TCP RST (no close
frame); compression is only negotiated when asked for.

Invariants:
- nothing here raises for any bytes a client sends: a malformed request is answered 400 (or
  the connection is dropped), a malformed frame ends the WebSocket with wsproto's close code;
- every write to a WebSocket happens under one lock (wsproto's state and the deflate context
  must see frames in the order they hit the socket; the session's writer and the reader's
  pong/close replies share the socket);
- no write is shielded: cancelling a task stuck in ``send_all`` (a client that stopped
  reading) ends it, so shutdown never waits on a peer.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import ssl
import struct
from typing import Final
from urllib.parse import parse_qs, urlsplit

import attrs
import h11
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

__all__ = [
    "HttpConnection",
    "HttpRequest",
    "SimulatorBindError",
    "WebSocket",
    "WebSocketClosed",
    "listen_tcp",
    "reset_stream",
    "tls_context",
]

_READ: Final = 65536
#: how long an idle keep-alive connection is kept
_IDLE_S: Final = 30.0
#: how long a closing WebSocket waits for the peer's close frame before dropping the socket
_CLOSE_WAIT_S: Final = 1.0
_MAX_HEAD: Final = 64 * 1024

Headers = list[tuple[str, str]]


@attrs.frozen
class HttpRequest:
    """One parsed HTTP request (the body read whole, up to the connection's limit)."""

    method: str
    path: str
    query: dict[str, list[str]]
    #: header names lower-cased; a repeated header keeps its last value
    headers: dict[str, str]
    body: bytes
    #: an ``Upgrade: websocket`` GET: answer it with ``accept_websocket`` / ``reject_websocket``
    websocket: bool
    subprotocols: tuple[str, ...] = ()
    #: set when the body was larger than the limit (``body`` is then empty)
    too_large: bool = False


class WebSocketClosed(Exception):
    """The WebSocket is closed (``code`` is the peer's, or 1006 when TCP just ended)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class SimulatorBindError(OSError):
    """The simulator could not listen on the requested host/port (busy port, unknown host).

    ``str()`` is one line fit for a command line's error message."""


def tls_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    """A server TLS context for the PEM files (``None`` without a certificate)."""
    if certfile is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SimulatorBindError(f"cannot load the TLS certificate {certfile}: {reason}") from None
    return context


async def listen_tcp(host: str, port: int) -> list[trio.SocketListener]:
    """Bind, translating the OS's error into one ``SimulatorBindError`` line."""
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        error = SimulatorBindError(f"cannot listen on {host}:{port}: {reason}")
        error.errno = exc.errno
        raise error from None
    if port == 0 and len(listeners) > 1:
        # Each address would get its own random port; keep one so the URL is the whole truth.
        for extra in listeners[1:]:
            await extra.aclose()
        listeners = listeners[:1]
    return listeners


class HttpConnection:
    """One client connection. Use from a single task (the connection handler)."""

    def __init__(self, stream: trio.abc.Stream, *, max_body: int) -> None:
        self.stream = stream
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        self._max_body = max_body
        self._raw_request: h11.Request | None = None

    # ------------------------------------------------------------------ requests

    async def next_request(self) -> HttpRequest | None:
        """The next request, or ``None`` when the client is gone (or sent garbage: then it got
        a 400 first)."""
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            try:
                self._h11.start_next_cycle()
            except h11.LocalProtocolError:
                return None
        if self._h11.our_state is not h11.IDLE:
            return None
        request: h11.Request | None = None
        body = bytearray()
        too_large = False
        with trio.move_on_after(_IDLE_S):
            while True:
                try:
                    event = self._h11.next_event()
                except h11.RemoteProtocolError:
                    await self._send_bad_request()
                    return None
                if event is h11.NEED_DATA:
                    try:
                        data = await self.stream.receive_some(_READ)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return None
                    self._h11.receive_data(bytes(data))
                    continue
                if isinstance(event, h11.Request):
                    request = event
                    if self._h11.they_are_waiting_for_100_continue:
                        # curl and others hold a body back until told to go on.
                        go_on = h11.InformationalResponse(status_code=100, headers=[])
                        if not await self._send(self._h11.send(go_on) or b""):
                            return None
                elif isinstance(event, h11.Data):
                    if len(body) + len(event.data) > self._max_body:
                        too_large = True
                        body.clear()
                    elif not too_large:
                        body.extend(event.data)
                elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    return None
        if request is None:
            return None
        self._raw_request = request
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        target = urlsplit(request.target.decode("latin-1"))
        upgrade = headers.get("upgrade", "").lower() == "websocket" and request.method == b"GET"
        protocols = tuple(
            p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()
        )
        return HttpRequest(
            method=request.method.decode("latin-1"),
            path=target.path,
            query=parse_qs(target.query),
            headers=headers,
            body=bytes(body),
            websocket=upgrade,
            subprotocols=protocols,
            too_large=too_large,
        )

    async def respond(self, status: int, body: bytes = b"", headers: Headers | None = None) -> bool:
        """Send a whole response; ``False`` if the client went away (or the connection cannot
        carry another response, e.g. after an upgrade request that was not accepted)."""
        all_headers = list(headers or [])
        if status not in (204, 304):  # these carry no body and no Content-Length (RFC 9110)
            all_headers.append(("content-length", str(len(body))))
        try:
            parts = [self._h11.send(h11.Response(status_code=status, headers=all_headers))]
            if body:
                parts.append(self._h11.send(h11.Data(data=body)))
            parts.append(self._h11.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            return False
        return await self._send(b"".join(p for p in parts if p))

    async def _send_bad_request(self) -> None:
        with contextlib.suppress(h11.LocalProtocolError):
            if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                data = self._h11.send(
                    h11.Response(
                        status_code=400,
                        headers=[("content-length", "0"), ("connection", "close")],
                    )
                )
                await self._send((data or b"") + (self._h11.send(h11.EndOfMessage()) or b""))

    async def _send(self, data: bytes) -> bool:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    @property
    def keep_alive(self) -> bool:
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    # ------------------------------------------------------------------ websocket upgrade

    def _ws_handshake(self) -> tuple[WSConnection, Request | None]:
        """A server ``WSConnection`` fed the upgrade request (and any bytes after it)."""
        request = self._raw_request
        assert request is not None
        ws = WSConnection(ConnectionType.SERVER)
        head = bytearray(request.method + b" " + request.target + b" HTTP/1.1\r\n")
        for name, value in request.headers.raw_items():
            head += name + b": " + value + b"\r\n"
        head += b"\r\n"
        trailing, _closed = self._h11.trailing_data
        try:
            ws.receive_data(bytes(head) + trailing)
            for event in ws.events():
                if isinstance(event, Request):
                    return ws, event
        except RemoteProtocolError:
            pass
        return ws, None

    async def accept_websocket(
        self,
        *,
        subprotocol: str | None,
        compression: bool,
        max_message: int,
    ) -> WebSocket | None:
        """Complete the upgrade (``None``: not a valid WebSocket handshake; the client got a
        400). ``compression`` accepts a ``permessage-deflate`` offer; otherwise none is."""
        ws, event = self._ws_handshake()
        if event is None:
            await self._send_bad_request()
            return None
        accept = AcceptConnection(
            subprotocol=subprotocol if subprotocol in event.subprotocols else None,
            extensions=[PerMessageDeflate()] if compression else [],
        )
        if not await self._send(ws.send(accept)):
            return None
        return WebSocket(self.stream, ws, max_message=max_message)

    async def reject_websocket(self, status: int, body: bytes, headers: Headers) -> None:
        """Refuse the upgrade with an ordinary HTTP response; the connection is then closed."""
        ws, event = self._ws_handshake()
        if event is None:
            await self._send_bad_request()
            return
        data = ws.send(
            RejectConnection(
                status_code=status,
                headers=[(k.encode(), v.encode()) for k, v in headers],
                has_body=True,
            )
        )
        data += ws.send(RejectData(data=body))
        await self._send(data)

    # ------------------------------------------------------------------ teardown

    def reset(self) -> None:
        """Drop the connection with a TCP RST (``SO_LINGER`` 0): no close frame, no FIN."""
        reset_stream(self.stream)


def reset_stream(stream: trio.abc.Stream) -> None:
    """Close the TCP socket under ``stream`` with ``SO_LINGER`` 0 (the peer gets an RST)."""
    tcp = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if not isinstance(tcp, trio.SocketStream):
        return
    with contextlib.suppress(OSError):
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # Synchronous close: a task blocked in send_all/receive_some on it is woken at once.
    tcp.socket.close()


class WebSocket:
    """An accepted server WebSocket on a socket the simulator owns."""

    def __init__(self, stream: trio.abc.Stream, ws: WSConnection, *, max_message: int) -> None:
        self._stream = stream
        self._ws = ws
        self._max_message = max_message
        self._lock = trio.Lock()
        self._pending: collections.deque[Event] = collections.deque()
        self._parts: list[str | bytes] = []
        self._size = 0
        self.close_code: int | None = None
        self._sent_close = False

    async def _write(self, event: Event) -> None:
        async with self._lock:
            if self._ws.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
                raise WebSocketClosed(self.close_code or 1006)
            try:
                data = self._ws.send(event)
            except LocalProtocolError as exc:
                raise WebSocketClosed(self.close_code or 1006) from exc
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise WebSocketClosed(1006) from exc

    async def send(self, data: str | bytes) -> None:
        """Send one message; raises ``WebSocketClosed`` when that is no longer possible."""
        if isinstance(data, str):
            await self._write(TextMessage(data=data))
        else:
            await self._write(BytesMessage(data=data))

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame (the peer's answer is awaited by ``drain_close``)."""
        if self._sent_close:
            return
        self._sent_close = True
        with contextlib.suppress(WebSocketClosed):
            await self._write(CloseConnection(code=code, reason=reason))

    def reset(self) -> None:
        reset_stream(self._stream)

    async def receive(self) -> str | bytes:
        """The next whole message; raises ``WebSocketClosed`` once the connection is over.

        Pings are answered here; a peer's close is answered and reported; a message above
        ``max_message`` closes the connection with 1009."""
        while True:
            while self._pending:
                event = self._pending.popleft()
                if isinstance(event, TextMessage | BytesMessage):
                    self._size += len(event.data)
                    if self._size > self._max_message:
                        self._parts.clear()
                        await self.close(1009, "message too big")
                        self.close_code = 1009
                        raise WebSocketClosed(1009)
                    self._parts.append(
                        bytes(event.data) if isinstance(event.data, bytearray) else event.data
                    )
                    if event.message_finished:
                        parts, self._parts, self._size = self._parts, [], 0
                        if isinstance(event, TextMessage):
                            return "".join(p for p in parts if isinstance(p, str))
                        return b"".join(p for p in parts if isinstance(p, bytes))
                elif isinstance(event, Ping):
                    with contextlib.suppress(WebSocketClosed):
                        await self._write(event.response())
                elif isinstance(event, CloseConnection):
                    self.close_code = event.code
                    if self._ws.state is ConnectionState.REMOTE_CLOSING:
                        with contextlib.suppress(WebSocketClosed):
                            await self._write(event.response())
                    elif self._ws.state is ConnectionState.OPEN:
                        # A frame wsproto could not parse: close with its code.
                        await self.close(event.code, (event.reason or "")[:120])
                    raise WebSocketClosed(event.code)
            if self._ws.state is ConnectionState.CLOSED:
                raise WebSocketClosed(self.close_code or 1006)
            try:
                data = await self._stream.receive_some(_READ)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.close_code = self.close_code or 1006
                raise WebSocketClosed(self.close_code) from exc
            if not data:
                self.close_code = self.close_code or 1006
                raise WebSocketClosed(self.close_code)
            try:
                self._ws.receive_data(bytes(data))
                self._pending.extend(self._ws.events())
            except RemoteProtocolError:
                self.close_code = 1002
                raise WebSocketClosed(1002) from None

    async def discard_until_closed(self) -> None:
        """Read and drop everything until the peer ends the TCP connection (a hung server:
        no pong, no close reply)."""
        while True:
            try:
                data = await self._stream.receive_some(_READ)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return

    async def drain_close(self) -> None:
        """After our close frame: wait (bounded) for the peer's, so it reads our code before
        the socket goes away."""
        if not self._sent_close or self.close_code is not None:
            return
        with trio.move_on_after(_CLOSE_WAIT_S):
            with contextlib.suppress(WebSocketClosed):
                while True:
                    await self.receive()
