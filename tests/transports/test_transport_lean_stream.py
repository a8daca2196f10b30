"""``LeanSocketStream`` over a socketpair: the same contract as ``trio.SocketStream``."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

from duplex.transports._lean_stream import LeanSocketStream, wrap_stream


def _pair() -> tuple[LeanSocketStream, trio.SocketStream]:
    a, b = trio.socket.socketpair()
    return LeanSocketStream(trio.SocketStream(a)), trio.SocketStream(b)


async def test_short_read_then_waits_for_more() -> None:
    with trio.fail_after(5):
        lean, peer = _pair()
        await peer.send_all(b"hello")
        assert await lean.receive_some(1024) == b"hello"
        assert lean._wait_first  # drained: the next read waits first

        got: list[bytes] = []

        async def reader() -> None:
            got.append(await lean.receive_some(1024))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []
            await peer.send_all(b"world")
        assert got == [b"world"]
        await lean.aclose()
        await peer.aclose()


async def test_full_read_tries_again_at_once_and_still_checkpoints() -> None:
    with trio.fail_after(5):
        lean, peer = _pair()
        await peer.send_all(b"x" * 300)
        assert await lean.receive_some(100) == b"x" * 100
        assert not lean._wait_first  # more is probably queued
        with trio.testing.assert_checkpoints():
            assert await lean.receive_some(100) == b"x" * 100
        await lean.aclose()
        await peer.aclose()


async def test_eof_is_empty_bytes() -> None:
    with trio.fail_after(5):
        lean, peer = _pair()
        await peer.send_all(b"last")
        await peer.aclose()
        assert await lean.receive_some() == b"last"
        assert await lean.receive_some() == b""
        await lean.aclose()


async def test_receive_after_close_and_close_while_waiting() -> None:
    with trio.fail_after(5):
        lean, peer = _pair()

        async def reader() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await lean.receive_some()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            await lean.aclose()  # wakes the waiting reader
        with pytest.raises(trio.ClosedResourceError):
            await lean.receive_some()
        await peer.aclose()


async def test_reset_is_broken_resource() -> None:
    with trio.fail_after(5):
        a, b = trio.socket.socket(), trio.socket.socket()
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        listener.listen()
        await a.connect(listener.getsockname())
        b, _ = await listener.accept()
        lean = LeanSocketStream(trio.SocketStream(a))
        # SO_LINGER 0 makes close() send RST instead of FIN.
        b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        b.close()
        with pytest.raises(trio.BrokenResourceError):
            await lean.receive_some()
        await lean.aclose()
        listener.close()


async def test_two_readers_at_once_is_busy() -> None:
    with trio.fail_after(5):
        lean, peer = _pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lean.receive_some)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await lean.receive_some()
            await peer.send_all(b"done")
        await lean.aclose()
        await peer.aclose()


async def test_cancelled_wait_loses_nothing() -> None:
    with trio.fail_after(5):
        lean, peer = _pair()
        with trio.move_on_after(0.05):
            await lean.receive_some()
        await peer.send_all(b"kept")
        assert await lean.receive_some() == b"kept"
        await lean.aclose()
        await peer.aclose()


async def test_send_side_is_delegated_and_socket_exposed() -> None:
    with trio.fail_after(5):
        lean, peer = _pair()
        await lean.send_all(b"ping")
        assert await peer.receive_some() == b"ping"
        await lean.send_eof()
        assert await peer.receive_some() == b""
        assert lean.socket.fileno() >= 0
        await lean.aclose()
        await peer.aclose()


async def test_wrap_stream_is_lean_on_posix() -> None:
    a, b = trio.socket.socketpair()
    stream = trio.SocketStream(a)
    assert isinstance(wrap_stream(stream), LeanSocketStream)
    await stream.aclose()
    b.close()
