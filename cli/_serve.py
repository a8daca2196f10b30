"""``duplex serve``: run the local realtime simulator until Ctrl-C (SPEC §6).

The CLI only knows two functions here; the simulator package owns the real ones:
``add_serve_arguments(parser)`` declares the flags, ``run_serve(args)`` runs the server and
returns an exit code. Moving them into ``duplex.simulator`` changes one import line in
``duplex.cli._parser`` and one in ``duplex.cli._commands``. Importing this module must stay
cheap (no trio, no simulator): every ``duplex`` invocation builds the whole parser.

Invariants: stdout carries only the ``listening on http://H:P`` line that scripts wait for (info
logs go to stderr); SIGTERM stops the server gracefully and exits 0; SIGINT stops it gracefully
too and then surfaces as ``KeyboardInterrupt``, which ``run_command`` turns into exit 130; a
socket that cannot listen raises its ``OSError`` for ``run_command`` to report.
"""

from __future__ import annotations

import argparse

__all__ = ["add_serve_arguments", "run_serve"]


def add_serve_arguments(parser: argparse.ArgumentParser, *, full: bool) -> None:
    """The flags of ``duplex serve``.

    The simulator owns them (``duplex.simulator.add_serve_arguments``), but importing the
    simulator loads the WebRTC stack (~1 s), so the whole set is built only when the command
    line is a ``serve`` one (``full``); other invocations (``duplex --help``) list the command
    with its two basic flags.
    """
    if full:
        from duplex.simulator import add_serve_arguments as simulator_arguments

        simulator_arguments(parser)
        return
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one")


def run_serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (exit 130) or SIGTERM (exit 0)."""
    from duplex.simulator import run_serve as simulator_serve

    status = simulator_serve(args)
    if status == 130:
        raise KeyboardInterrupt  # reported once, as every command's Ctrl-C is
    return status
