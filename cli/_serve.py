"""``duplex serve``: run the local realtime simulator until Ctrl-C (SPEC §6).

The CLI only knows two functions here, with the shapes the simulator package will own:
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
import logging
import signal

__all__ = ["add_serve_arguments", "run_serve"]


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``duplex serve``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=_port, default=8765, help="TCP port; 0 picks a free one")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, not {port}")
    return port


def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGINT (raises ``KeyboardInterrupt`` once stopped) or SIGTERM (returns 0)."""
    import trio  # here, not at the top: every `duplex` invocation builds the parser

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if trio.run(_serve, args.host, args.port) == signal.SIGINT:
        raise KeyboardInterrupt
    return 0


async def _serve(host: str, port: int) -> int:
    import trio

    from duplex.simulator import SimulatorConfig, serve_simulator

    # The receiver is open before the socket is: a Ctrl-C during start-up is not lost, and it
    # never interrupts hypercorn half-way (trio delivers it here, not as KeyboardInterrupt).
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
        async with trio.open_nursery() as nursery:
            url: str = await nursery.start(serve_simulator, SimulatorConfig(host=host, port=port))
            print(f"listening on {url.removesuffix('/v1')}", flush=True)
            signum: int = signal.SIGTERM
            async for received_signum in received:
                signum = received_signum
                break
            nursery.cancel_scope.cancel()
    return signum
