"""duplex transports: trio-native frame movers behind one ``Transport`` interface.

- ``connect_websocket`` → ``WebSocketTransport`` (wsproto over a trio stream; text frames only).
- ``connect_webrtc`` → ``WebRTCTransport`` (aiortc on the asyncio bridge thread; audio on RTP,
  events on the ``oai-events`` data channel or a sideband WebSocket).
- ``memory_transport_pair`` → ``MemoryTransport`` + ``MemoryPeer`` for engine tests.

Everything public is re-exported here; the ``_modules`` are private. See ``_abc`` for the
interface contract every transport obeys.
"""

from __future__ import annotations

import logging

from ._abc import Inbound, LoopWatch, Transport, TransportEnded, TransportKind, TransportStatistics
from ._bridge import AsyncioBridge, TrioPort, get_bridge
from ._calls import CallAnswer, create_call
from ._errors import (
    ConnectError,
    MessageTooLarge,
    TransportClosed,
    TransportError,
    printable,
    server_text,
)
from ._memory import MemoryPeer, MemoryTransport, memory_transport_pair
from ._webrtc import WebRTCTransport, connect_webrtc
from ._websocket import WebSocketTransport, connect_websocket

# A library logs and never configures logging: records under ``duplex`` (``duplex.wire`` is the
# wire log: event types and sizes, never audio) go nowhere unless the host adds a handler.
# The engine and the simulator both import this package, so this runs before either logs.
logging.getLogger("duplex").addHandler(logging.NullHandler())

__all__ = [
    # the interface
    "Inbound",
    "LoopWatch",
    "Transport",
    "TransportEnded",
    "TransportKind",
    "TransportStatistics",
    # errors
    "ConnectError",
    "MessageTooLarge",
    "TransportClosed",
    "TransportError",
    # text that came from a server, made safe for a log record or an error message
    # (bounded, secrets removed, control characters escaped: SPEC §8)
    "printable",
    "server_text",
    # WebSocket
    "WebSocketTransport",
    "connect_websocket",
    # WebRTC, and the one asyncio bridge thread aiortc runs on (the simulator's answerer
    # shares it)
    "AsyncioBridge",
    "CallAnswer",
    "TrioPort",
    "WebRTCTransport",
    "connect_webrtc",
    "create_call",
    "get_bridge",
    # in-memory pair for engine tests
    "MemoryPeer",
    "MemoryTransport",
    "memory_transport_pair",
]
