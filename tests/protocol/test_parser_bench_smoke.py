"""The parser benchmark runs and reports a well-formed result (its speed is never asserted)."""

from __future__ import annotations

import itertools
import json

import pytest

from duplex.benchmarks._parser_bench import MIX, build_frames, format_table, run_parser_bench
from duplex.protocol import ParseFailure, UnknownEvent, parse_server_event


def test_parser_bench_result_has_both_dialects_rates_ratio_and_per_type_breakdown() -> None:
    result = run_parser_bench(repeats=1, mixes=1)
    json.dumps(result)  # JSON-serialisable
    assert result["config"]["repeats"] == 1
    assert result["config"]["mixes"] == 1
    assert set(result["dialects"]) == {"v1", "v2"}
    events_per_mix = sum(MIX.values())
    for dialect in result["dialects"].values():
        assert dialect["events"] == events_per_mix
        for measure in ("parse", "orjson_loads", "decode_floor"):
            assert dialect[measure]["events_per_s"] > 0
            assert dialect[measure]["best_wall_s"] > 0
        assert dialect["parse"]["best_cpu_s"] >= 0
        assert dialect["ratio_to_orjson"] > 0
        assert isinstance(dialect["parser_overhead_us"], float)
        per_type = dialect["per_type"]
        assert sum(row["count"] for row in per_type.values()) == events_per_mix
        for row in per_type.values():
            assert row["parse_us"] > 0
            assert row["orjson_us"] > 0
        assert dialect["classes"] == {
            "AudioOut": MIX["audio_delta"],
            "OutputTranscriptDelta": MIX["transcript_delta"],
            "InputAudioSpeechStarted": MIX["speech_started"],
            "HandoffRequested": MIX["handoff_call_done"],
        }
    assert result["target"]["v2_events_per_s"] == 300_000
    assert isinstance(result["target"]["met"], bool)
    assert "per event type" in format_table(result)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_parser_bench_frames_are_shuffled_deterministically_and_all_parse(version: str) -> None:
    frames = build_frames(version, mixes=1)
    assert frames == build_frames(version, mixes=1)
    assert len(frames) == sum(MIX.values())
    kinds = [json.loads(f)["type"] for f in frames]
    switches = sum(a != b for a, b in itertools.pairwise(kinds))
    assert switches > 100  # shuffled, not grouped by type (grouped would switch 3 times)
    for frame in frames:
        assert not isinstance(parse_server_event(frame, version), ParseFailure | UnknownEvent)


def test_v2_bench_handoff_frames_are_function_calls_of_the_codex_tool() -> None:
    calls = [f for f in build_frames("v2", mixes=1) if '"function_call"' in f]
    assert len(calls) == MIX["handoff_call_done"]
    assert all('"name":"codex"' in f for f in calls)


def test_parser_bench_rejects_nonpositive_arguments() -> None:
    with pytest.raises(ValueError, match="repeats"):
        run_parser_bench(repeats=0, mixes=1)
