"""WebSocket liveness (SPEC §3.4; issue 12.15, 14.3): a silent peer is noticed within
``liveness_timeout``, and the peer's pings are answered while the consumer is not reading,
by the idle reader, which stops at ``IDLE_READ_LIMIT``."""

from __future__ import annotations

import socket

import pytest
import trio

from duplex.transports import (
    TransportClosed,
    TransportEnded,
    WebSocketTransport,
    _websocket as websocket_module,
    _ws_reader as reader_module,
    connect_websocket,
)

from .._support import wait_until
from ._ws_server import serve, serve_raw, upgrade_then

HEADERS = {"authorization": "Bearer sk-test-secret-key-123456"}


async def test_a_silent_peer_is_noticed_within_liveness_timeout() -> None:
    # The raw server completes the upgrade and then never answers anything: a half-open
    # peer, as after a crash behind a NAT that keeps the TCP connection up.
    with trio.fail_after(5):
        async with serve_raw(upgrade_then(b"")) as server, trio.open_nursery() as nursery:
            transport = await connect_websocket(
                nursery, server.url(), HEADERS, liveness_timeout=0.4
            )
            began = trio.current_time()
            items = await transport.receive_batch()
            took = trio.current_time() - began
            ended = items[-1]
            assert isinstance(ended, TransportEnded)
            assert (ended.reason, ended.code) == ("error", 1006)
            assert ended.error is not None
            assert "keepalive" in ended.error
            assert 0.3 <= took < 0.4 + 0.3, took  # within the timeout, not 40 s
            await transport.aclose()


async def test_a_silent_peer_is_noticed_while_the_consumer_is_away() -> None:
    with trio.fail_after(5):
        async with serve_raw(upgrade_then(b"")) as server, trio.open_nursery() as nursery:
            transport = await connect_websocket(
                nursery, server.url(), HEADERS, liveness_timeout=0.4
            )
            # Nobody reads; the keepalive still ends the transport (and closes the socket).
            await server.conns[0].eof.wait()
            items = await transport.receive_batch()
            ended = items[-1]
            assert isinstance(ended, TransportEnded)
            assert ended.reason == "error"
            await transport.aclose()


async def test_pings_are_answered_while_the_consumer_is_not_reading() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport = await connect_websocket(nursery, server.url(), HEADERS)
            conn = await server.accept()
            await conn.ws.send_message("before the ping")
            # The client never calls receive_batch here: a stalled host or engine. The
            # server's ping must still be answered promptly (a strict server drops peers
            # that do not answer), by the idle reader, within about two ticks.
            began = trio.current_time()
            with trio.fail_after(2 * websocket_module.IDLE_TICK_MAX_S + 0.5):
                await conn.ws.ping()
            assert trio.current_time() - began < 2 * websocket_module.IDLE_TICK_MAX_S + 0.5
            await conn.ws.send_message("after the ping")
            received: list[object] = []
            while len(received) < 2:
                received.extend(await transport.receive_batch())
            assert received == ["before the ping", "after the ping"]
            await transport.aclose()


async def test_the_idle_reader_stops_at_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_module, "IDLE_READ_LIMIT", 1000)
    messages = [f'{{"type":"x","n":{i:04}}}' for i in range(400)]  # 20 characters each
    with trio.fail_after(10):
        async with serve() as server, trio.open_nursery() as nursery:
            transport = await connect_websocket(
                nursery, server.url(), HEADERS, liveness_timeout=0.4
            )
            conn = await server.accept()
            for message in messages:
                await conn.ws.send_message(message)
            receiver = transport._receiver
            await wait_until(lambda: sum(map(len, receiver.items)) >= 1000)
            # It stopped: what it read stays near the limit; the rest waits in the kernel.
            fd = transport._stream.socket.fileno()  # type: ignore[attr-defined]
            peek = socket.socket(fileno=socket.dup(fd))
            try:
                await wait_until(lambda: _peek(peek) > 0)
            finally:
                peek.close()
            assert sum(map(len, receiver.items)) < 1000 + reader_module.RECEIVE_BUFFER_SIZE
            received: list[object] = []
            while len(received) < len(messages):
                received.extend(await transport.receive_batch())
            assert received == messages  # in order, nothing lost or doubled
            await transport.aclose()


def _peek(sock: socket.socket) -> int:
    try:
        return len(sock.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return 0


async def test_liveness_timeout_must_be_positive() -> None:
    async with trio.open_nursery() as nursery:
        with pytest.raises(ValueError, match="liveness_timeout"):
            await connect_websocket(nursery, "ws://127.0.0.1:1/", HEADERS, liveness_timeout=0)


async def test_a_send_blocked_on_a_stalled_peer_ends_with_the_transport() -> None:
    # The peer stops reading: our sends fill the TCP window and block. Liveness still ends
    # the connection (the ping cannot even be sent), and the blocked send_text raises
    # TransportClosed then, not after the old 40 s.
    with trio.fail_after(10):
        async with (
            serve_raw(upgrade_then(b""), drain=False) as server,
            trio.open_nursery() as nursery,
        ):
            transport = await connect_websocket(
                nursery, server.url(), HEADERS, liveness_timeout=0.4
            )
            began = trio.current_time()
            with pytest.raises(TransportClosed):
                await _send_until_blocked_and_failed(transport)
            took = trio.current_time() - began
            assert took < 0.4 + 0.5, took
            items = await transport.receive_batch()
            ended = items[-1]
            assert isinstance(ended, TransportEnded)
            assert ended.reason == "error"
            await transport.aclose()


async def _send_until_blocked_and_failed(transport: WebSocketTransport) -> None:
    chunk = "x" * 65536
    while True:
        await transport.send_text(chunk)


@pytest.mark.parametrize("now", [0.0, 0.1, 0.4999, 0.5, 123.456, 1e6 + 0.3])
def test_keepalive_ticks_fall_on_one_grid_at_most_a_tick_ahead(now: float) -> None:
    # Every connection with the same tick wakes at the same instants (one scheduler wakeup
    # for all of them), never later than a tick from now.
    wake = websocket_module._next_tick(now, 0.5)
    assert now < wake <= now + 0.5
    assert abs(wake / 0.5 - round(wake / 0.5)) < 1e-9
