"""The wheel a host installs (SPEC §1): one top-level name, typed packages, a light core.

These build the wheel from the checkout and, for the core-install test, put it into a new
virtual environment with no extras (its dependencies come from the package index, as a host's
would), then run a WebSocket text turn from that environment against a simulator running in
this one.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest
import trio

from duplex.simulator import open_simulator

from ._support import package_index_env
from .test_layering import PACKAGE_FOLDERS as SUBPACKAGES

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), "."],
        cwd=REPO_ROOT,
        env=package_index_env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("duplex-*.whl")
    return built


def test_wheel_installs_exactly_one_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    dist_info = {top for top in tops if top.endswith(".dist-info")}
    assert tops - dist_info == {"duplex"}
    (info,) = dist_info
    top_level = zipfile.ZipFile(wheel).read(f"{info}/top_level.txt").decode().split()
    assert top_level == ["duplex"]
    assert not any(name.startswith("duplex/tests/") for name in names)


def test_every_subpackage_ships_py_typed(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [pkg for pkg in SUBPACKAGES if f"duplex/{pkg}/py.typed" not in names]
    assert not missing


def test_console_script_points_into_the_namespace(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    (entry_points,) = [n for n in archive.namelist() if n.endswith("entry_points.txt")]
    assert "duplex = duplex.cli:main" in archive.read(entry_points).decode()


HOST_SCRIPT = textwrap.dedent(
    """
    import sys
    import trio
    from duplex.engine import EngineConfig, OutputTranscriptDone, ResponseDone, open_engine

    async def main(base_url: str) -> None:
        config = EngineConfig(base_url=base_url, api_key="sk-core-install-test")
        async with open_engine(config) as engine:
            await engine.start(prompt="be brief")
            await engine.send_text("hello")
            with trio.fail_after(20):
                async for event in engine.events():
                    if isinstance(event, OutputTranscriptDone):
                        print("transcript:", event.text)
                    if isinstance(event, ResponseDone):
                        break
            await engine.close()
        heavy = sorted({"aiortc", "av", "numpy", "hypercorn"} & set(sys.modules))
        print("heavy:", heavy)

    trio.run(main, sys.argv[1])
    """
)


async def test_core_install_without_extras_runs_a_websocket_turn(
    wheel: Path, tmp_path: Path
) -> None:
    env_dir = tmp_path / "host-env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = await trio.run_process(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        env=package_index_env(),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr.decode()[-2000:]
    probe = await trio.run_process(
        [str(python), "-c", "import aiortc"], capture_stderr=True, check=False
    )
    assert probe.returncode != 0, "the core install pulled in aiortc"
    script = tmp_path / "host.py"
    script.write_text(HOST_SCRIPT)
    async with open_simulator() as sim:
        assert sim.base_url is not None
        with trio.fail_after(60):
            result = await trio.run_process(
                [str(python), str(script), sim.base_url],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                cwd=tmp_path,
            )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert "transcript:" in out
    assert "heavy: []" in out
