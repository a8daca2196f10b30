"""An in-process transport pair for engine tests: ``memory_transport_pair()``.

``MemoryTransport`` is the client side and implements ``Transport`` exactly as the network
transports do (batches, one final ``TransportEnded``, ``TransportClosed`` afterwards).
``MemoryPeer`` plays the server: it sends text and audio, closes with a code and reason or
drops the connection, and receives (in batches) everything the client sent.

Invariants:
- No I/O and no background tasks: everything happens on the caller's trio thread, so tests
  are deterministic.
- Closing either side ends the other side's stream with exactly one ``TransportEnded``:
  the client sees what a WebSocket close with that code means (``_abc``: ``"closed"`` for
  1000/1001/1005, else ``"error"``) or ``"error"`` (peer ``drop``); the
  peer sees ``reason="requested"`` when the client calls ``aclose()``.
"""

from __future__ import annotations

import trio

from duplex.protocol._audio import AudioFrame

from ._abc import (
    ENDED_ERROR,
    ENDED_REQUESTED,
    Counters,
    Inbound,
    Transport,
    TransportEnded,
    TransportKind,
    TransportStatistics,
    ended_by_peer_close,
)
from ._errors import TransportClosed, server_text
from ._inbox import Inbox

__all__ = ["MemoryPeer", "MemoryTransport", "memory_transport_pair"]


class MemoryTransport(Transport):
    """The client end of an in-process pair."""

    def __init__(self, audio_native: bool) -> None:
        self._audio_native = audio_native
        self._counters = Counters()
        self._inbox = Inbox(self._counters)
        self._peer_inbox: Inbox  # set by memory_transport_pair
        self._closed = False

    @property
    def kind(self) -> TransportKind:
        return "memory"

    @property
    def audio_native(self) -> bool:
        return self._audio_native

    def _check_open(self) -> None:
        if self._closed or self._inbox.ended:
            raise TransportClosed("the memory transport is closed")

    async def send_text(self, text: str) -> None:
        await trio.lowlevel.checkpoint()
        self._check_open()
        self._counters.messages_out += 1
        self._counters.bytes_out += len(text)
        self._peer_inbox.put_text(text)

    async def send_audio(self, frame: AudioFrame) -> None:
        if not self._audio_native:
            raise TypeError("send_audio needs an audio-native transport; this pair carries text")
        await trio.lowlevel.checkpoint()
        self._check_open()
        self._put_audio(frame)

    def offer_audio(self, frame: AudioFrame) -> bool:
        if not self._audio_native or self._closed or self._inbox.ended:
            return False
        self._put_audio(frame)
        return True

    def _put_audio(self, frame: AudioFrame) -> None:
        self._counters.audio_frames_out += 1
        self._peer_inbox.put_audio(frame)

    async def receive_batch(self) -> list[Inbound]:
        return await self._inbox.get_batch()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            return
        self._closed = True
        self._inbox.end(TransportEnded(ENDED_REQUESTED, 1000, None))
        self._peer_inbox.end(TransportEnded(ENDED_REQUESTED, 1000, None))

    def statistics(self) -> TransportStatistics:
        return self._counters.snapshot("memory")


class MemoryPeer:
    """The server end of an in-process pair (a test double, not a ``Transport``)."""

    def __init__(self, client: MemoryTransport) -> None:
        self._client = client
        self.counters = Counters()
        self._inbox = Inbox(self.counters, audio_limit=1 << 30)

    def _check_open(self) -> None:
        if self._client._inbox.ended:
            raise TransportClosed("the memory transport is closed")

    def send_text_nowait(self, text: str) -> None:
        """Deliver one text frame to the client."""
        self._check_open()
        self._client._inbox.put_text(text)

    async def send_text(self, text: str) -> None:
        await trio.lowlevel.checkpoint()
        self.send_text_nowait(text)

    async def send_audio(self, frame: AudioFrame) -> None:
        """Deliver one audio frame to the client (only meaningful when audio-native)."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        self._client._inbox.put_audio(frame)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close with a close handshake, as a server close frame would (``code`` decides
        whether the client sees a graceful end or an error, as on a WebSocket)."""
        await trio.lowlevel.checkpoint()
        ended = ended_by_peer_close(code, server_text(reason) if reason else None)
        self._client._inbox.end(ended)
        self._inbox.end(ended)

    async def drop(self, error: str = "connection lost") -> None:
        """End the connection abruptly (no close frame)."""
        await trio.lowlevel.checkpoint()
        self._client._inbox.end(TransportEnded(ENDED_ERROR, 1006, error))
        self._inbox.end(TransportEnded(ENDED_ERROR, 1006, error))

    async def receive_batch(self) -> list[Inbound]:
        """Everything the client sent since the last call (waits for at least one item)."""
        return await self._inbox.get_batch()


def memory_transport_pair(audio_native: bool = False) -> tuple[MemoryTransport, MemoryPeer]:
    """A connected client transport and its server-side peer."""
    client = MemoryTransport(audio_native)
    peer = MemoryPeer(client)
    client._peer_inbox = peer._inbox
    return client, peer
