"""How the console script ends: exit codes and the one place expected failures become one line.

Every subcommand runs inside ``run_command``. What escapes it is translated exactly once:

- Ctrl-C (``KeyboardInterrupt``, even wrapped in trio's exception groups) → exit 130 with
  ``duplex <command>: interrupted``;
- an *expected* failure — see ``describe``: a socket that cannot listen, a host name that does
  not resolve, a file that cannot be written, an optional extra that is not installed, a
  ``CommandError`` a command raised on purpose — → one line ``duplex <command>: <what>: <why>``
  on stderr and exit 1;
- stdout closed by its reader (``duplex bench | head``) → silence and exit 141, as a shell
  reports SIGPIPE;
- anything else is a bug and keeps its traceback.

Usage errors never get here: argparse reports them (exit 2) before a command starts.

Invariant: an expected failure prints exactly one line and no traceback, whichever thread or
nursery raised it; nothing else writes ``duplex <command>:`` lines.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIPE_CLOSED",
    "EXIT_USAGE",
    "CommandError",
    "describe",
    "run_command",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE


class CommandError(Exception):
    """An expected failure a command detected itself; its message is the whole line."""


def describe(exc: BaseException, *, action: str, extra: str) -> str | None:
    """The one-line reason for an expected failure, or ``None`` if ``exc`` is a bug.

    ``action`` says what the command was doing when an ``OSError`` without a file name struck
    (``cannot listen on 127.0.0.1:8765``); ``extra`` names the optional install the command
    needs, for a missing third-party module.
    """
    if isinstance(exc, CommandError):
        return str(exc)
    if isinstance(exc, OSError):
        reason = _reason(exc)
        if exc.filename is not None and not isinstance(exc, socket.gaierror):
            return f"{os.fsdecode(exc.filename)}: {reason}"
        return f"{action}: {reason}"
    if isinstance(exc, ModuleNotFoundError) and exc.name and not exc.name.startswith("duplex"):
        return f"{exc.name} is not installed; it comes with pip install 'duplex[{extra}]'"
    return None


def _reason(exc: OSError) -> str:
    """``address already in use`` rather than ``[Errno 98] Address already in use``."""
    text = exc.strerror or (str(exc.args[-1]) if exc.args else type(exc).__name__)
    return text[:1].lower() + text[1:]


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside any nesting of (base) exception groups, in order."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def run_command(
    command: str, run: Callable[[], int], *, action: str | None = None, extra: str = "bench"
) -> int:
    """Run one subcommand and return the process exit code (see the module docstring)."""
    try:
        return run()
    except BaseException as exc:  # translated below, or re-raised unchanged
        leaves = _leaves(exc)
        if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            _say(f"duplex {command}: interrupted")
            return EXIT_INTERRUPTED
        if all(isinstance(leaf, BrokenPipeError) for leaf in leaves):
            _silence_stdout()
            return EXIT_PIPE_CLOSED
        if isinstance(exc, SystemExit):
            raise
        reasons = [describe(leaf, action=action or command, extra=extra) for leaf in leaves]
        if not leaves or any(reason is None for reason in reasons):
            raise
        _say(f"duplex {command}: {reasons[0]}")
        return EXIT_FAILURE


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
