"""duplex transports: trio-native frame movers behind one ``Transport`` interface.

- ``connect_websocket`` → ``WebSocketTransport`` (trio-websocket; text frames only).
- ``connect_webrtc`` → ``WebRTCTransport`` (aiortc on the asyncio bridge thread; audio on RTP,
  events on the ``oai-events`` data channel or a sideband WebSocket).
- ``memory_transport_pair`` → ``MemoryTransport`` + ``MemoryPeer`` for engine tests.

Everything public is re-exported here; the ``_modules`` are private. See ``_abc`` for the
interface contract every transport obeys.
"""

from __future__ import annotations

from ._abc import Inbound, Transport, TransportEnded, TransportKind, TransportStatistics
from ._calls import CallAnswer, create_call
from ._errors import ConnectError, TransportClosed, TransportError
from ._memory import MemoryPeer, MemoryTransport, memory_transport_pair
from ._webrtc import WebRTCTransport, connect_webrtc
from ._websocket import WebSocketTransport, connect_websocket

__all__ = [
    "CallAnswer",
    "ConnectError",
    "Inbound",
    "MemoryPeer",
    "MemoryTransport",
    "Transport",
    "TransportClosed",
    "TransportEnded",
    "TransportError",
    "TransportKind",
    "TransportStatistics",
    "WebRTCTransport",
    "WebSocketTransport",
    "connect_webrtc",
    "connect_websocket",
    "create_call",
    "memory_transport_pair",
]
