"""A KeyboardInterrupt (or SystemExit) raised in trio code on a plain asyncio loop is the
host's. On a loop that kept Python's default SIGINT handler, Ctrl-C raises KeyboardInterrupt
in whatever Python code runs on the loop's thread, trio's guest run included; each test raises
it at one such place (as the handler would) and checks that it reaches the host's code and
that the loop's shared trio run, and the other engines on it, go on."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import pytest
import trio

from duplex.aio import AsyncioEngine, open_engine as open_aio_engine
from duplex.engine import (
    ConversationClosed,
    ConversationStarted,
    Engine,
    EngineClosed,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
)
from duplex.transports import TransportEnded, memory_transport_pair

from ..engine._engine_helpers import wire
from ._hosts import ASYNCIO_HOSTS, Host, SimulatorThread, simulator_thread, until

TIMEOUT_S = 20


@contextmanager
def plain_loop(host: Host) -> Iterator[asyncio.AbstractEventLoop]:
    """A loop run with ``run_until_complete``, as a host without ``asyncio.run`` does: an
    interrupt escaping it leaves the loop usable for the host's cleanup."""
    if host.uvloop:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def interrupting_server(on: str) -> Any:
    """A ``transport_factory``: an in-memory peer, run as a task of the engine's own nursery,
    that answers the handshake and raises KeyboardInterrupt when the client sends an event
    of type ``on`` ("connect": in the factory itself, inside the ``start()`` call)."""

    async def factory(nursery: trio.Nursery) -> Any:
        if on == "connect":
            raise KeyboardInterrupt
        client, peer = memory_transport_pair()

        async def serve() -> None:
            while True:
                for item in await peer.receive_batch():
                    if isinstance(item, TransportEnded):
                        return
                    event = json.loads(item) if isinstance(item, str) else {}
                    if event.get("type") == on:
                        raise KeyboardInterrupt
                    if event.get("type") == "session.update":
                        peer.send_text_nowait(wire(SessionCreated("sess_1")))
                        peer.send_text_nowait(wire(SessionUpdated("sess_1", None)))

        nursery.start_soon(serve)
        return client

    return factory


async def converse(engine: AsyncioEngine) -> None:
    """A whole text turn and a close on ``engine``: the loop's trio run serves it."""
    log: list[Any] = []
    events = engine.events()
    async with asyncio.timeout(TIMEOUT_S):
        if not engine.statistics().running:
            await engine.start()
        await engine.send_text("hello")
        await until(events, log, ResponseDone)
        await engine.close()
        await until(events, log, ConversationClosed)


def open_other(stack: AsyncExitStack, server: SimulatorThread, host: Host) -> Any:
    return stack.enter_async_context(open_aio_engine(server.config(), mechanism=host.mechanism))


@pytest.mark.parametrize("host", ASYNCIO_HOSTS, ids=lambda h: h.name)
def test_an_interrupt_in_a_calls_trio_code_is_raised_to_the_caller_and_the_run_goes_on(
    host: Host,
) -> None:
    # It used to be swallowed: start() raised EngineClosed and the loop's trio run ended,
    # ending every engine of the loop.
    with simulator_thread() as server, plain_loop(host) as loop:

        async def scenario() -> None:
            async with AsyncExitStack() as stack:
                other = await open_other(stack, server, host)
                await other.start()
                async with open_aio_engine(
                    server.config(),
                    transport_factory=interrupting_server("connect"),
                    mechanism=host.mechanism,
                ) as engine:
                    with pytest.raises(KeyboardInterrupt):
                        await engine.start()
                    assert engine.statistics().running is False
                await converse(other)

        loop.run_until_complete(scenario())


@pytest.mark.parametrize("host", ASYNCIO_HOSTS, ids=lambda h: h.name)
def test_an_interrupt_in_an_engines_own_trio_task_escapes_the_loop_and_the_run_goes_on(
    host: Host,
) -> None:
    # The interrupt lands in a task of the engine (not a call): it escapes the loop as one in
    # any asyncio callback does; that engine's trio side has ended, the others go on.
    with simulator_thread() as server, plain_loop(host) as loop:
        stack = AsyncExitStack()
        box: dict[str, AsyncioEngine] = {}

        async def setup() -> None:
            box["other"] = await open_other(stack, server, host)
            box["engine"] = await stack.enter_async_context(
                open_aio_engine(
                    server.config(),
                    transport_factory=interrupting_server("conversation.item.create"),
                    mechanism=host.mechanism,
                )
            )
            assert isinstance(await box["engine"].start(), ConversationStarted)

        async def interrupt() -> None:
            async with asyncio.timeout(TIMEOUT_S):
                # Sent, or its trio side ended under the call (which of the two is a race).
                with contextlib.suppress(EngineClosed):
                    await box["engine"].send_text("now")
                await asyncio.Event().wait()  # until the interrupt escapes the loop

        loop.run_until_complete(setup())
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(interrupt())
        loop.run_until_complete(converse(box["other"]))
        loop.run_until_complete(stack.aclose())


@pytest.mark.parametrize("host", ASYNCIO_HOSTS, ids=lambda h: h.name)
def test_an_interrupt_in_a_trio_callback_escapes_the_loop_and_the_run_goes_on(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A playback report runs as a trio callback (not a task); trio ends its whole run when
    # one raises, so an interrupt there used to end every engine of the loop, unseen.
    def interrupted(self: Engine, item_id: str, ms: float) -> None:
        raise KeyboardInterrupt

    with simulator_thread() as server, plain_loop(host) as loop:
        stack = AsyncExitStack()
        box: dict[str, AsyncioEngine] = {}

        async def setup() -> None:
            box["engine"] = await open_other(stack, server, host)
            await box["engine"].start()

        async def interrupt() -> None:
            async with asyncio.timeout(TIMEOUT_S):
                monkeypatch.setattr(Engine, "audio_played", interrupted)
                box["engine"].audio_played("item_1", 10.0)
                await asyncio.Event().wait()  # until the interrupt escapes the loop

        loop.run_until_complete(setup())
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(interrupt())
        monkeypatch.undo()
        loop.run_until_complete(converse(box["engine"]))
        loop.run_until_complete(stack.aclose())


def test_an_interrupt_that_ends_the_loops_trio_run_reaches_the_host_and_its_engines_end() -> None:
    # One landing in trio's own code ends the run (trio: TrioInternalError). It used to be
    # logged only, and every engine of the loop then hung (its block's exit waited forever).
    host = ASYNCIO_HOSTS[0]

    async def crash() -> None:
        raise KeyboardInterrupt

    with simulator_thread() as server, plain_loop(host) as loop:
        stack = AsyncExitStack()
        box: dict[str, AsyncioEngine] = {}

        async def setup() -> None:
            box["engine"] = await open_other(stack, server, host)
            await box["engine"].start()

        async def interrupt() -> None:
            async with asyncio.timeout(TIMEOUT_S):
                box["engine"]._run.submit(lambda: trio.lowlevel.spawn_system_task(crash))
                await asyncio.Event().wait()  # until the interrupt escapes the loop

        async def after() -> None:
            async with asyncio.timeout(TIMEOUT_S):
                engine = box["engine"]
                assert [e async for e in engine.events()] == []  # its events end
                with pytest.raises(EngineClosed):
                    await engine.send_text("hello")
                await stack.aclose()  # the block exits
                # The loop's next engine gets a new run.
                async with open_aio_engine(server.config()) as fresh:
                    await converse(fresh)

        loop.run_until_complete(setup())
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(interrupt())
        loop.run_until_complete(after())


@pytest.mark.parametrize("callback", ["_spawn_call", "_request_exit"])
def test_an_interrupt_in_a_callback_that_must_run_does_not_lose_its_work(
    callback: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (review): a KeyboardInterrupt landing in the callback that spawns a host
    # call, or the one asking the engine to exit, went to the host and the callback's work
    # was lost: the call (even once cancelled) and the block's exit waited for ever.
    host = next(h for h in ASYNCIO_HOSTS if h.mechanism == "guest" and not h.uvloop)
    original = getattr(AsyncioEngine, callback)
    raised: list[bool] = []

    def once(self: AsyncioEngine, *args: Any) -> Any:
        if not raised:  # as a SIGINT landing at the callback's start, once
            raised.append(True)
            raise KeyboardInterrupt
        return original(self, *args)

    with simulator_thread() as server, plain_loop(host) as loop:
        stack = AsyncExitStack()
        box: dict[str, AsyncioEngine] = {}

        async def setup() -> None:
            box["engine"] = await open_other(stack, server, host)
            await box["engine"].start()

        loop.run_until_complete(setup())
        monkeypatch.setattr(AsyncioEngine, callback, once)

        async def act() -> bool:
            async with asyncio.timeout(TIMEOUT_S):
                if callback == "_spawn_call":
                    return await box["engine"].close()
                await stack.aclose()
                return True

        task = loop.create_task(act())
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)  # the interrupt escapes the loop first
        assert loop.run_until_complete(task) is True  # then the work is done
        loop.run_until_complete(stack.aclose())
