"""The bench harness's own behaviour (not figures: those are never asserted)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import pytest

from duplex.benchmarks import _harness


def test_a_scenario_that_times_out_is_an_error_row_not_a_crash() -> None:
    result = _harness._run_json(["-c", "import time; time.sleep(30)"], timeout=0.5)
    assert result == {"error": "timed out after 0.5 s"}


def test_a_failing_scenario_reports_its_last_error_line() -> None:
    result = _harness._run_json(["-c", "raise ValueError('no server')"])
    assert result == {"error": "ValueError: no server"}


def test_the_soak_is_given_longer_than_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # A 10-minute soak was killed by the 300 s per-scenario timeout.
    seen: dict[str, Any] = {}

    def fake_run_json(args: list[str], timeout: float = 0.0) -> dict[str, Any]:
        seen["args"], seen["timeout"] = args, timeout
        return {}

    monkeypatch.setattr(_harness, "_run_json", fake_run_json)
    monkeypatch.setattr(_harness, "_simulator", lambda: nullcontext("http://127.0.0.1:9/v1"))
    _harness._bench_soak(10.0)
    assert seen["args"][seen["args"].index("--seconds") + 1] == "600.0"
    assert seen["timeout"] > 600
