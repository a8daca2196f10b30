"""``wait_for``: poll a predicate over state owned by a library that offers no event."""

from __future__ import annotations

from collections.abc import Callable

import trio


async def wait_for(predicate: Callable[[], bool], interval: float = 0.002) -> None:
    """Return once ``predicate()`` is true; callers bound it with ``trio.fail_after``."""
    # Polling on purpose: the state lives in trio-websocket / aiortc, which expose no event.
    while not predicate():  # noqa: ASYNC110
        await trio.sleep(interval)
