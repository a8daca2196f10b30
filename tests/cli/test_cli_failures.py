"""Expected failures of the console script: one line on stderr, no traceback, the right exit code
(1 for a failure, 130 for Ctrl-C), and nothing sent beyond this machine."""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._console import Run, error_lines, interrupt_when_ready, run_cli


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something is already listening on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def _one_error_line(run: Run) -> str:
    assert "Traceback" not in run.stderr
    [line] = error_lines(run.stderr)
    return line


def test_serve_on_a_busy_port_says_so_in_one_line(tmp_path: Path, busy_port: int) -> None:
    run = run_cli("serve", "--port", str(busy_port), cwd=tmp_path)
    assert run.returncode == 1
    assert _one_error_line(run).lower() == (
        f"duplex serve: cannot listen on 127.0.0.1:{busy_port}: address already in use"
    )
    assert "listening on" not in run.stdout


def test_serve_on_an_address_this_machine_does_not_have_says_so(tmp_path: Path) -> None:
    # 203.0.113.0/24 is TEST-NET-3: never a local interface; binding sends nothing.
    run = run_cli("serve", "--host", "203.0.113.7", "--port", "0", cwd=tmp_path)
    assert run.returncode == 1
    assert _one_error_line(run).lower() == (
        "duplex serve: cannot listen on 203.0.113.7:0: cannot assign requested address"
    )


def test_serve_on_a_host_name_that_does_not_resolve_says_so(tmp_path: Path) -> None:
    # Resolving the name would be a DNS query beyond this machine: the network guard refuses
    # it with the same gaierror a failed lookup raises, and the CLI reports that in one line.
    run = run_cli("serve", "--host", "no-such-host.invalid", "--port", "0", cwd=tmp_path)
    assert run.returncode == 1
    line = _one_error_line(run)
    assert line.startswith("duplex serve: cannot listen on no-such-host.invalid:0: ")
    assert {attempt["target"].split(":")[0] for attempt in run.blocked} == {"no-such-host.invalid"}


def test_ctrl_c_on_serve_exits_130_with_one_line(tmp_path: Path) -> None:
    run = interrupt_when_ready("serve", "--port", "0", ready="listening on", cwd=tmp_path)
    assert re.fullmatch(r"listening on http://127\.0\.0\.1:\d+\n", run.stdout)
    assert run.returncode == 130
    assert _one_error_line(run) == "duplex serve: interrupted"
    assert run.blocked == []


def test_sigterm_on_serve_stops_it_cleanly_with_exit_0(tmp_path: Path) -> None:
    run = interrupt_when_ready(
        "serve", "--port", "0", ready="listening on", cwd=tmp_path, signum=signal.SIGTERM
    )
    assert run.returncode == 0
    assert error_lines(run.stderr) == []


def test_ctrl_c_on_demo_exits_130_with_one_line(tmp_path: Path) -> None:
    run = interrupt_when_ready(
        "demo",
        "--transport",
        "websocket",
        "--out-dir",
        str(tmp_path),
        ready="=== websocket",
        cwd=tmp_path,
    )
    assert run.returncode == 130
    assert _one_error_line(run) == "duplex demo: interrupted"
    assert run.blocked == []


def test_ctrl_c_on_bench_exits_130_with_one_line(tmp_path: Path) -> None:
    # The memory scenario runs `duplex serve` and a client process; Ctrl-C lands while they run.
    run = interrupt_when_ready(
        "bench",
        "--quick",
        "--scenario",
        "memory",
        "--out-dir",
        str(tmp_path),
        ready="memory: 100 idle conversations",
        cwd=tmp_path,
    )
    assert run.returncode == 130
    assert _one_error_line(run) == "duplex bench: interrupted"
    assert not (tmp_path / "bench.json").exists()


def test_demo_into_an_unwritable_place_fails_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    run = run_cli("demo", "--transport", "websocket", "--out-dir", str(blocker / "x"), cwd=tmp_path)
    assert run.returncode == 1
    assert _one_error_line(run) == f"duplex demo: {blocker / 'x'}: not a directory"


def test_fuzz_prints_a_line_per_dialect_and_role(tmp_path: Path) -> None:
    run = run_cli("fuzz", "--seconds", "0.2", "--dialect", "v2", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    progress = [line for line in run.stdout.splitlines() if line.startswith("[")]
    assert progress == ["[1/2] fuzzing client/v2 for 0.1 s", "[2/2] fuzzing server/v2 for 0.1 s"]
    assert run.stdout.count("0 failures") == 2
