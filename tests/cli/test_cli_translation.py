"""``run_command``: the one translation of expected failures into exit codes and one line."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from duplex.cli._failures import CommandError, describe, run_command

from ._console import GUARD_SCRIPT


def _raise(exc: BaseException) -> int:
    raise exc


def test_keyboard_interrupt_nested_in_exception_groups_exits_130(
    capsys: pytest.CaptureFixture[str],
) -> None:
    nested = BaseExceptionGroup("outer", [ExceptionGroup("x", [ValueError()]), KeyboardInterrupt()])
    assert run_command("demo", lambda: _raise(nested)) == 130
    assert capsys.readouterr().err == "duplex demo: interrupted\n"


def test_an_expected_failure_inside_a_nursery_group_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    busy = OSError(errno.EADDRINUSE, "Address already in use")
    group = ExceptionGroup("nursery", [ExceptionGroup("inner", [busy])])
    code = run_command("serve", lambda: _raise(group), action="cannot listen on 127.0.0.1:1")
    assert code == 1
    assert capsys.readouterr().err == (
        "duplex serve: cannot listen on 127.0.0.1:1: address already in use\n"
    )


def test_a_bug_keeps_its_traceback() -> None:
    with pytest.raises(ZeroDivisionError):
        run_command("bench", lambda: 1 // 0)


def test_a_bug_next_to_an_expected_failure_is_not_hidden() -> None:
    group = ExceptionGroup("g", [OSError(errno.EPIPE, "x"), AttributeError("no such field")])
    with pytest.raises(ExceptionGroup):
        run_command("bench", lambda: _raise(group))


def test_system_exit_passes_through() -> None:
    with pytest.raises(SystemExit):
        run_command("fuzz", lambda: _raise(SystemExit(3)))


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (CommandError("nothing to do"), "nothing to do"),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "act: name or service not known",
        ),
        (PermissionError(errno.EACCES, "Permission denied", "/out"), "/out: permission denied"),
        (
            OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"),
            "act: cannot assign requested address",
        ),
        (
            ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib"),
            "matplotlib is not installed; it comes with pip install 'duplex[bench]'",
        ),
    ],
)
def test_describe_gives_one_line_per_expected_failure(exc: BaseException, line: str) -> None:
    assert describe(exc, action="act", extra="bench") == line


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        ModuleNotFoundError("No module named 'duplex.nope'", name="duplex.nope"),
        RuntimeError("x"),
    ],
)
def test_describe_leaves_bugs_alone(exc: BaseException) -> None:
    assert describe(exc, action="act", extra="bench") is None


def test_a_closed_stdout_ends_quietly_with_141(tmp_path: Path) -> None:
    """``duplex fuzz | head -1``: the reader goes away; no BrokenPipeError traceback."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(GUARD_SCRIPT),
            str(tmp_path / "log"),
            "duplex.cli",
            "fuzz",
            "--seconds",
            "0.4",
            "--dialect",
            "v1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"[1/2] fuzzing")
        proc.stdout.close()
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 141
    assert stderr == b""
