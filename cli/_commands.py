"""What each subcommand does once its arguments parsed: one function per command.

Each function returns the exit code and runs its work inside ``run_command`` with the context
its failures need (what it was doing, which optional extra it relies on), so every expected
failure is translated once, in ``_failures``. Heavy machinery is imported inside the command
that needs it: a missing extra affects that command only.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable

from ._failures import run_command
from ._parser import BOTH, DIALECTS, ROLES
from ._serve import run_serve

__all__ = ["COMMANDS"]


def _demo(args: argparse.Namespace) -> int:
    def run() -> int:
        from duplex.cli._demo import run_demo

        return run_demo(out_dir=args.out_dir, transport=args.transport)

    return run_command("demo", run, action="demo", extra="simulator")


def _serve(args: argparse.Namespace) -> int:
    # `host`/`port` are the serve flags every version of them keeps.
    where = f"{getattr(args, 'host', '?')}:{getattr(args, 'port', '?')}"
    return run_command(
        "serve", lambda: run_serve(args), action=f"cannot listen on {where}", extra="simulator"
    )


def _bench(args: argparse.Namespace) -> int:
    def run() -> int:
        from duplex.benchmarks import run_bench

        return run_bench(
            quick=args.quick,
            scenarios=getattr(args, "scenario", None),
            out_dir=args.out_dir,
            soak_minutes=getattr(args, "soak", None),
        )

    return run_command("bench", run, action="bench", extra="bench")


def _fuzz(args: argparse.Namespace) -> int:
    def run() -> int:
        from duplex.benchmarks import run_fuzz

        if args.engine == "atheris" and importlib.util.find_spec("atheris") is not None:
            # libFuzzer owns the process and runs every target in one session.
            print(f"fuzzing every selected parser with atheris for {args.seconds:g} s", flush=True)
            return run_fuzz(
                dialect=None if args.dialect == BOTH else args.dialect,
                role=None if args.role == BOTH else args.role,
                seconds=args.seconds,
                engine="atheris",
            )
        if args.engine == "atheris":
            print("atheris is not installed; fuzzing with hypothesis", flush=True)
        dialects = DIALECTS if args.dialect == BOTH else (args.dialect,)
        roles = ROLES if args.role == BOTH else (args.role,)
        targets = [(dialect, role) for dialect in dialects for role in roles]
        share = args.seconds / len(targets)
        worst = 0
        for index, (dialect, role) in enumerate(targets, 1):
            print(f"[{index}/{len(targets)}] fuzzing {role}/{dialect} for {share:g} s", flush=True)
            code = run_fuzz(dialect=dialect, role=role, seconds=share, engine="hypothesis")
            worst = max(worst, code)
        return worst

    return run_command("fuzz", run, action="fuzz", extra="test")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": _demo,
    "serve": _serve,
    "bench": _bench,
    "fuzz": _fuzz,
}
