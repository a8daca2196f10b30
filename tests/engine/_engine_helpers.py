"""Shared helpers for the engine tests: reading the host event stream, a header-recording
mock WebSocket server, a scripted in-memory peer, and small audio/timing utilities."""

from __future__ import annotations

import contextlib
import json
import math
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing, asynccontextmanager
from typing import Any

import attrs
import numpy
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

from duplex.engine import (
    AudioFrame,
    AudioOut,
    ConversationClosed,
    Engine,
    EngineConfig,
    UnknownEvent,
    open_engine,
)
from duplex.protocol import ServerEvent, encode_server_event
from duplex.simulator import RecordedEvent, SessionRecord, Simulator
from duplex.transports import (
    MemoryPeer,
    MemoryTransport,
    Transport,
    TransportClosed,
    TransportEnded,
    memory_transport_pair,
)

from .._support import wait_until

API_KEY = "sk-test-SECRET-a1b2c3d4e5f6g7h8"

Predicate = Callable[[Any], bool]


def of_type(*types: type[Any]) -> Predicate:
    return lambda event: isinstance(event, types)


class HostEvents:
    """The host side of ``engine.events()``, read on demand, plus a log of what was read.

    A pump task iterates ``engine.events()`` and hands each event over an unbuffered channel,
    so waiting with a timeout never cancels the engine's async generator (cancelling an
    async generator's ``__anext__`` finishes it for good). The pump may hold one event the
    test has not taken yet; the barge-in tests, which need the exact count of events the
    host took, iterate ``engine.events()`` directly instead.
    """

    def __init__(self, receive: trio.MemoryReceiveChannel[Any]) -> None:
        self._receive = receive
        self.log: list[Any] = []

    async def next(self) -> Any:
        try:
            event = await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        self.log.append(event)
        return event

    async def until(self, predicate: Predicate) -> list[Any]:
        """Read until an event matches; return everything read, the match last."""
        taken: list[Any] = []
        while True:
            event = await self.next()
            taken.append(event)
            if predicate(event):
                return taken

    async def nothing_for(self, seconds: float, *, ignore: Predicate | None = None) -> None:
        """Assert that no event (other than ``ignore``d ones) arrives for ``seconds``."""
        with trio.move_on_after(seconds):
            while True:
                try:
                    event = await self.next()
                except StopAsyncIteration:
                    return
                if ignore is not None and ignore(event):
                    continue
                raise AssertionError(f"unexpected event {event!r}")


@asynccontextmanager
async def host_events(engine: Engine) -> AsyncIterator[HostEvents]:
    send, receive = trio.open_memory_channel[Any](0)

    async def pump() -> None:
        async with send, aclosing(engine.events()) as iterator:
            async for event in iterator:
                await send.send(event)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump)
        try:
            yield HostEvents(receive)
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def engine_with_events(
    config: EngineConfig, **kwargs: Any
) -> AsyncIterator[tuple[Engine, HostEvents]]:
    async with open_engine(config, **kwargs) as engine, host_events(engine) as events:
        yield engine, events


def sim_config(sim: Simulator, **overrides: Any) -> EngineConfig:
    assert sim.base_url is not None
    values: dict[str, Any] = {"base_url": sim.base_url, "api_key": API_KEY}
    values.update(overrides)
    return EngineConfig(**values)


def closed_events(events: Iterable[Any]) -> list[ConversationClosed]:
    return [e for e in events if isinstance(e, ConversationClosed)]


def raw_of(record: SessionRecord, type_: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for event in record.of_type(type_):
        assert event.raw is not None, event
        out.append(event.raw)
    return out


def accepted(record: SessionRecord) -> list[RecordedEvent]:
    return [e for e in record.events if e.rejection is None]


def audio_ms(events: Iterable[Any]) -> float:
    return float(sum(e.frame.duration_ms for e in events if isinstance(e, AudioOut)))


def voiced(event: Any, threshold: int = 100) -> bool:
    """An ``AudioOut`` with sound in it. A WebRTC media track runs for the whole call and
    delivers digital silence between responses; those frames reach the host as AudioOut."""
    if not isinstance(event, AudioOut) or not event.frame.pcm:
        return False
    samples = numpy.frombuffer(event.frame.pcm, dtype="<i2")
    return int(numpy.abs(samples.astype(numpy.int32)).max()) > threshold


def voiced_ms(events: Iterable[Any]) -> float:
    return float(sum(e.frame.duration_ms for e in events if voiced(e)))


def visible_types(events: Iterable[Any]) -> list[str]:
    """Host-visible event type names, without audio (compared separately) and unknowns."""
    return [type(e).__name__ for e in events if not isinstance(e, AudioOut | UnknownEvent)]


def pcm_frames(pcm: bytes, ms: int = 20, rate: int = 24000) -> list[AudioFrame]:
    step = rate * 2 * ms // 1000
    return [AudioFrame(pcm[i : i + step], rate, 1) for i in range(0, len(pcm), step)]


def silence(ms: int, rate: int = 24000) -> bytes:
    return b"\x00\x00" * (rate * ms // 1000)


def sine(ms: int, freq: float = 440.0, amplitude: int = 8000, rate: int = 24000) -> bytes:
    n = rate * ms // 1000
    return b"".join(
        struct.pack("<h", int(amplitude * math.sin(2 * math.pi * freq * i / rate)))
        for i in range(n)
    )


# The one condition wait lives in tests/_support.py; this name stays for the engine tests.
poll_until = wait_until


async def wait_for_record(
    record: SessionRecord, predicate: Callable[[SessionRecord], bool]
) -> None:
    """Wait until ``predicate(record)`` holds (record changes wake us; polled as a fallback)."""
    while not predicate(record):
        with trio.move_on_after(0.05):
            await record.wait_for("__never__")


# ---- a mock WebSocket server that records the handshake ---------------------------------


@attrs.define
class Handshake:
    path: str
    headers: dict[str, str]
    messages: list[dict[str, Any]] = attrs.field(factory=list)


Handler = Callable[[WebSocketConnection, Handshake], Awaitable[None]]


@attrs.define
class MockServer:
    """Records every connection's request target, headers and client messages."""

    port: int = 0
    connections: list[Handshake] = attrs.field(factory=list)
    changed: trio.Event = attrs.field(factory=trio.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def wait(self, predicate: Callable[[MockServer], bool]) -> None:
        while not predicate(self):
            await self.changed.wait()


async def recv_json(ws: WebSocketConnection, shake: Handshake, server: MockServer) -> Any:
    message = await ws.get_message()
    event = json.loads(message)
    shake.messages.append(event)
    server.notify()
    return event


@asynccontextmanager
async def mock_server(handler: Handler) -> AsyncIterator[MockServer]:
    """A local WebSocket server running ``handler(ws, handshake)`` per connection."""
    server = MockServer()

    async def on_request(request: WebSocketRequest) -> None:
        shake = Handshake(
            path=request.path,
            headers={k.decode().lower(): v.decode() for k, v in request.headers},
        )
        server.connections.append(shake)
        server.notify()
        ws = await request.accept()
        with contextlib.suppress(ConnectionClosed):
            await handler(ws, shake)

    async with trio.open_nursery() as nursery:
        listener = await nursery.start(serve_websocket, on_request, "127.0.0.1", 0, None)
        server.port = listener.port
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


# ---- a scripted in-memory peer --------------------------------------------------------


def wire(event: ServerEvent, version: str = "v2") -> str:
    return encode_server_event(event, version)


@attrs.define
class PeerHandle:
    """One in-memory connection's server side, as the test sees it."""

    index: int
    peer: MemoryPeer
    client: MemoryTransport
    received: list[str] = attrs.field(factory=list)
    ended: TransportEnded | None = None

    def received_types(self) -> list[str]:
        return [json.loads(t)["type"] for t in self.received]


Responder = Callable[[PeerHandle, dict[str, Any]], Iterable[str]]


@attrs.define
class MemoryServer:
    """A ``transport_factory`` whose connections are answered by ``responder`` (per client
    frame, the frames to send back). Peer tasks run in the test's nursery, not the
    engine's, so they cannot hide a leaked engine task."""

    nursery: trio.Nursery
    responder: Responder
    audio_native: bool = False
    peers: list[PeerHandle] = attrs.field(factory=list)

    async def __call__(self, _conversation_nursery: trio.Nursery) -> Transport:
        client, peer = memory_transport_pair(self.audio_native)
        handle = PeerHandle(len(self.peers), peer, client)
        self.peers.append(handle)
        self.nursery.start_soon(self._serve, handle)
        return client

    async def _serve(self, handle: PeerHandle) -> None:
        # Reads until the TransportEnded, even after replying failed: a test's drop()/close()
        # can land in the same batch as a client frame, after it. (Returning on the failed
        # reply left ``ended`` unset — the 1-in-3 flaky lifecycle property test.)
        closed = False
        while True:
            batch = await handle.peer.receive_batch()
            for item in batch:
                if isinstance(item, TransportEnded):
                    handle.ended = item
                    return
                if isinstance(item, str):
                    handle.received.append(item)
                    if closed:
                        continue
                    try:
                        for text in self.responder(handle, json.loads(item)):
                            handle.peer.send_text_nowait(text)
                    except TransportClosed:
                        closed = True
