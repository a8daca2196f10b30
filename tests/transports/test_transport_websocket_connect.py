"""WebSocket connect failures: the socket is closed when the error is raised, and the error
says what went wrong in the user's terms (issue 12.5, 12.7; issue 10.5).

The servers here (``_ws_server.serve_raw``) never close first and record when the client
closed, so "the client released its socket" is observed from the other end, while the test
still holds the ``ConnectError`` (whose traceback keeps the failed connect's frames alive:
a socket freed only by garbage collection would still be open).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from duplex.transports import ConnectError, connect_websocket

from ._ws_server import RawServer, serve_raw, websocket_accept

HEADERS = {"authorization": "Bearer sk-test-secret-key-123456"}


def _status(code: int, body: bytes = b"") -> bytes:
    return f"HTTP/1.1 {code} Nope\r\ncontent-length: {len(body)}\r\n\r\n".encode("ascii") + body


def _bad_accept(request: bytes) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: " + websocket_accept(request)[::-1] + b"\r\n\r\n"
    )


async def _released(server: RawServer) -> None:
    """Every connection the server accepted was closed by the client, within 1 s."""
    with trio.fail_after(1):
        for conn in server.conns:
            await conn.eof.wait()
    assert server.open_connections == 0


CASES: dict[str, tuple[bytes | Callable[[bytes], bytes] | None, str]] = {
    "401": (_status(401, b'{"error":"bad key"}'), "HTTP 401"),
    "429": (_status(429, b"slow down"), "HTTP 429"),
    "500-no-body": (_status(500), "HTTP 500"),
    "bad-accept": (_bad_accept, "Sec-WebSocket-Accept"),
    "timeout": (None, "timed out"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_failed_connect_closes_its_socket_at_once(case: str) -> None:
    answer, message = CASES[case]
    with trio.fail_after(5):
        async with serve_raw(answer) as server, trio.open_nursery() as nursery:
            with pytest.raises(ConnectError, match=message) as info:
                await connect_websocket(nursery, server.url(), HEADERS, connect_timeout=0.5)
            assert len(server.conns) == 1
            await _released(server)
            assert info.value.__cause__ is not None  # the original failure, for debugging
            assert "h11" not in str(info.value)
            assert "ProtocolError" not in str(info.value)


async def test_tls_failure_closes_its_socket_and_keeps_the_ssl_error() -> None:
    with trio.fail_after(5):
        async with serve_raw(_status(400, b"plain http")) as server, trio.open_nursery() as n:
            with pytest.raises(ConnectError) as info:
                await connect_websocket(n, server.url(scheme="wss"), HEADERS, connect_timeout=2)
            await _released(server)
            message = str(info.value)
            assert "SSL" in message or "TLS" in message, message
            assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://127.0.0.1:1/v1/realtime", "the scheme must be ws or wss, not 'http'"),
        ("ws://[::1/v1/realtime", "Invalid IPv6 URL"),
        ("ws://:8080/v1/realtime", "no host name"),
        ("ws://127.0.0.1:99999/v1/realtime", "Port out of range"),
        ("ws://127.0.0.1:port/v1/realtime", "Port could not be cast"),
        ("", "empty"),
    ],
)
async def test_a_malformed_url_says_what_is_wrong(url: str, detail: str) -> None:
    async with trio.open_nursery() as nursery:
        with pytest.raises(ValueError, match="invalid WebSocket URL") as info:
            await connect_websocket(nursery, url, HEADERS)
    assert detail in str(info.value)


async def test_connect_error_names_the_url_and_keeps_the_cause() -> None:
    async with trio.open_nursery() as nursery:
        with pytest.raises(ConnectError) as info:
            await connect_websocket(nursery, "ws://127.0.0.1:1/v1/realtime?model=m", HEADERS)
    assert str(info.value).startswith("WebSocket connect to ws://127.0.0.1:1/v1/realtime")
    assert isinstance(info.value.__cause__, OSError)


def _good_accept(request: bytes) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: " + websocket_accept(request) + b"\r\n\r\n"
    )


async def test_a_connected_transport_releases_its_socket_when_its_nursery_is_cancelled() -> None:
    # The owner cancels the nursery running the transport without aclose(). A start() that
    # is cancelled gets here without ever holding the transport: trio's nursery.start()
    # can raise Cancelled after the task has started (found by the lifecycle storm, where
    # such sockets stayed open on the server until the garbage collector ran).
    with trio.fail_after(5):
        async with serve_raw(_good_accept) as server:
            async with trio.open_nursery() as nursery:
                # With its keepalive (the default, as the engine runs it): a task that the
                # cancellation reaches.
                transport = await connect_websocket(nursery, server.url(), HEADERS)
                nursery.cancel_scope.cancel()
            await _released(server)
            assert transport.statistics() is not None  # still referenced: no GC rescue
