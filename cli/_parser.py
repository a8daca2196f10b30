"""The command line of ``duplex``: subcommands, their flags, help texts and value checks.

Invariants: every subcommand has a ``help`` (the one-liner in ``duplex --help``) and a
``description`` (its own ``--help``); every flag shows its default; a value argparse rejects
exits 2 with one line (argparse's reason and where to find help) before any command starts.
Building the parser imports nothing heavy (the scenario names come from the benchmark
harness, which loads only the stdlib at import), so ``duplex --help`` stays fast.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

from duplex.benchmarks._harness import DEFAULT_SCENARIOS, SCENARIOS

from ._serve import add_serve_arguments

__all__ = ["DIALECTS", "ROLES", "build_parser"]

DIALECTS = ("v1", "v2")
ROLES = ("client", "server")
BOTH = "both"


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults after every flag; descriptions keep their line breaks."""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line: ``duplex fuzz: argument --seconds: …``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _version() -> str:
    try:
        return version("duplex")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def _positive(text: str) -> float:
    """A finite number greater than zero (``--seconds``, ``--soak``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, not {text}")
    return value


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``argv`` (default ``sys.argv[1:]``) only decides how much of
    ``serve``'s flag set is built (see ``duplex.cli._serve``)."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = _Parser(
        prog="duplex",
        description="Realtime voice/text conversations with OpenAI-Realtime-shaped servers: "
        "a demo, a local simulator, the benchmarks and a parser fuzzer.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"duplex {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run a scripted conversation against the embedded simulator",
        description="Start the embedded simulator and run one scripted conversation — a text "
        "turn, a spoken turn, a handoff — through the same host code over each transport.\n"
        "Prints the host-visible events and writes each transport's model audio to "
        "duplex-demo-<transport>.wav. Exit code 0 only if every transport completed the script.",
        formatter_class=_Formatter,
    )
    demo.add_argument("--out-dir", default=".", help="where to write the model audio WAV files")
    demo.add_argument(
        "--transport",
        choices=["websocket", "webrtc", "all"],
        default="all",
        help="which transport(s) to demonstrate",
    )

    serve = sub.add_parser(
        "serve",
        help="run the local realtime simulator",
        description="Run the local realtime simulator (WebSocket and WebRTC) until Ctrl-C.\n"
        "Prints 'listening on http://H:P' when ready; clients use base_url http://H:P/v1.",
        formatter_class=_Formatter,
    )
    add_serve_arguments(serve, full=bool(words) and words[0] == "serve")

    bench = sub.add_parser(
        "bench",
        help="run the benchmark harness",
        description="Measure the engine against its peers (SPEC §7): prints a table and writes "
        "bench.json and PNG plots.\nScenarios: " + ", ".join(SCENARIOS) + "; by default all "
        "but " + ", ".join(s for s in SCENARIOS if s not in DEFAULT_SCENARIOS) + ".",
        formatter_class=_Formatter,
    )
    bench.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    bench.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        default=argparse.SUPPRESS,  # absent means the harness's default set
        help="run only this scenario (repeat for several)",
    )
    bench.add_argument("--out-dir", default="results", help="JSON and PNG output directory")
    bench.add_argument(
        "--soak",
        type=_positive,
        default=argparse.SUPPRESS,  # absent means no soak run
        metavar="MINUTES",
        help="add a soak run of this many minutes",
    )

    fuzz = sub.add_parser(
        "fuzz",
        help="fuzz the protocol parsers",
        description="Feed mutated and generated frames to the parsers of each dialect and role "
        "(client = parse_server_event, server = parse_client_event) and write a reproducer "
        "file for anything that raises, hangs or over-allocates.\nPrints a line per "
        "dialect and role. Exit code 1 if anything broke.",
        formatter_class=_Formatter,
    )
    fuzz.add_argument("--dialect", choices=[*DIALECTS, BOTH], default=BOTH, help="dialect")
    fuzz.add_argument("--role", choices=[*ROLES, BOTH], default=BOTH, help="parser role")
    fuzz.add_argument(
        "--seconds", type=_positive, default=30.0, help="total time, shared by the parsers"
    )
    fuzz.add_argument(
        "--engine",
        choices=["hypothesis", "atheris"],
        default="hypothesis",
        help="atheris (coverage-guided) when installed",
    )
    return parser
