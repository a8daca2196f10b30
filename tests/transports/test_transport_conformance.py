"""Every transport through the shared conformance cases (``conformance.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import wsproto.events

from duplex.transports import (
    MemoryPeer,
    MemoryTransport,
    Transport,
    WebRTCTransport,
    WebSocketTransport,
    connect_webrtc,
    connect_websocket,
    memory_transport_pair,
)

from .._support import wait_until
from ._poll import read_ahead
from ._rtc_peer import AnswerPeer, serve_answerer
from ._ws_server import ServerConn, serve
from .conformance import CASES, Harness


class MemoryPeerAdapter:
    def __init__(self, peer: MemoryPeer) -> None:
        self._peer = peer
        self._pending: list[str] = []

    async def send_text(self, text: str) -> None:
        await self._peer.send_text(text)

    async def receive_text(self) -> str:
        while not self._pending:
            self._pending.extend(i for i in await self._peer.receive_batch() if isinstance(i, str))
        return self._pending.pop(0)

    async def close(self, code: int, reason: str | None) -> None:
        await self._peer.close(code, reason)


class MemoryHarness:
    name = "memory"
    close_codes = True

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[tuple[Transport, MemoryPeerAdapter]]:
        client, peer = memory_transport_pair()
        yield client, MemoryPeerAdapter(peer)
        await client.aclose()

    async def until_buffered(self, transport: Transport, n: int) -> None:
        assert isinstance(transport, MemoryTransport)
        await trio.lowlevel.checkpoint()


class WsPeerAdapter:
    def __init__(self, conn: ServerConn) -> None:
        self._conn = conn

    async def send_text(self, text: str) -> None:
        await self._conn.ws.send_message(text)

    async def receive_text(self) -> str:
        message = await self._conn.ws.get_message()
        assert isinstance(message, str)
        return message

    async def close(self, code: int, reason: str | None) -> None:
        # Start the close without waiting for the reply: the transport reads (and answers)
        # only inside receive_batch(), which the case calls next.
        await self._conn.ws._send(wsproto.events.CloseConnection(code=code, reason=reason))


class WebSocketHarness:
    name = "websocket"
    close_codes = True

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[tuple[Transport, WsPeerAdapter]]:
        async with serve() as server, trio.open_nursery() as nursery:
            transport = await connect_websocket(nursery, server.url(), {})
            conn = await server.accept()
            yield transport, WsPeerAdapter(conn)
            await transport.aclose()

    async def until_buffered(self, transport: Transport, n: int) -> None:
        assert isinstance(transport, WebSocketTransport)
        await read_ahead(transport, n)


def _texts_waiting(transport: Transport) -> int:
    assert isinstance(transport, WebRTCTransport)
    return sum(type(item) is str for item in transport._inbox._items)


class WebRTCDataChannelHarness:
    name = "webrtc-datachannel"
    close_codes = False  # a data channel close carries no code or reason

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[tuple[Transport, AnswerPeer]]:
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            transport = await connect_webrtc(
                nursery, base_url=server.base_url, api_key="sk-conformance", session={}
            )
            yield transport, await server.accept()
            await transport.aclose()

    async def until_buffered(self, transport: Transport, n: int) -> None:
        await wait_until(lambda: _texts_waiting(transport) >= n)


class WebRTCSidebandHarness:
    name = "webrtc-sideband"
    close_codes = True

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[tuple[Transport, WsPeerAdapter]]:
        async with serve_answerer() as server, serve() as sideband, trio.open_nursery() as nursery:
            transport = await connect_webrtc(
                nursery,
                base_url=server.base_url,
                api_key="sk-conformance",
                session={},
                control="sideband",
                sideband_base_url=f"http://127.0.0.1:{sideband.port}/v1",
            )
            yield transport, WsPeerAdapter(await sideband.accept())
            await transport.aclose()

    async def until_buffered(self, transport: Transport, n: int) -> None:
        await wait_until(lambda: _texts_waiting(transport) >= n)


HARNESSES: list[Callable[[], Harness]] = [
    MemoryHarness,
    WebSocketHarness,
    WebRTCDataChannelHarness,
    WebRTCSidebandHarness,
]


@pytest.mark.parametrize("make_harness", HARNESSES, ids=lambda h: h.name)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__.removeprefix("case_"))
async def test_conformance(
    make_harness: Callable[[], Harness], case: Callable[[Harness], Awaitable[None]]
) -> None:
    with trio.fail_after(15):
        await case(make_harness())
