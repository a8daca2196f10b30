"""Serving entry points: ``serve_simulator`` under ``nursery.start`` and ``run_server``."""

from __future__ import annotations

import json
import re

import pytest
import trio
import trio.testing
from trio_websocket import open_websocket_url

from duplex.simulator import Simulator, SimulatorConfig, run_server, serve_simulator


async def test_serve_simulator_returns_base_url() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            sim = Simulator(SimulatorConfig(seed=3))
            url = await nursery.start(
                lambda task_status: serve_simulator(simulator=sim, task_status=task_status)
            )
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", url)
            assert url == sim.base_url
            ws_url = url.replace("http://", "ws://") + "/realtime?model=m"
            async with open_websocket_url(
                ws_url, extra_headers=[(b"Authorization", b"Bearer k")]
            ) as ws:
                created = json.loads(await ws.get_message())
                assert created["type"] == "session.created"
            # Plain form: nursery.start(serve_simulator, cfg).
            url2 = await nursery.start(serve_simulator, SimulatorConfig())
            assert url2 != url
            nursery.cancel_scope.cancel()


async def test_run_server_prints_listening_line(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_server, "127.0.0.1", 0)
            while True:
                await trio.testing.wait_all_tasks_blocked()
                out = capsys.readouterr().out
                if out:
                    break
            match = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)\n", out)
            assert match is not None, out
            port = int(match.group(1))
            assert port > 0
            url = f"ws://127.0.0.1:{port}/v1/realtime?intent=quicksilver"
            async with open_websocket_url(
                url, extra_headers=[(b"Authorization", b"Bearer k")]
            ) as ws:
                await ws.send_message(
                    json.dumps({"type": "session.create", "session": {"type": "quicksilver"}})
                )
                assert json.loads(await ws.get_message())["type"] == "session.created"
            nursery.cancel_scope.cancel()


class _StepCounter(trio.abc.Instrument):
    def __init__(self) -> None:
        self.steps: dict[str, int] = {}

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task.name] = self.steps.get(task.name, 0) + 1


async def test_idle_session_does_not_spin() -> None:
    """An idle session's tasks sleep: a regression test for a self-waking clock loop."""
    from duplex.simulator import open_simulator

    counter = _StepCounter()
    with trio.fail_after(10):
        async with open_simulator() as sim:
            assert sim.base_url is not None
            url = sim.base_url.replace("http://", "ws://") + "/realtime?model=m"
            async with open_websocket_url(
                url, extra_headers=[(b"Authorization", b"Bearer k")]
            ) as ws:
                await ws.get_message()
                await trio.sleep(0.1)
                trio.lowlevel.add_instrument(counter)
                try:
                    await trio.sleep(0.5)
                finally:
                    trio.lowlevel.remove_instrument(counter)
    busiest = max(counter.steps.values(), default=0)
    assert busiest < 20, counter.steps
