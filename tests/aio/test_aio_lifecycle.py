"""duplex.aio specifics: cancellation both ways, nothing left behind after the block (thread,
task, socket), backpressure from a slow asyncio consumer, signals left to the host, engines
of one loop conversing at once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from duplex.aio import EVENT_WINDOW, open_engine as open_aio_engine
from duplex.engine import (
    AudioFrame,
    ConversationClosed,
    ConversationStarted,
    EngineConfig,
    HistoryItem,
    ResponseDone,
    SessionUpdated,
    UnsupportedByDialect,
)

from ._hosts import (
    ALL_HOSTS,
    API_KEY,
    ASYNCIO_HOSTS,
    Host,
    poll_until,
    run_on,
    simulator_thread,
    until,
)

TIMEOUT_S = 20


@contextmanager
def server_process(*args: str) -> Iterator[str]:
    """A server in a subprocess (so its sockets are not this process's); yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line, f"{args} did not start"
        yield line
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def simulator_process() -> Iterator[str]:
    code = (
        "import trio; from duplex.simulator import run_server; trio.run(run_server, '127.0.0.1', 0)"
    )
    with server_process("-c", code) as line:
        yield line.removeprefix("listening on ") + "/v1"


def open_fds() -> set[str]:
    """This process's open file descriptors, each as what it points to."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, already closed
            out.add(f"{fd}:{os.readlink(f'/proc/self/fd/{fd}')}")
    return out


def duplex_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads started since ``before`` other than trio's idle thread-cache workers (trio's
    guest mode waits for I/O on one; trio keeps it idle ~10 s for reuse, then it exits)."""
    return [
        t
        for t in threading.enumerate()
        if t not in before and not (t.daemon and t.name.startswith("Trio thread"))
    ]


@pytest.mark.parametrize("host", ASYNCIO_HOSTS, ids=lambda h: h.name)
def test_nothing_left_after_the_block_even_when_cancelled_mid_events(host: Host) -> None:
    with simulator_process() as url:
        config = EngineConfig(base_url=url, api_key=API_KEY)

        async def scenario(host: Host) -> None:
            threads = set(threading.enumerate())
            fds = open_fds()
            tasks = asyncio.all_tasks()
            reading = asyncio.Event()

            async def conversation() -> None:
                async with open_aio_engine(config, mechanism=host.mechanism) as engine:
                    await engine.start()
                    await engine.send_text("hello")
                    async for event in engine.events():
                        if isinstance(event, ResponseDone):
                            reading.set()  # and go on waiting for events that never come

            task = asyncio.create_task(conversation())
            await host.within(TIMEOUT_S, reading.wait())
            assert duplex_threads(threads) == [] or host.mechanism == "thread"
            assert open_fds() != fds  # the connection is open
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # Once the block has exited: no task, thread or descriptor of it remains.
            assert asyncio.all_tasks() == tasks
            assert duplex_threads(threads) == []
            assert open_fds() == fds

        run_on(host, scenario)


@pytest.mark.parametrize("host", ASYNCIO_HOSTS, ids=lambda h: h.name)
def test_cancelling_a_pending_start_cancels_the_trio_side_cleanly(host: Host) -> None:
    # A server that accepts TCP (the kernel's backlog) but never answers the handshake.
    with socket.socket() as silent, simulator_thread() as server:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        stuck = server.config(base_url=f"http://127.0.0.1:{port}/v1", connect_timeout=30)

        async def scenario(host: Host) -> None:
            async with open_aio_engine(stuck, mechanism=host.mechanism) as engine:
                starting = asyncio.create_task(engine.start())
                await asyncio.sleep(0.2)  # it is connecting (and would for 30 s)
                starting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await host.within(5, starting)
                stats = engine.statistics()
                assert (stats.running, stats.conversations_started) == (False, 0)
                assert await engine.close() is False  # nothing half-started remains
            # The loop's trio run is intact: the next engine starts a conversation.
            async with open_aio_engine(server.config(), mechanism=host.mechanism) as engine:
                started = await host.within(TIMEOUT_S, engine.start())
                assert isinstance(started, ConversationStarted)

        run_on(host, scenario)


@pytest.mark.parametrize("host", ASYNCIO_HOSTS, ids=lambda h: h.name)
def test_a_start_cancelled_as_it_completes_leaves_no_conversation(host: Host) -> None:
    # The trio side finished the start, its result on the way to the asyncio task, when the
    # task was cancelled (an asyncio.timeout() around start() firing at that moment): the
    # conversation ran on, unreachable (send_audio said not running, its events came).
    with simulator_thread() as server:

        async def scenario(host: Host) -> None:
            async with open_aio_engine(server.config(), mechanism=host.mechanism) as engine:
                events = engine.events()
                starting = asyncio.create_task(engine.start())
                async with asyncio.timeout(TIMEOUT_S):  # the trio side has started it
                    await poll_until(lambda: engine.statistics().running, interval=0)
                starting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await host.within(5, starting)
                assert engine.statistics().running is False
                assert await host.next_or_none(events, 0.5) is None  # nothing of it is read
                started = await host.within(TIMEOUT_S, engine.start())  # and the next one works
                assert await host.within(TIMEOUT_S, events.__anext__()) == started

        run_on(host, scenario)


@pytest.mark.parametrize("host", ALL_HOSTS, ids=lambda h: h.name)
def test_a_consumer_that_stops_reading_stops_the_engine_reading(host: Host) -> None:
    total = 6000
    with server_process(
        "-m", "duplex.benchmarks._load_server", "--mode", "burst", "--events", str(total)
    ) as url:
        config = EngineConfig(base_url=url, api_key=API_KEY)

        async def scenario(host: Host) -> None:
            log: list[Any] = []
            async with host.open_engine(config) as engine:
                events = engine.events()
                await host.within(TIMEOUT_S, engine.start())
                await host.within(TIMEOUT_S, until(events, log, SessionUpdated))
                await engine.send_text("go")
                await host.sleep(0.5)  # the host is busy: it reads nothing for a while
                stats = engine.statistics()
                assert stats.server_events < total
                assert stats.queue_depths.get("aio_events", 0) <= EVENT_WINDOW
                await host.within(TIMEOUT_S, until(events, log, ResponseDone))
                assert engine.statistics().server_events == total + 4

        run_on(host, scenario)


def test_trio_never_takes_sigint_from_an_asyncio_host() -> None:
    with simulator_thread() as server:

        async def with_engine() -> Any:
            async with open_aio_engine(server.config()) as engine:
                await engine.start()
                return signal.getsignal(signal.SIGINT)

        # A plain loop keeps the host's handler (Python's default_int_handler in a terminal,
        # or whatever the process started with): Ctrl-C is the host's, as without duplex.
        host_handler = signal.getsignal(signal.SIGINT)
        loop = asyncio.new_event_loop()
        try:
            assert loop.run_until_complete(with_engine()) is host_handler
        finally:
            loop.close()
        assert signal.getsignal(signal.SIGINT) is host_handler

        # asyncio.run installs its own handler (it cancels the main task); it stays.
        async def asyncio_handler() -> tuple[Any, Any]:
            before = signal.getsignal(signal.SIGINT)
            return before, await with_engine()

        before, during = asyncio.run(asyncio_handler())
        assert before is not signal.default_int_handler
        assert during is before


def test_engines_of_one_loop_converse_concurrently() -> None:
    with simulator_thread() as server:

        async def one(text: str) -> list[str]:
            log: list[Any] = []
            async with open_aio_engine(server.config()) as engine:
                await engine.start()
                await engine.send_text(text)
                events = engine.events()
                await until(events, log, ResponseDone)
                await engine.close()
                await until(events, log, ConversationClosed)
            return [e.text for e in log if type(e).__name__ == "OutputTranscriptDone"]

        async def main() -> list[list[str]]:
            async with asyncio.timeout(TIMEOUT_S):
                return await asyncio.gather(*(one(f"hello {i}") for i in range(5)))

        results = asyncio.run(main())
        assert results == [[f"You said: hello {i}."] for i in range(5)]


@pytest.mark.parametrize("host", ASYNCIO_HOSTS, ids=lambda h: h.name)
def test_two_tasks_reading_events_share_them_without_loss(host: Host) -> None:
    with simulator_thread() as server:

        async def scenario(host: Host) -> None:
            async with open_aio_engine(server.config(), mechanism=host.mechanism) as engine:
                taken: list[list[Any]] = [[], []]
                merged: list[Any] = []

                async def reader(log: list[Any]) -> None:
                    async for event in engine.events():
                        log.append(event)
                        merged.append(event)
                        await asyncio.sleep(0)  # let the other reader in

                readers = [asyncio.create_task(reader(log)) for log in taken]
                await host.within(TIMEOUT_S, engine.start())
                await engine.send_text("hello")
                await poll_until(lambda: any(isinstance(e, ResponseDone) for e in merged))
                await engine.close()
                await poll_until(lambda: any(isinstance(e, ConversationClosed) for e in merged))
            await host.within(TIMEOUT_S, asyncio.gather(*readers))  # both ended with the block
            assert all(taken)  # both readers got events
            assert len(merged) == len({id(e) for e in merged})  # none twice
            assert sum(isinstance(e, ConversationStarted) for e in merged) == 1

        run_on(host, scenario)


@pytest.mark.parametrize("host", ALL_HOSTS, ids=lambda h: h.name)
def test_events_queued_past_the_window_are_read_after_the_block_up_to_closed(host: Host) -> None:
    # A consumer slower than the stream closes and leaves the block with events still queued
    # in the engine past the 64-event window: under trio it reads them all after the block,
    # ConversationClosed last. duplex.aio used to end the stream with the window's events.
    with server_process(
        "-m", "duplex.benchmarks._load_server", "--mode", "burst", "--events", "3000"
    ) as url:
        config = EngineConfig(base_url=url, api_key=API_KEY)

        async def scenario(host: Host) -> list[Any]:
            async with host.open_engine(config) as engine:
                events = engine.events()
                await host.within(TIMEOUT_S, engine.start())
                await host.within(TIMEOUT_S, until(events, [], SessionUpdated))
                await engine.send_text("go")
                await host.sleep(0.5)  # the host is busy: events pile up past the window
                assert await host.within(TIMEOUT_S, engine.close()) is True
            return await host.within(TIMEOUT_S, _read_all(events))

        rest = run_on(host, scenario)
        assert [type(e) for e in rest].count(ConversationClosed) == 1
        assert isinstance(rest[-1], ConversationClosed)
        assert rest[-1].reason == "requested"


async def _read_all(events: Any) -> list[Any]:
    return [event async for event in events]


@pytest.mark.parametrize("host", ALL_HOSTS, ids=lambda h: h.name)
def test_a_start_refused_before_replacing_keeps_the_running_conversation_usable(
    host: Host,
) -> None:
    # Regression (review): duplex.aio marked the old conversation ended before the trio
    # call, so after a start() refused up front (history= on v1) send_audio raised
    # ConversationNotRunning while the conversation went on.
    with simulator_thread() as server:
        config = server.config(version="v1")

        async def scenario(host: Host) -> None:
            async with host.open_engine(config) as engine:
                events = engine.events()
                await host.within(TIMEOUT_S, engine.start())
                with pytest.raises(UnsupportedByDialect):
                    await engine.start(history=[HistoryItem.user("hi")])
                assert engine.statistics().running
                assert engine.send_audio(AudioFrame(bytes(960), 24000, 1)) is True
                await engine.send_text("still there?")
                await host.within(TIMEOUT_S, until(events, [], ResponseDone))

        run_on(host, scenario)


@pytest.mark.parametrize("host", ALL_HOSTS, ids=lambda h: h.name)
def test_statistics_after_the_block_keep_the_final_figures(host: Host) -> None:
    # Regression (review): duplex.aio reported all zeros once the block had exited.
    with simulator_thread() as server:
        config = server.config()

        async def scenario(host: Host) -> Any:
            async with host.open_engine(config) as engine:
                events = engine.events()
                await host.within(TIMEOUT_S, engine.start())
                await engine.send_text("hello")
                await host.within(TIMEOUT_S, until(events, [], ResponseDone))
            return engine.statistics()

        final = run_on(host, scenario)
        assert final.conversations_started == 1
        assert final.server_events > 0
        assert final.client_events > 0
        assert not final.running


@pytest.mark.parametrize("host", ALL_HOSTS, ids=lambda h: h.name)
@pytest.mark.parametrize("config", [None, {"api_key": API_KEY}], ids=["none", "dict"])
def test_a_config_that_is_not_an_engine_config_is_refused_clearly(host: Host, config: Any) -> None:
    # Regression (review): it failed deep inside the engine as "internal error:
    # AttributeError: 'NoneType' object has no attribute 'event_queue_size'".
    async def scenario(host: Host) -> None:
        with pytest.raises(TypeError, match="needs an EngineConfig"):
            async with host.open_engine(config):
                pass

    run_on(host, scenario)
