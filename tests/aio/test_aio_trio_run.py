"""The loop's shared trio run (``duplex/aio/_trio_run.py``): one run per loop at a time, also
while the last engine is leaving and the run is ending; a run that could not start strands
nobody."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import pytest
import trio

from duplex.aio import open_engine as open_aio_engine
from duplex.aio._trio_run import TrioRun
from duplex.engine import ConversationStarted

from ._hosts import ASYNCIO_HOSTS, Host, poll_until, run_on, simulator_thread

TIMEOUT_S = 20


@pytest.mark.parametrize("host", ASYNCIO_HOSTS, ids=lambda h: h.name)
def test_an_engine_opened_while_the_loops_run_is_ending_gets_a_working_run(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The last engine of the loop has left and its run is ending when the next engine opens
    # (the stop is held here so that window stays open): it used to start a second guest run
    # beside the ending one (trio: "Attempted to call run() from inside a run()"), and the
    # broken run stayed registered, hanging every later open_engine of the loop.
    ending: list[TrioRun] = []
    request_stop = TrioRun._request_stop

    def hold_stop(run: TrioRun) -> None:
        ending.append(run)

    monkeypatch.setattr(TrioRun, "_request_stop", hold_stop)

    with simulator_thread() as server:
        config = server.config()

        async def conversation() -> ConversationStarted:
            async with open_aio_engine(config, mechanism=host.mechanism) as engine:
                started: ConversationStarted = await engine.start()
                return started

        async def leave() -> None:
            async with open_aio_engine(config, mechanism=host.mechanism):
                pass

        async def scenario(host: Host) -> None:
            async with asyncio.timeout(TIMEOUT_S):
                leaving = asyncio.create_task(leave())
                await poll_until(lambda: bool(ending))  # the run is ending, not ended
                monkeypatch.setattr(TrioRun, "_request_stop", request_stop)
                run = ending[0]
                opening = asyncio.create_task(conversation())
                # Scheduled after the new task's first step (which reaches acquire_run):
                # only then does the ending run go on ending.
                asyncio.get_running_loop().call_soon(run.submit, partial(request_stop, run))
                await leaving
                assert isinstance(await opening, ConversationStarted)
                # And the loop's next run serves the next engine as well.
                assert isinstance(await conversation(), ConversationStarted)

        run_on(host, scenario)


def test_open_engine_on_a_thread_already_hosting_a_guest_run_fails_and_strands_nothing() -> None:
    # trio refuses a second guest run on one thread (here the host's own). open_engine used to
    # register its run before starting it, so the failed run stayed the loop's, never ready:
    # every later open_engine of the loop hung, even through its own timeout.
    with simulator_thread() as server:

        async def scenario(host: Host) -> None:
            loop = asyncio.get_running_loop()
            running: asyncio.Future[trio.lowlevel.TrioToken] = loop.create_future()
            done: asyncio.Future[Any] = loop.create_future()
            stop = trio.Event()

            async def hosts_own_trio() -> None:
                running.set_result(trio.lowlevel.current_trio_token())
                await stop.wait()

            trio.lowlevel.start_guest_run(
                hosts_own_trio,
                run_sync_soon_threadsafe=loop.call_soon_threadsafe,
                run_sync_soon_not_threadsafe=loop.call_soon,
                done_callback=done.set_result,
                host_uses_signal_set_wakeup_fd=True,
            )
            async with asyncio.timeout(TIMEOUT_S):
                token = await running
                for _ in range(2):  # a retry while the host's run lives fails the same way
                    with pytest.raises(RuntimeError, match="inside a run"):
                        async with open_aio_engine(server.config()):
                            pass
                token.run_sync_soon(stop.set)
                (await done).unwrap()
                async with open_aio_engine(server.config()) as engine:
                    assert isinstance(await engine.start(), ConversationStarted)

        run_on(ASYNCIO_HOSTS[0], scenario)
