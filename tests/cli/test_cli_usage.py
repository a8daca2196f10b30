"""The command line itself: version, help texts, defaults, and usage errors (exit 2, one line)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from duplex.benchmarks._harness import SCENARIOS

from ._console import CONSOLE_SCRIPT, run_cli

COMMANDS = ("demo", "serve", "bench", "fuzz")


def test_installed_console_script_prints_the_package_version() -> None:
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"duplex {version('duplex')}"


def test_top_level_help_lists_every_subcommand_with_its_summary(tmp_path: Path) -> None:
    run = run_cli("--help", cwd=tmp_path)
    assert run.returncode == 0
    for command, summary in [
        ("demo", "scripted conversation"),
        ("serve", "local realtime simulator"),
        ("bench", "benchmark harness"),
        ("fuzz", "fuzz the protocol parsers"),
    ]:
        assert any(
            line.split()[:1] == [command] and summary in line for line in run.stdout.splitlines()
        ), run.stdout


@pytest.mark.parametrize(
    ("command", "description", "default"),
    [
        ("demo", "through the same host code", "(default: all)"),
        ("serve", "listening on http://H:P", "(default 8765)"),
        ("bench", "bench.json", "(default: results)"),
        ("fuzz", "a line per dialect and role", "(default: 30.0)"),
    ],
)
def test_subcommand_help_has_a_description_and_shows_defaults(
    tmp_path: Path, command: str, description: str, default: str
) -> None:
    run = run_cli(command, "--help", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    flat = " ".join(run.stdout.split())
    assert description in flat
    assert default in flat


def test_bench_help_lists_the_harness_scenario_names(tmp_path: Path) -> None:
    run = run_cli("bench", "--help", cwd=tmp_path)
    assert "{" + ",".join(SCENARIOS) + "}" in run.stdout


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("fuzz", "--seconds", "-1"), "argument --seconds: must be a finite number > 0, not -1"),
        (("fuzz", "--seconds", "0"), "argument --seconds: must be a finite number > 0, not 0"),
        (("fuzz", "--seconds", "soon"), "argument --seconds: not a number: 'soon'"),
        (("fuzz", "--engine", "afl"), "argument --engine: invalid choice: 'afl'"),
        (("bench", "--scenario", "nope"), "argument --scenario: invalid choice: 'nope'"),
        (("bench", "--soak", "-5"), "argument --soak: must be a finite number > 0"),
        (("serve", "--port", "70000"), "argument --port: must be 0-65535, not 70000"),
        (("serve", "--port", "http"), "argument --port: not a port number: 'http'"),
        (("launch",), "argument COMMAND: invalid choice: 'launch'"),
        ((), "the following arguments are required: COMMAND"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    tmp_path: Path, args: tuple[str, ...], complaint: str
) -> None:
    run = run_cli(*args, cwd=tmp_path)
    assert run.returncode == 2
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    prog = "duplex " + args[0] if args and args[0] in COMMANDS else "duplex"
    assert line.startswith(f"{prog}: {complaint}")
    assert line.endswith(f"(see '{prog} --help')")


def test_bench_rejects_an_unknown_scenario_before_running_anything(tmp_path: Path) -> None:
    run = run_cli("bench", "--scenario", "parser", "--scenario", "nope", cwd=tmp_path)
    assert run.returncode == 2
    assert not (tmp_path / "results").exists()


def test_python_dash_m_runs_the_same_entry_point(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "duplex.cli", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("duplex ")


def test_building_the_command_line_loads_no_heavy_machinery(tmp_path: Path) -> None:
    """Every invocation (even ``--help``) builds the whole parser: it must stay cheap."""
    script = "import sys\nimport duplex.cli\nprint(' '.join(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = {name.split(".")[0] for name in done.stdout.split()}
    assert not loaded & {"trio", "aiortc", "av", "numpy", "hypercorn", "hypothesis"}
    assert "duplex.simulator" not in done.stdout.split()
