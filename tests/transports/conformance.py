"""The cases every ``Transport`` must pass, written once against a small harness interface.

A harness opens a client transport connected to a server-side ``Peer`` it controls; each case
is an ``async def case_…(harness)``. ``test_transport_conformance.py`` runs every case against every
harness (memory, WebSocket, WebRTC data channel, WebRTC sideband); a new transport or the
local simulator joins by adding a harness there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import pytest
import trio

from duplex.protocol._audio import AudioFrame
from duplex.transports import Inbound, Transport, TransportClosed, TransportEnded


class Peer(Protocol):
    """The server end as a test drives it."""

    async def send_text(self, text: str) -> None: ...

    async def receive_text(self) -> str:
        """The next text frame the client sent."""
        ...

    async def close(self, code: int, reason: str | None) -> None: ...


class Harness(Protocol):
    name: str
    #: whether the server's close code and reason reach the client (False for a data channel)
    close_codes: bool

    def connect(self) -> AbstractAsyncContextManager[tuple[Transport, Peer]]: ...

    async def until_buffered(self, transport: Transport, n: int) -> None:
        """Wait until ``n`` inbound text items are buffered client-side, unread."""
        ...


async def receive_until_ended(transport: Transport) -> list[Inbound]:
    items: list[Inbound] = []
    while not items or not isinstance(items[-1], TransportEnded):
        items.extend(await transport.receive_batch())
    return items


async def _texts(transport: Transport, n: int) -> list[str]:
    """Receive until ``n`` text items arrived (skipping audio); returns them."""
    texts: list[str] = []
    while len(texts) < n:
        texts.extend(i for i in await transport.receive_batch() if isinstance(i, str))
    return texts


async def case_exchange(harness: Harness) -> None:
    async with harness.connect() as (transport, peer):
        await transport.send_text('{"type":"session.update"}')
        assert await peer.receive_text() == '{"type":"session.update"}'
        await peer.send_text('{"type":"session.updated"}')
        assert await _texts(transport, 1) == ['{"type":"session.updated"}']
        stats = transport.statistics()
        assert stats.messages_in == 1
        assert stats.messages_out == 1
        assert stats.bytes_out == len('{"type":"session.update"}')


async def case_burst_one_batch(harness: Harness) -> None:
    async with harness.connect() as (transport, peer):
        messages = [f'{{"type":"t","n":{i}}}' for i in range(200)]
        for message in messages:
            await peer.send_text(message)
        await harness.until_buffered(transport, len(messages))
        # audio-native transports interleave AudioFrames; the text must all be in this batch
        batch = await transport.receive_batch()
        assert [item for item in batch if isinstance(item, str)] == messages


async def case_send_while_receiving(harness: Harness) -> None:
    async with harness.connect() as (transport, peer), trio.open_nursery() as nursery:
        got: list[Inbound] = []
        done = trio.Event()

        async def reader() -> None:
            got.extend(await transport.receive_batch())
            done.set()

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked(0.01)
        with trio.fail_after(2):
            for i in range(10):
                await transport.send_text(f"out {i}")
        for i in range(10):
            assert await peer.receive_text() == f"out {i}"
        await peer.send_text("in")
        await done.wait()
        got.extend(await _texts(transport, 1 - sum(isinstance(i, str) for i in got)))
        assert [item for item in got if isinstance(item, str)] == ["in"]


async def case_peer_close(harness: Harness) -> None:
    # A graceful close: reason "closed", the code as a plain int, no error.
    async with harness.connect() as (transport, peer):
        await peer.send_text("before close")
        # let it arrive before the close: a data channel close may overtake queued data
        await harness.until_buffered(transport, 1)
        await peer.close(1000, "bye")
        items = await receive_until_ended(transport)
        assert [item for item in items[:-1] if not isinstance(item, AudioFrame)] == ["before close"]
        ended = items[-1]
        assert isinstance(ended, TransportEnded)
        assert ended.reason == "closed"
        assert ended.error is None
        if harness.close_codes:
            assert ended.code == 1000
            assert type(ended.code) is int
        with pytest.raises(TransportClosed):
            await transport.receive_batch()
        with pytest.raises(TransportClosed):
            await transport.send_text("too late")


async def case_peer_close_with_error_code(harness: Harness) -> None:
    # Any close code but 1000/1001/1005 is an error carrying the code and the peer's reason.
    if not harness.close_codes:
        return
    async with harness.connect() as (transport, peer):
        await peer.send_text("before close")
        await harness.until_buffered(transport, 1)
        await peer.close(4001, "scripted\r\nforged: line")
        items = await receive_until_ended(transport)
        assert [item for item in items[:-1] if not isinstance(item, AudioFrame)] == ["before close"]
        ended = items[-1]
        assert isinstance(ended, TransportEnded)
        assert (ended.reason, ended.code) == ("error", 4001)
        assert type(ended.code) is int
        assert ended.error is not None
        assert "scripted\\x0d\\x0aforged: line" in ended.error  # escaped, one line
        with pytest.raises(TransportClosed):
            await transport.receive_batch()
        with pytest.raises(TransportClosed):
            await transport.send_text("too late")


async def case_local_close(harness: Harness) -> None:
    async with harness.connect() as (transport, _peer):
        await transport.aclose()
        await transport.aclose()
        items = await receive_until_ended(transport)
        ended = items[-1]
        assert isinstance(ended, TransportEnded)
        assert ended.reason == "requested"
        with pytest.raises(TransportClosed):
            await transport.receive_batch()
        with pytest.raises(TransportClosed):
            await transport.send_text("after close")


async def case_close_wakes_pending_receive(harness: Harness) -> None:
    async with harness.connect() as (transport, _peer), trio.open_nursery() as nursery:
        got: list[Inbound] = []

        async def reader() -> None:
            got.extend(await receive_until_ended(transport))

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked(0.01)
        await transport.aclose()
    assert isinstance(got[-1], TransportEnded)
    assert got[-1].reason == "requested"


CASES: list[Callable[[Harness], Awaitable[None]]] = [
    case_exchange,
    case_burst_one_batch,
    case_send_while_receiving,
    case_peer_close,
    case_peer_close_with_error_code,
    case_local_close,
    case_close_wakes_pending_receive,
]

__all__ = ["CASES", "Harness", "Peer", "receive_until_ended"]
