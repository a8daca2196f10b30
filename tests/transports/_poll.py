"""Waiting on transport internals that offer no event.

- ``wait_for``: an alias of ``tests._support.wait_until`` (the one condition wait), kept for
  test_transport_webrtc.py.
- ``read_ahead``: make a WebSocket transport read (as its keepalive does while waiting for a
  pong) until ``n`` text messages wait unread, so a test can check they come out as one
  batch. The WebSocket transport reads only when asked, so "a burst has arrived" means
  "has been read off the socket", which only this can arrange without consuming it.
"""

from __future__ import annotations

from duplex.transports import WebSocketTransport

from .._support import wait_until

wait_for = wait_until


async def read_ahead(transport: WebSocketTransport, n: int) -> None:
    """Read until ``n`` messages are buffered in ``transport``; callers bound it in time."""
    receiver = transport._receiver
    await transport._read_until(lambda: len(receiver.items) >= n)
