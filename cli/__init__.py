"""The ``duplex`` console script: ``demo``, ``serve``, ``bench`` and ``fuzz`` (SPEC §6).

``main(argv) -> int`` is the entry point (``duplex = "duplex.cli:main"``; ``python -m
duplex.cli`` runs it too). Modules: ``_parser`` (flags, help, value checks), ``_commands`` (one
function per subcommand), ``_failures`` (exit codes; expected failures become one line, once),
``_serve`` (the serve flags and runner), ``_demo`` (the scripted conversation).

Invariants: usage errors exit 2, Ctrl-C exits 130, an expected failure prints one line on
stderr and exits 1 — never a traceback; subcommands import their machinery lazily so
``duplex --help`` stays fast and a missing optional extra only affects the command needing it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._commands import COMMANDS
from ._parser import build_parser

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``duplex`` console script; returns the process exit code."""
    args = build_parser(argv).parse_args(argv)
    return COMMANDS[args.command](args)
