"""Waiting on transport internals that offer no event.

- ``wait_for``: poll a predicate over state owned by a library that offers no event.
- ``read_ahead``: make a WebSocket transport read (as its keepalive does while waiting for a
  pong) until ``n`` text messages wait unread, so a test can check they come out as one
  batch. The WebSocket transport reads only when asked, so "a burst has arrived" means
  "has been read off the socket", which only this can arrange without consuming it.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from duplex.transports import WebSocketTransport


async def wait_for(predicate: Callable[[], bool], interval: float = 0.002) -> None:
    """Return once ``predicate()`` is true; callers bound it with ``trio.fail_after``."""
    # Polling on purpose: the state lives in trio-websocket / aiortc, which expose no event.
    while not predicate():  # noqa: ASYNC110
        await trio.sleep(interval)


async def read_ahead(transport: WebSocketTransport, n: int) -> None:
    """Read until ``n`` messages are buffered in ``transport``; callers bound it in time."""
    receiver = transport._receiver
    await transport._read_until(lambda: len(receiver.items) >= n)
