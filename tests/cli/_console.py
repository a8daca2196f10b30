"""Running the ``duplex`` console script for real, in a subprocess, under the network guard.

Every run goes through ``tests/_netguard.py`` (``python tests/_netguard.py LOG duplex.cli …``
is ``python -m duplex.cli …`` with the guard installed), so a CLI test that would resolve or
reach a host beyond this machine is blocked and the attempt is visible in ``Run.blocked``.
Every wait is bounded: a hung command fails its test instead of the suite.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "CONSOLE_SCRIPT",
    "GUARD_SCRIPT",
    "Run",
    "error_lines",
    "interrupt_when_ready",
    "run_cli",
]

GUARD_SCRIPT = Path(__file__).resolve().parent.parent / "_netguard.py"
CONSOLE_SCRIPT = Path(sys.executable).parent / "duplex"
# `duplex serve` logs to stderr at INFO in this format; those lines are not error output.
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    blocked: list[dict[str, Any]]  # the network guard's record of blocked attempts


def _command(log: Path, args: tuple[str, ...]) -> list[str]:
    return [sys.executable, str(GUARD_SCRIPT), str(log), "duplex.cli", *args]


def _env() -> dict[str, str]:
    # Unbuffered so a ready line is seen when printed; no colour or width surprises.
    return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100"}


def _blocked(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args: str, cwd: Path, timeout: float = 60) -> Run:
    """Run ``duplex ARGS…`` to completion (at most ``timeout`` seconds)."""
    log = cwd / "netguard.jsonl"
    done = subprocess.run(
        _command(log, args),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(),
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr, _blocked(log))


def interrupt_when_ready(
    *args: str,
    ready: str,
    cwd: Path,
    timeout: float = 60,
    signum: signal.Signals = signal.SIGINT,
) -> Run:
    """Start ``duplex ARGS…``, wait for a stdout line containing ``ready``, send ``signum``
    (SIGINT is what Ctrl-C does) and collect the result. Fails if the line does not come within
    ``timeout``."""
    log = cwd / "netguard.jsonl"
    proc = subprocess.Popen(
        _command(log, args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=_env(),
        # A test run started in the background inherits SIGINT ignored (POSIX shells do
        # that to background jobs), and a child would keep ignoring it: Ctrl-C is what is
        # tested here, so the child starts with the default disposition, as a terminal's does.
        preexec_fn=_default_sigint,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    stdout_lines: queue.Queue[str | None] = queue.Queue()  # unbounded: the command's output
    stderr_text: list[str | None] = []
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, stdout_lines.put), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, stderr_text.append), daemon=True),
    ]
    for reader in readers:
        reader.start()
    seen: list[str] = []
    try:
        while (line := stdout_lines.get(timeout=timeout)) is not None:
            seen.append(line)
            if ready in line:
                break
        else:
            raise AssertionError(f"exited before printing {ready!r}:\n{''.join(seen)}")
        proc.send_signal(signum)
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for reader in readers:
            reader.join(timeout=10)
    while not stdout_lines.empty() and (line := stdout_lines.get_nowait()) is not None:
        seen.append(line)
    stderr = "".join(text for text in stderr_text if text)
    return Run(proc.returncode, "".join(seen), stderr, _blocked(log))


def _pump(stream: IO[str], put: Callable[[str | None], object]) -> None:
    for line in stream:
        put(line)
    put(None)


def error_lines(stderr: str) -> list[str]:
    """stderr without ``duplex serve``'s info log lines: what a user reads as the error."""
    return [line for line in stderr.splitlines() if line and not LOG_LINE.match(line)]
