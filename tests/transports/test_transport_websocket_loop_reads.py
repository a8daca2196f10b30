"""The WebSocket transport read by a host's loop (``read_on`` / ``receive_batch_nowait``,
as ``duplex.aio`` uses it in guest mode): text messages are taken without waiting, and
everything else (a control frame, the end) goes back to ``receive_batch`` with nothing lost
or reordered. The "loop" here is the test, polling as a loop's readiness callback would."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
import trio
import trio.testing

from duplex.transports import Inbound, TransportEnded, WebSocketTransport, connect_websocket

from .._support import wait_until
from ._ws_server import client_frames, frame, serve, serve_raw, upgrade_then

HEADERS = {"authorization": "Bearer sk-test-secret-key-123456"}
TIMEOUT_S = 5


class RecordingLoop:
    def __init__(self) -> None:
        self.watched: dict[int, Callable[[], object]] = {}
        self.log: list[tuple[str, int]] = []

    def watch(self, fd: int, ready: Callable[[], object]) -> bool:
        self.watched[fd] = ready
        self.log.append(("watch", fd))
        return True

    def unwatch(self, fd: int) -> None:
        self.watched.pop(fd, None)
        self.log.append(("unwatch", fd))


def fd_of(transport: WebSocketTransport) -> int:
    return transport._stream.socket.fileno()  # type: ignore[attr-defined,no-any-return]


async def take_nowait(transport: WebSocketTransport, count: int) -> list[Inbound | None]:
    """Poll ``receive_batch_nowait`` (as readiness callbacks would) until ``count`` items or
    a ``None`` came; the items in order, then the ``None`` if one came."""
    got: list[Inbound | None] = []

    def enough() -> bool:
        batch = transport.receive_batch_nowait()
        if batch is None:
            got.append(None)
        else:
            got.extend(batch)
        return len(got) >= count or None in got

    await wait_until(enough)
    return got


async def test_text_messages_are_taken_without_waiting_while_the_loop_watches() -> None:
    loop = RecordingLoop()
    with trio.fail_after(TIMEOUT_S):
        async with serve() as server, trio.open_nursery() as nursery:
            transport = await connect_websocket(nursery, server.url(), HEADERS)
            conn = await server.accept()
            assert transport.read_on(loop, lambda: None)
            fd = fd_of(transport)
            assert list(loop.watched) == [fd]
            assert transport.receive_batch_nowait() == []  # nothing yet, no wait
            for text in ("a", "b", "c"):
                await conn.ws.send_message(text)
            assert await take_nowait(transport, 3) == ["a", "b", "c"]
            assert transport.statistics().messages_in == 3
            transport.stop_reading_on()
            assert loop.watched == {}
            await conn.ws.send_message("d")
            assert await transport.receive_batch() == ["d"]  # trio's reading goes on
            await transport.aclose()


async def test_a_ping_between_messages_goes_back_to_receive_batch_in_order() -> None:
    frames = frame(0x1, b"one") + frame(0x9, b"are you there") + frame(0x1, b"two")
    go = trio.Event()

    async def talk(stream: trio.SocketStream) -> None:
        await go.wait()
        await stream.send_all(frames)  # in one write: one read takes all three

    with trio.fail_after(TIMEOUT_S):
        async with (
            serve_raw(upgrade_then(b""), talk=talk) as server,
            trio.open_nursery() as nursery,
        ):
            transport = await connect_websocket(nursery, server.url(), HEADERS, ping_interval=None)
            loop = RecordingLoop()
            assert transport.read_on(loop, lambda: None)
            go.set()
            # The read took all three frames: the ping (and what follows it) is kept for
            # receive_batch, which delivers "one" first, answers the ping, then gives "two".
            # ("one" is not handed over here: the loop, its socket drained, would not call
            # again for what waits behind it.)
            assert await take_nowait(transport, 3) == [None]
            assert transport.receive_batch_nowait() is None  # still receive_batch's turn
            assert not transport.read_on(loop, lambda: None)  # nor will the loop watch again
            transport.stop_reading_on()
            assert await transport.receive_batch() == ["one"]
            assert await transport.receive_batch() == ["two"]
            conn = server.conns[0]
            await wait_until(lambda: (0xA, b"are you there") in client_frames(conn.received))
            await transport.aclose()


async def test_the_end_of_the_stream_goes_back_to_receive_batch_which_reports_it() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with serve() as server, trio.open_nursery() as nursery:
            transport = await connect_websocket(nursery, server.url(), HEADERS)
            conn = await server.accept()
            loop = RecordingLoop()
            assert transport.read_on(loop, lambda: None)
            await conn.ws.send_message("last")
            sock = conn.ws._stream.socket  # type: ignore[attr-defined]
            await trio.testing.wait_all_tasks_blocked()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x00" * 8)
            await conn.drop()
            got = await take_nowait(transport, 2)
            assert got == ["last", None]
            transport.stop_reading_on()
            items = await transport.receive_batch()
            assert isinstance(items[-1], TransportEnded)
            assert (items[-1].reason, items[-1].code) == ("error", 1006)
            await transport.aclose()


async def test_closing_ends_the_watch_before_the_socket_closes_and_tells_the_reader() -> None:
    with trio.fail_after(TIMEOUT_S):
        async with serve() as server, trio.open_nursery() as nursery:
            transport = await connect_websocket(nursery, server.url(), HEADERS)
            await server.accept()
            loop = RecordingLoop()
            fd = fd_of(transport)
            seen: list[tuple[dict[int, Callable[[], object]], list[Inbound] | None]] = []

            def ready() -> None:
                # The socket is still open when the watch ends; the reader then finds the
                # transport unable to go on without receive_batch.
                seen.append((loop.watched.copy(), transport.receive_batch_nowait()))

            assert transport.read_on(loop, ready)
            await transport.aclose()
            assert loop.log == [("watch", fd), ("unwatch", fd)]
            # Called once the watch has ended (possibly also before, for the close reply
            # the closing task read), and never able to go on without receive_batch.
            assert seen[-1] == ({}, None)
            assert all(result is None for _, result in seen)
            assert not transport.read_on(loop, ready)


@pytest.mark.parametrize("behind", [b"", frame(0x9, b"yours")], ids=["", "and-a-ping-behind"])
async def test_a_message_read_by_the_keepalive_while_the_loop_watches_is_passed_on(
    behind: bytes,
) -> None:
    # With a ping of the server's behind the pong, the keepalive's wait ends (its pong came)
    # while the read is still being dispatched (our pong is being sent): cut part-way, it
    # must still pass the message on.
    # The peer answers the keepalive's first ping with a message and then the pong, in one
    # write (and every later ping with a pong): the keepalive's own read takes both, so the
    # socket is drained and the loop will not call for the message; the transport calls the
    # loop's reader itself.
    async def talk(stream: trio.SocketStream) -> None:
        conn = server.conns[0]
        answered: list[bytes] = []
        while True:
            await wait_until(lambda: len(pings(conn.received)) > len(answered))
            for payload in pings(conn.received)[len(answered) :]:
                if answered:
                    await stream.send_all(frame(0xA, payload))
                else:
                    await stream.send_all(frame(0x1, b"hello") + frame(0xA, payload) + behind)
                answered.append(payload)

    loop = RecordingLoop()
    got: list[object] = []
    with trio.fail_after(TIMEOUT_S):
        async with (
            serve_raw(upgrade_then(b""), talk=talk) as server,
            trio.open_nursery() as nursery,
        ):
            transport = await connect_websocket(nursery, server.url(), HEADERS, ping_interval=0.2)
            # This "loop" never reports readability: only the transport can bring the
            # message, and a healthy keepalive never ends the transport to do it.
            pinged: list[int] = []

            def ready() -> None:
                got.append(transport.receive_batch_nowait())
                pinged.append(len(pings(server.conns[0].received)))

            assert transport.read_on(loop, ready)
            await wait_until(lambda: bool(got))
            assert got[0] == ["hello"]
            # At once, with the read that brought it, not at the keepalive's next read (after
            # its next ping, 0.2 s on).
            assert pinged[0] == 1
            transport.stop_reading_on()
            await transport.aclose()


def pings(received: bytes) -> list[bytes]:
    return [payload for opcode, payload in client_frames(received) if opcode == 0x9]
