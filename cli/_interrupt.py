"""Ctrl-C as cancellation: how the CLI's trio commands stop when the user interrupts them.

trio's default turns SIGINT into a ``KeyboardInterrupt`` raised at whatever checkpoint is
running, which can be half-way through a library's connect or close: the library is left
inconsistent and may report an unrelated error instead, so the interrupt is lost (``duplex
demo`` then ended with exit 1 and an ``ExceptionGroup`` line). Here the first SIGINT cancels the
whole run instead — every task unwinds as for any cancellation, sockets close, the WebRTC bridge
stops — and ``KeyboardInterrupt`` is raised only afterwards, outside trio, for ``run_command``
to report as exit 130. A second Ctrl-C during a cleanup that hangs raises at once.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import trio

__all__ = ["run_cancelling_on_ctrl_c"]

T = TypeVar("T")


def run_cancelling_on_ctrl_c(async_fn: Callable[[], Awaitable[T]]) -> T:
    """``trio.run(async_fn)``; Ctrl-C cancels it and then raises ``KeyboardInterrupt``."""
    interrupted = False
    results: list[T] = []

    async def watch(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
        nonlocal interrupted
        async for _ in signals:
            if interrupted:
                raise KeyboardInterrupt  # the second Ctrl-C: stop waiting for the cleanup
            interrupted = True
            scope.cancel()

    async def run() -> None:
        with trio.open_signal_receiver(signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                work = trio.CancelScope()
                # The watcher stays outside `work`, so it still hears a second Ctrl-C.
                nursery.start_soon(watch, signals, work)
                with work:
                    results.append(await async_fn())
                nursery.cancel_scope.cancel()

    trio.run(run)
    if interrupted:
        raise KeyboardInterrupt
    return results[0]
