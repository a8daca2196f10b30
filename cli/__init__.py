"""The ``duplex`` console script: ``demo``, ``serve``, ``bench`` and ``fuzz`` (SPEC §6).

Subcommands import their machinery lazily so ``duplex --help`` stays fast and a missing
optional extra (the benchmark peers) only affects the command that needs it.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="duplex", description="Realtime voice/text conversations: demo, simulator, bench."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a scripted conversation against the simulator")
    demo.add_argument("--out-dir", default=".", help="where to write the model audio WAV files")
    demo.add_argument(
        "--transport",
        choices=["websocket", "webrtc", "all"],
        default="all",
        help="which transport(s) to demonstrate",
    )
    serve = sub.add_parser("serve", help="run the local realtime simulator")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    bench = sub.add_parser("bench", help="run the benchmark harness")
    bench.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    bench.add_argument("--scenario", action="append", default=None, help="run only these")
    bench.add_argument("--out-dir", default="results", help="JSON and PNG output directory")
    bench.add_argument("--soak", type=float, default=None, metavar="MINUTES", help="add a soak run")
    fuzz = sub.add_parser("fuzz", help="fuzz both parsers")
    fuzz.add_argument("--dialect", choices=["v1", "v2"], default=None)
    fuzz.add_argument("--role", choices=["client", "server"], default=None)
    fuzz.add_argument("--seconds", type=float, default=30.0)
    fuzz.add_argument("--engine", choices=["hypothesis", "atheris"], default="hypothesis")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``duplex`` console script."""
    args = _build_parser().parse_args(argv)
    if args.command == "demo":
        from duplex.cli._demo import run_demo

        return run_demo(out_dir=args.out_dir, transport=args.transport)
    if args.command == "serve":
        import logging

        import trio

        # Info logs (the port, call and session events) go to stderr; stdout carries only the
        # "listening on http://H:P" line that scripts wait for.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

        from duplex.simulator import run_server

        with contextlib.suppress(KeyboardInterrupt):
            trio.run(run_server, args.host, args.port)
        return 0
    if args.command == "bench":
        from duplex.benchmarks import run_bench

        return run_bench(
            quick=args.quick,
            scenarios=args.scenario,
            out_dir=args.out_dir,
            soak_minutes=args.soak,
        )
    if args.command == "fuzz":
        from duplex.benchmarks import run_fuzz

        return run_fuzz(
            dialect=args.dialect, role=args.role, seconds=args.seconds, engine=args.engine
        )
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
