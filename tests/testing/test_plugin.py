"""``duplex.testing``: the example in docs/testing.md passes as a host project's test file, and
the handle behaves as documented."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from duplex.simulator import FaultConfig, Scenario, SimulatorBindError, SimulatorConfig
from duplex.testing import DEFAULT_API_KEY, running_simulator

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return str(next(b for b in blocks if "def test_" in b))


def test_the_documented_example_passes_in_a_host_project(tmp_path: Path) -> None:
    """The docs' example file, run by pytest in a fresh project directory: the plugin is found
    through its entry point alone."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_assistant.py").write_text(_example())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "6 passed" in result.stdout, result.stdout[-2000:]


def test_running_simulator_serves_and_stops() -> None:
    with running_simulator(SimulatorConfig(api_key=DEFAULT_API_KEY)) as sim:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", sim.base_url)
        assert sim.websocket_url == sim.base_url.replace("http", "ws") + "/realtime"
        assert sim.calls_url == sim.base_url + "/realtime/calls"
        sim.set_faults(FaultConfig(calls_status=503))
        r = httpx.post(sim.calls_url, headers={"Authorization": f"Bearer {sim.api_key}"})
        assert r.status_code == 503
        key = sim.mint_client_secret()
        assert key.startswith("ek_")
        base = sim.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.post(base + "/realtime/client_secrets", json={}, timeout=5)


def test_running_simulator_scenarios_and_waits() -> None:
    import trio
    from trio_websocket import open_websocket_url

    with running_simulator() as sim:
        sim.add_scenario(Scenario(speech_transcript="scripted"))

        async def client() -> None:
            async with open_websocket_url(
                sim.websocket_url + "?model=m",
                extra_headers=[(b"Authorization", b"Bearer k")],
            ) as ws:
                await ws.get_message()
                await ws.send_message('{"type": "response.create"}')
                await ws.get_message()

        trio.run(client)
        record = sim.wait_for_session()
        sim.wait_for_event(record, "response.create")
        assert record.types()[-1] == "response.create"
        assert len(sim.sessions) == 1


def test_a_busy_port_is_raised_in_the_callers_thread() -> None:
    with running_simulator() as sim:
        port = int(sim.base_url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(SimulatorBindError), running_simulator(SimulatorConfig(port=port)):
            pass


def test_loading_the_plugin_imports_no_simulator() -> None:
    """Every pytest run of a project with duplex installed loads the plugin: it must stay light."""
    code = (
        "import sys, duplex.testing._plugin\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('aiortc', 'av', 'numpy')]\n"
        "assert not heavy and 'duplex.simulator' not in sys.modules, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
