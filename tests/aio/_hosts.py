"""One scenario, several hosts: the trio host (``duplex.engine``) and asyncio hosts
(``duplex.aio`` under ``asyncio.run``, guest or thread mechanism, uvloop when installed).

A scenario is an ``async def scenario(host) -> T`` written once against ``Host``: it awaits the
engine's methods and iterates ``events()`` the same way on every host; only timeouts and
sleeps differ, so ``Host`` provides those. ``run_on(host, scenario)`` runs it to completion
in a fresh event loop of that host's kind (from a plain sync test function: pytest-trio
owns async tests).

The simulator runs on its own thread with its own ``trio.run`` (``SimulatorThread``), so the
same server serves trio and asyncio hosts alike.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, TypeVar

import attrs
import pytest
import trio

from duplex.aio import Mechanism, open_engine as open_aio_engine
from duplex.engine import (
    AudioOut,
    EngineConfig,
    RateLimitsUpdated,
    UnknownEvent,
    open_engine as open_trio_engine,
)
from duplex.simulator import Simulator, SimulatorConfig

T = TypeVar("T")

API_KEY = "sk-test-aio-SECRET"
UVLOOP = importlib.util.find_spec("uvloop") is not None


@attrs.define
class Host:
    """How a scenario runs: ``kind`` is ``"trio"`` or ``"asyncio"``."""

    name: str
    kind: str
    mechanism: Mechanism = "guest"
    uvloop: bool = False

    def open_engine(self, config: EngineConfig) -> AbstractAsyncContextManager[Any]:
        if self.kind == "trio":
            return open_trio_engine(config)
        return open_aio_engine(config, mechanism=self.mechanism)

    async def within(self, seconds: float, awaitable: Awaitable[T]) -> T:
        """``await awaitable``, failing the test after ``seconds``."""
        if self.kind == "trio":
            with trio.fail_after(seconds):
                return await awaitable
        async with asyncio.timeout(seconds):
            return await awaitable

    async def next_or_none(self, iterator: Any, seconds: float) -> Any:
        """The next event, or ``None`` when none came in ``seconds`` (the pending
        ``__anext__`` is then cancelled: the iterator must lose nothing)."""
        if self.kind == "trio":
            with trio.move_on_after(seconds):
                return await iterator.__anext__()
            return None
        try:
            return await asyncio.wait_for(iterator.__anext__(), seconds)
        except TimeoutError:
            return None

    async def sleep(self, seconds: float) -> None:
        if self.kind == "trio":
            await trio.sleep(seconds)
        else:
            await asyncio.sleep(seconds)


TRIO = Host("trio", "trio")
ASYNCIO_HOSTS = [
    Host("asyncio", "asyncio"),
    Host("asyncio-thread", "asyncio", mechanism="thread"),
]
if UVLOOP:
    ASYNCIO_HOSTS.append(Host("uvloop", "asyncio", uvloop=True))
ALL_HOSTS = [TRIO, *ASYNCIO_HOSTS]


def run_on(host: Host, scenario: Callable[[Host], Awaitable[T]]) -> T:
    """Run ``scenario(host)`` to completion in a new event loop of the host's kind."""
    if host.kind == "trio":
        return trio.run(scenario, host)
    if host.uvloop:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_coroutine(scenario, host))
    return asyncio.run(_coroutine(scenario, host))


async def _coroutine(scenario: Callable[[Host], Awaitable[T]], host: Host) -> T:
    return await scenario(host)


# ---- reading events ----------------------------------------------------------------------


async def until(iterator: Any, log: list[Any], *types: type[Any]) -> Any:
    """Read ``iterator`` into ``log`` until an event of ``types``; return that event."""
    async for event in iterator:
        log.append(event)
        if isinstance(event, types):
            return event
    raise AssertionError(f"events() ended before {types}")


def visible_types(events: list[Any]) -> list[str]:
    """The event types the comparison is made on: without audio frames (how many depends
    on read sizes), unknown events and rate limits (sent after ``response.done``, so they
    race the next request)."""
    skip = AudioOut | UnknownEvent | RateLimitsUpdated
    return [type(e).__name__ for e in events if not isinstance(e, skip)]


# ---- the simulator on its own thread ------------------------------------------------------


@attrs.define
class SimulatorThread:
    simulator: Simulator
    base_url: str

    def config(self, **overrides: Any) -> EngineConfig:
        values: dict[str, Any] = {"base_url": self.base_url, "api_key": API_KEY}
        values.update(overrides)
        return EngineConfig(**values)


@contextmanager
def simulator_thread(config: SimulatorConfig | None = None) -> Iterator[SimulatorThread]:
    """A simulator served by ``trio.run`` on a thread for the duration of the block."""
    simulator = Simulator(config)
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            box["url"] = await nursery.start(simulator.serve)
            box["scope"] = nursery.cancel_scope
            box["token"] = trio.lowlevel.current_trio_token()
            ready.set()

    def target() -> None:
        try:
            trio.run(main)
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="simulator", daemon=True)
    thread.start()
    ready.wait(30)
    if "url" not in box:
        pytest.fail("the simulator did not start")
    try:
        yield SimulatorThread(simulator, box["url"])
    finally:
        box["token"].run_sync_soon(box["scope"].cancel)
        thread.join(30)


async def poll_until(predicate: Callable[[], bool], interval: float = 0.01) -> None:
    """Wait (asyncio) until ``predicate()`` holds, for state that has no event to wait on."""
    while True:
        if predicate():
            return
        await asyncio.sleep(interval)
