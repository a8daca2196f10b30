"""The one place asyncio lives: a private asyncio event loop on a daemon thread, driven
from trio.

aiortc (WebRTC) is asyncio-only. Rather than run asyncio *inside* trio (trio-asyncio), duplex
runs one asyncio loop per process on its own thread and talks to it through two narrow doors:

- trio → asyncio: ``await bridge.run(async_fn, *args)`` schedules ``async_fn(*args)`` on the
  loop and waits for its result without blocking trio. Cancelling the trio caller cancels the
  asyncio task (and waits for it to finish unwinding, bounded by ``CANCEL_GRACE_S``).
- asyncio → trio: ``TrioPort`` wraps a trio token; asyncio-side code calls ``port.call(fn,
  *args)`` to run a *synchronous* ``fn`` in the trio thread (typically ``send_nowait`` on a
  memory channel). Calls after the trio run has ended are dropped silently, because there is
  nobody left to deliver to.

Why a thread instead of trio-asyncio: aiortc and aioice use loop features (datagram
endpoints, call_later storms from RTP/RTCP timers) that run unchanged on a stock asyncio loop;
the thread keeps aiortc's per-packet work off the trio thread (it also releases the GIL in
the Opus/libav codecs), and a process-wide loop means many WebRTC connections share one thread.
The cost is one cross-thread hop per call, which is only paid per *message*, never per byte.

Invariants:
- Objects created by aiortc must be created and used on the bridge loop (inside a coroutine
  or callback run through ``run``/``call_soon``), never on the trio thread.
- Nothing here touches trio state from the asyncio thread except through ``TrioToken``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import trio

__all__ = ["CANCEL_GRACE_S", "AsyncioBridge", "TrioPort", "get_bridge"]

T = TypeVar("T")

CANCEL_GRACE_S: Final = 2.0


class TrioPort:
    """A handle asyncio-side code uses to run synchronous callables in a trio run."""

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self._token = token

    @classmethod
    def current(cls) -> TrioPort:
        """The port of the calling trio run."""
        return cls(trio.lowlevel.current_trio_token())

    def call(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` soon in the trio thread; dropped if that run has finished."""
        # try/except rather than contextlib.suppress: this runs per media frame and message.
        try:  # noqa: SIM105
            self._token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            pass


class AsyncioBridge:
    """An asyncio loop on a daemon thread. Use ``get_bridge()`` for the shared instance."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run_loop, name="duplex-asyncio-bridge", daemon=True
        )
        self._thread.start()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The bridge's loop (for ``call_soon_threadsafe`` from other threads)."""
        return self._loop

    def call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Run synchronous ``fn(*args)`` on the asyncio thread, fire and forget."""
        self._loop.call_soon_threadsafe(fn, *args)

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await fn(*args)`` on the asyncio loop and return its result in trio.

        Exceptions raised by ``fn`` propagate unchanged (callers translate them). If the trio
        caller is cancelled, the asyncio task is cancelled too and given ``CANCEL_GRACE_S`` to
        unwind before trio's ``Cancelled`` propagates.
        """

        async def runner() -> T:
            return await fn(*args)

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            runner(), self._loop
        )
        port = TrioPort.current()
        done = trio.Event()
        future.add_done_callback(lambda _f: port.call(done.set))
        try:
            await done.wait()
        except trio.Cancelled:
            future.cancel()
            with trio.move_on_after(CANCEL_GRACE_S) as scope:
                scope.shield = True
                await done.wait()
            raise
        return future.result()


_bridge: AsyncioBridge | None = None
_bridge_lock = threading.Lock()


def get_bridge() -> AsyncioBridge:
    """The process-wide bridge, started on first use."""
    global _bridge
    with _bridge_lock:
        if _bridge is None:
            _bridge = AsyncioBridge()
        return _bridge
