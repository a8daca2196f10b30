"""duplex benchmarks: the harness behind ``duplex bench`` and ``duplex fuzz`` (SPEC §6–§7).

Timing lives here, never in unit tests. Modules: ``_harness`` (orchestration, table, JSON,
plots), ``_parser_bench`` (parser throughput), ``_load_server`` + ``_clients`` (engine vs
peers over WebSocket, each in its own process), ``_scenarios`` (memory, soak, WebRTC against
the simulator), ``_fuzz`` (parser fuzzing).
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_bench", "run_fuzz"]


def run_bench(**kwargs: Any) -> int:
    """``duplex bench``: see ``benchmarks._harness.run_bench``."""
    from ._harness import run_bench as run

    return run(**kwargs)


def run_fuzz(**kwargs: Any) -> int:
    """``duplex fuzz``: see ``benchmarks._fuzz.run_fuzz``."""
    from ._fuzz import run_fuzz as run

    return run(**kwargs)
