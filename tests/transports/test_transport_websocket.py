"""WebSocket transport against a loopback trio-websocket server (``_ws_server``)."""

from __future__ import annotations

import socket

import pytest
import trio
import trio_websocket
import wsproto.events

from duplex.transports import (
    ConnectError,
    TransportClosed,
    TransportEnded,
    WebSocketTransport,
    connect_websocket,
)

from .._support import wait_until
from ._ws_server import ServerConn, WsServer, client_frames, frame, serve, serve_raw, upgrade_then

HEADERS = {"authorization": "Bearer sk-test-secret-key-123456"}


async def _connect(
    nursery: trio.Nursery, server: WsServer, **kwargs: object
) -> tuple[WebSocketTransport, ServerConn]:
    transport = await connect_websocket(nursery, server.url(), HEADERS, **kwargs)  # type: ignore[arg-type]
    return transport, await server.accept()


async def _until_buffered(transport: WebSocketTransport, n: int) -> None:
    """Wait until ``n`` of the test's ``{"type":"x","n":i}`` messages sit in the kernel's
    receive buffer: the transport reads only when asked, and a peek consumes nothing."""
    fd = transport._stream.socket.fileno()  # type: ignore[attr-defined]
    peek = socket.socket(fileno=socket.dup(fd))
    size = sum(len(f'{{"type":"x","n":{i}}}') + 2 for i in range(n))

    def buffered() -> int:
        try:
            return len(peek.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except BlockingIOError:
            return 0

    try:
        await wait_until(lambda: buffered() >= size)
    finally:
        peek.close()


# --- What the transport's own wsproto connection must do -------------------------------------
# The client speaks wsproto directly over a trio stream (``_ws_connection``; no trio-websocket
# in the read path, which is only the test server here). These tests pin the behaviour the
# read path is built on, so a wsproto upgrade that changes it fails here:
# - the opening handshake runs through our dispatch, with no reader task:
#   test_reading_happens_in_the_consumer_no_reader_task, test_exchange_both_ways_and_headers;
# - the close handshake, both ways: test_server_close_is_answered_by_the_close_handshake,
#   test_local_close_delivers_requested_once;
# - ping replies: test_server_ping_is_answered_while_the_consumer_reads (and, with nobody
#   reading, test_transport_websocket_liveness.py);
# - abort and 1006 on EOF or reset: test_abrupt_drop_is_error_1006,
#   test_connection_reset_is_error_1006;
# - 1009 for an oversized message: test_oversized_message_ends_with_1009;
# - protocol errors: test_transport_websocket_hostile.py.


async def test_server_close_is_answered_by_the_close_handshake() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server)
            closed = trio.Event()

            async def server_close() -> None:
                await conn.ws.aclose(1001, "going away")  # returns once we replied
                closed.set()

            nursery.start_soon(server_close)
            items = await transport.receive_batch()
            assert items == [TransportEnded("closed", 1001, None)]
            with trio.fail_after(1):
                await closed.wait()
            await transport.aclose()


async def test_server_ping_is_answered_while_the_consumer_reads() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server, ping_interval=None)
            received: list[object] = []

            async def consume() -> None:
                while not received or not isinstance(received[-1], TransportEnded):
                    received.extend(await transport.receive_batch())

            nursery.start_soon(consume)
            await trio.testing.wait_all_tasks_blocked()  # the consumer waits on the socket
            with trio.fail_after(1):
                await conn.ws.ping(b"are you there")
            await conn.ws.send_message("after")
            await wait_until(lambda: "after" in received)
            await transport.aclose()
            assert received[0] == "after"


async def test_connection_reset_is_error_1006() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server)
            sock = conn.ws._stream.socket  # type: ignore[attr-defined]
            # SO_LINGER 0: close with a TCP reset instead of a FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
            await conn.drop()
            items = await transport.receive_batch()
            ended = items[-1]
            assert isinstance(ended, TransportEnded)
            assert (ended.reason, ended.code) == ("error", 1006)
            assert type(ended.code) is int
            await transport.aclose()


async def test_reading_happens_in_the_consumer_no_reader_task() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server, ping_interval=None)
            await trio.testing.wait_all_tasks_blocked()
            # With the keepalive off the connection has no task at all once the handshake
            # is done: every read happens in receive_batch().
            assert not nursery.child_tasks
            await conn.ws.send_message("hello")
            assert await transport.receive_batch() == ["hello"]
            await transport.aclose()


async def test_exchange_both_ways_and_headers() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server)
            assert not transport.audio_native
            assert transport.kind == "websocket"
            await transport.send_text('{"type":"session.update"}')
            assert await conn.ws.get_message() == '{"type":"session.update"}'
            await conn.ws.send_message('{"type":"session.created"}')
            assert await transport.receive_batch() == ['{"type":"session.created"}']
            path, headers = server.requests[0]
            assert path == "/v1/realtime"
            assert (b"authorization", b"Bearer sk-test-secret-key-123456") in headers
            stats = transport.statistics()
            assert (stats.messages_in, stats.messages_out) == (1, 1)
            await transport.aclose()


async def test_burst_is_drained_in_one_batch() -> None:
    with trio.fail_after(10):
        async with serve() as server, trio.open_nursery() as nursery:
            # No idle reader: the whole burst waits in the kernel for one read.
            transport, conn = await _connect(nursery, server, ping_interval=None)
            messages = [f'{{"type":"x","n":{i}}}' for i in range(500)]
            for message in messages:
                await conn.ws.send_message(message)
            await _until_buffered(transport, 500)
            batch = await transport.receive_batch()
            assert batch == messages
            stats = transport.statistics()
            assert stats.batches_in == 1
            assert stats.largest_batch == 500
            await transport.aclose()


async def test_send_not_blocked_by_pending_receive() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server)
            received: list[object] = []

            async def reader() -> None:
                received.extend(await transport.receive_batch())

            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            with trio.fail_after(1):
                for i in range(20):
                    await transport.send_text(f"m{i}")
            assert [await conn.ws.get_message() for _ in range(20)] == [f"m{i}" for i in range(20)]
            await conn.ws.send_message("reply")
            await wait_until(lambda: bool(received))
            assert received == ["reply"]
            await transport.aclose()


@pytest.mark.parametrize(("code", "reason"), [(1000, None), (1001, "going away"), (4000, "bad")])
async def test_server_close_with_code_and_reason(code: int, reason: str | None) -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server)
            await conn.ws.send_message("last words")
            # The server's close waits for our reply, which comes from receive_batch().
            nursery.start_soon(conn.ws.aclose, code, reason)
            items: list[object] = []
            while not items or not isinstance(items[-1], TransportEnded):
                items.extend(await transport.receive_batch())
            if code in (1000, 1001):  # graceful: no error, whatever the reason text
                assert items == ["last words", TransportEnded("closed", code, None)]
            else:
                detail = f"the server closed the connection with code {code}: {reason}"
                assert items == ["last words", TransportEnded("error", code, detail)]
            with pytest.raises(TransportClosed):
                await transport.receive_batch()
            with pytest.raises(TransportClosed):
                await transport.send_text("late")
            await transport.aclose()


async def test_local_close_delivers_requested_once() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server)
            await transport.aclose()
            await transport.aclose()  # idempotent
            assert await transport.receive_batch() == [TransportEnded("requested", 1000, None)]
            with pytest.raises(TransportClosed):
                await transport.receive_batch()
            with pytest.raises(trio_websocket.ConnectionClosed):
                await conn.ws.get_message()
            assert conn.ws.closed is not None
            assert conn.ws.closed.code == 1000


async def test_abrupt_drop_is_error_1006() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server)
            await conn.drop()
            batch = await transport.receive_batch()
            assert len(batch) == 1
            ended = batch[0]
            assert isinstance(ended, TransportEnded)
            assert (ended.reason, ended.code) == ("error", 1006)
            await transport.aclose()


async def test_oversized_message_ends_with_1009() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server, max_message_size=1000)
            await conn.ws.send_message("x" * 5000)
            batch = await transport.receive_batch()
            ended = batch[-1]
            assert isinstance(ended, TransportEnded)
            assert (ended.reason, ended.code) == ("error", 1009)
            # the server was told why
            with pytest.raises(trio_websocket.ConnectionClosed):
                await conn.ws.get_message()
            assert conn.ws.closed is not None
            assert conn.ws.closed.code == 1009
            await transport.aclose()


async def test_binary_frames_are_dropped_and_counted() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server)
            await conn.ws.send_message(b"\x00\x01")
            await conn.ws.send_message("text after binary")
            await conn.ws.send_message(b"\x02")
            items: list[object] = []
            while len(items) < 1:
                items.extend(await transport.receive_batch())
            assert items == ["text after binary"]
            await conn.ws.send_message("more")
            while transport.statistics().binary_frames_dropped < 2 or len(items) < 2:
                items.extend(await transport.receive_batch())
            assert items == ["text after binary", "more"]
            assert transport.statistics().binary_frames_dropped == 2
            await transport.aclose()


async def test_connect_refused() -> None:
    with trio.fail_after(5):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        async with trio.open_nursery() as nursery:
            with pytest.raises(ConnectError) as info:
                await connect_websocket(nursery, f"ws://127.0.0.1:{port}/v1/realtime", HEADERS)
            assert info.value.status is None


@pytest.mark.parametrize("status", [401, 403, 500])
async def test_http_rejection_carries_status_and_no_key(status: int) -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            with pytest.raises(ConnectError) as info:
                await connect_websocket(nursery, server.url(f"/reject/{status}"), HEADERS)
            assert info.value.status == status
            assert "sk-test" not in str(info.value)
            assert "sk-test" not in repr(info.value)


async def test_server_hangs_up_during_handshake() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            with pytest.raises(ConnectError):
                await connect_websocket(
                    nursery, server.url("/hangup"), HEADERS, connect_timeout=3.0
                )


async def test_connect_timeout() -> None:
    with trio.fail_after(5):
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        async with listener, trio.open_nursery() as nursery:
            with pytest.raises(ConnectError, match="timed out"):
                await connect_websocket(
                    nursery, f"ws://127.0.0.1:{port}/", HEADERS, connect_timeout=0.3
                )


async def test_keepalive_leaves_a_healthy_connection_open() -> None:
    # The dead peer is test_keepalive_detects_unresponsive_peer below.
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server, ping_interval=0.05)
            # The sleep is the behaviour under test: six ping intervals pass, each ping
            # answered by a live peer, and the connection is still up afterwards.
            await trio.sleep(0.3)
            await conn.ws.send_message("alive")
            assert await transport.receive_batch() == ["alive"]
            await transport.aclose()


async def test_a_peer_that_keeps_sending_is_not_pinged_and_a_silent_one_is() -> None:
    # Liveness asks only a silent peer: data arriving within the ping interval proves the
    # peer alive, so a streaming conversation costs no ping (and the peer no pong).
    talking = True

    async def talk(stream: trio.SocketStream) -> None:
        while talking:
            await stream.send_all(frame(0x1, b'{"type":"x"}'))
            await trio.sleep(0.01)

    def pings() -> int:
        return sum(op == 0x9 for op, _ in client_frames(server.conns[0].received))

    with trio.fail_after(5):
        async with (
            serve_raw(upgrade_then(b""), talk=talk) as server,
            trio.open_nursery() as nursery,
        ):
            transport = await connect_websocket(nursery, server.url(), HEADERS, ping_interval=0.05)
            streaming_until = trio.current_time() + 0.4  # eight ping intervals
            while trio.current_time() < streaming_until:
                assert all(item == '{"type":"x"}' for item in await transport.receive_batch())
            assert pings() == 0
            talking = False
            # Silent from here (this raw peer never answers a ping): pinged, then given up
            # after the interval and the pong wait (0.1 s), whatever came before.
            with trio.fail_after(1.5):
                batch = await transport.receive_batch()
                while not isinstance(batch[-1], TransportEnded):
                    batch = await transport.receive_batch()
            ended = batch[-1]
            assert isinstance(ended, TransportEnded)
            assert ended.error is not None
            assert "keepalive" in ended.error
            await wait_until(lambda: pings() >= 1)  # the server's reader may lag the end
            await transport.aclose()


async def test_bad_scheme() -> None:
    async with trio.open_nursery() as nursery:
        with pytest.raises(ValueError, match="scheme"):
            await connect_websocket(nursery, "http://127.0.0.1:1/", HEADERS)


async def test_keepalive_detects_unresponsive_peer() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, _conn = await _connect(nursery, server, ping_interval=0.1)
            # The server never reads: once its one-message queue is full its reader stops,
            # so pings go unanswered, as with a peer that vanished without a FIN.
            await transport.send_text("a")
            await transport.send_text("b")
            batch = await transport.receive_batch()
            ended = batch[-1]
            assert isinstance(ended, TransportEnded)
            assert ended.reason == "error"
            assert ended.error is not None
            assert "keepalive" in ended.error
            await transport.aclose()


async def test_nothing_is_read_until_asked_without_keepalive() -> None:
    with trio.fail_after(10):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server, ping_interval=None)
            messages = [f'{{"type":"x","n":{i}}}' for i in range(50)]
            for message in messages:
                await conn.ws.send_message(message)
            await _until_buffered(transport, 50)
            # Unread data stays in the kernel, where TCP flow control bounds it.
            assert transport._receiver.items == []
            received: list[object] = []
            while len(received) < 50:
                received.extend(await transport.receive_batch())
            assert received == messages
            await transport.aclose()


async def test_fragmented_messages_are_reassembled_and_size_checked() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server, max_message_size=100)
            for part, last in (("frag", False), ("ment", False), ("ed", True)):
                await conn.ws._send(wsproto.events.TextMessage(data=part, message_finished=last))
            assert await transport.receive_batch() == ["fragmented"]
            for _ in range(3):  # 3 × 40 characters > 100 only across fragments
                await conn.ws._send(
                    wsproto.events.TextMessage(data="x" * 40, message_finished=False)
                )
            batch = await transport.receive_batch()
            ended = batch[-1]
            assert isinstance(ended, TransportEnded)
            assert (ended.reason, ended.code) == ("error", 1009)
            await transport.aclose()


async def test_tls_to_a_plain_server_is_connect_error() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            with pytest.raises(ConnectError):
                await connect_websocket(nursery, f"wss://127.0.0.1:{server.port}/", HEADERS)


async def test_aclose_with_unread_messages_is_prompt() -> None:
    with trio.fail_after(5):
        async with serve() as server, trio.open_nursery() as nursery:
            transport, conn = await _connect(nursery, server)
            for i in range(20):
                await conn.ws.send_message(f'{{"type":"x","n":{i}}}')
            await _until_buffered(transport, 20)
            with trio.fail_after(1):  # well under the 2 s close timeout
                await transport.aclose()
            assert await transport.receive_batch() == [TransportEnded("requested", 1000, None)]
