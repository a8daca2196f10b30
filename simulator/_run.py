"""Running a simulator: under a nursery, as a context manager, or as ``duplex serve``'s loop.

Invariants:
- the address is bound before any nursery opens, so a ``SimulatorBindError`` reaches the
  caller bare (never inside an exception group);
- ``run_server`` prints ``listening on http://H:P`` only once the socket accepts connections.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import attrs
import trio

from ._config import SimulatorConfig
from ._server import Simulator

__all__ = ["open_simulator", "run_server", "serve_simulator"]


async def serve_simulator(
    config: SimulatorConfig | None = None,
    *,
    simulator: Simulator | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a simulator until cancelled. ``await nursery.start(serve_simulator, cfg)``
    returns the base URL ``http://127.0.0.1:<port>/v1``. Pass ``simulator`` to keep a handle
    on its sessions and knobs."""
    sim = simulator or Simulator(config)
    await sim.serve(task_status=task_status)


@asynccontextmanager
async def open_simulator(config: SimulatorConfig | None = None) -> AsyncIterator[Simulator]:
    """A running simulator for the duration of the block (``sim.base_url`` is set)."""
    sim = Simulator(config)
    # Bind before the nursery, so a bind error reaches the caller bare (not in a group).
    listeners = await sim.listen()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sim.serve_on, listeners))
        try:
            yield sim
        finally:
            nursery.cancel_scope.cancel()


async def run_server(host: str, port: int, config: SimulatorConfig | None = None) -> None:
    """Serve on ``host:port`` until cancelled or interrupted.

    Prints ``listening on http://H:P`` (flushed) once the socket accepts connections. SIGINT
    (Ctrl-C) and SIGTERM end it gracefully: the server stops and the function *returns*, so
    the caller sees a normal exit rather than a ``KeyboardInterrupt``. Outside the main thread
    signals cannot be caught, and only cancellation stops it. ``config`` supplies every other
    knob (its host/port are replaced). Raises ``SimulatorBindError`` if it cannot listen.
    """
    base = config or SimulatorConfig()
    sim = Simulator(attrs.evolve(base, host=host, port=port))
    listeners = await sim.listen()
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(partial(sim.serve_on, listeners))
        print(f"listening on {url.removesuffix('/v1')}", flush=True)
        try:
            signals = trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        except RuntimeError:  # not the main thread
            await trio.sleep_forever()
        with signals as received:
            async for _ in received:
                break
        nursery.cancel_scope.cancel()
