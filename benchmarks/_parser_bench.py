"""Parser throughput on the SPEC §7 canonical mix, for both dialects.

The mix, per unit: 1000 audio deltas of 20 ms of non-silent 24 kHz mono PCM16, 500 output
transcript deltas, 20 ``speech_started`` and 10 function-call-done events for the handoff tool
(v2: ``conversation.item.done`` with a ``codex`` function call; v1: the same logical
``HandoffRequested`` as ``conversation.handoff.requested``). Frames are produced with
``encode_server_event`` in each dialect and shuffled with a fixed seed, so every run parses
the same texts in the same order.

Measured, best of ``repeats`` (wall via ``time.perf_counter``, CPU via ``time.process_time``;
the garbage collector is paused while timing, as ``timeit`` does):

- ``parse_server_event`` over the whole mix → events/s;
- bare ``orjson.loads`` over the same texts → events/s, and the ratio parser/orjson (1.0 would
  mean the parser costs nothing beyond JSON decoding);
- the decode floor: ``orjson.loads`` plus the base64 decode of each audio delta, i.e. the
  best any parser that must hand out decoded PCM can do, and the parser's overhead above it;
- per wire event type: µs per event for both.

Run ``python -m benchmarks._parser_bench [--repeats N] [--mixes M] [--json]``. Nothing here
asserts a speed; the SPEC target (v2 ≥ 300 000 events/s) is reported, not enforced.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson
import pybase64

from duplex.protocol import (
    AudioFrame,
    AudioOut,
    HandoffRequested,
    InputAudioSpeechStarted,
    OutputTranscriptDelta,
    ParseFailure,
    ProtocolVersion,
    ServerEvent,
    UnknownEvent,
    encode_server_event,
    parse_server_event,
)

__all__ = ["MIX", "SPEC_V2_TARGET_EVENTS_PER_S", "build_frames", "main", "run_parser_bench"]

#: events per mix unit (SPEC §7)
MIX: Final[dict[str, int]] = {
    "audio_delta": 1000,
    "transcript_delta": 500,
    "speech_started": 20,
    "handoff_call_done": 10,
}
SPEC_V2_TARGET_EVENTS_PER_S: Final = 300_000
SEED: Final = 20_26
FRAME_MS: Final = 20
SAMPLE_RATE: Final = 24_000
WORDS: Final = (
    "sure", "let", "me", "check", "that", "for", "you", "the", "build", "is", "green",
    "and", "tests", "pass", "now", "opening", "a", "pull", "request",
)  # fmt: skip


def _pcm_20ms(rng: random.Random) -> bytes:
    """20 ms of a voiced-sounding, never-silent signal (two sines plus noise)."""
    n = SAMPLE_RATE * FRAME_MS // 1000
    f1, f2 = rng.uniform(90, 250), rng.uniform(500, 2500)
    phase = rng.uniform(0, 2 * math.pi)
    samples = bytearray()
    for i in range(n):
        t = i / SAMPLE_RATE
        value = (
            9000 * math.sin(2 * math.pi * f1 * t + phase)
            + 3000 * math.sin(2 * math.pi * f2 * t)
            + rng.uniform(-800, 800)
        )
        samples += int(max(-32768, min(32767, value))).to_bytes(2, "little", signed=True)
    return bytes(samples)


def _logical_events(mixes: int, rng: random.Random) -> list[ServerEvent]:
    events: list[ServerEvent] = []
    # A handful of distinct audio frames is enough: base64 decoding cost does not depend on
    # the bytes, and building 1000 frames per mix would dominate the setup time.
    frames = [AudioFrame(_pcm_20ms(rng)) for _ in range(16)]
    for unit in range(mixes):
        response_id = f"resp_{unit:04d}"
        item_id = f"item_{unit:04d}_a"
        for i in range(MIX["audio_delta"]):
            events.append(AudioOut(frames[i % len(frames)], item_id, response_id))
        for _ in range(MIX["transcript_delta"]):
            events.append(OutputTranscriptDelta(rng.choice(WORDS) + " ", item_id, response_id))
        for i in range(MIX["speech_started"]):
            events.append(InputAudioSpeechStarted(f"item_{unit:04d}_u{i}", 1000 * i))
        for i in range(MIX["handoff_call_done"]):
            events.append(
                HandoffRequested(
                    f"call_{unit:04d}_{i}",
                    f"item_{unit:04d}_fc{i}",
                    f"please run the test suite for module {i} and report back",
                )
            )
    return events


def build_frames(version: ProtocolVersion | str, *, mixes: int = 1, seed: int = SEED) -> list[str]:
    """The shuffled wire texts of ``mixes`` canonical-mix units in ``version``."""
    rng = random.Random(seed)
    frames = [encode_server_event(e, version) for e in _logical_events(mixes, rng)]
    random.Random(seed + 1).shuffle(frames)
    return frames


def _best_of(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds) over ``repeats`` calls of ``fn``."""
    best_wall = best_cpu = math.inf
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            c0 = time.process_time()
            t0 = time.perf_counter()
            fn()
            wall = time.perf_counter() - t0
            cpu = time.process_time() - c0
            best_wall = min(best_wall, wall)
            best_cpu = min(best_cpu, cpu)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best_wall, best_cpu


def _parse_all(frames: Sequence[str], version: ProtocolVersion) -> Callable[[], object]:
    def run() -> object:
        parse = parse_server_event
        last: object = None
        for frame in frames:
            last = parse(frame, version)
        return last

    return run


def _loads_all(frames: Sequence[str]) -> Callable[[], object]:
    def run() -> object:
        loads = orjson.loads
        last: object = None
        for frame in frames:
            last = loads(frame)
        return last

    return run


AUDIO_TAGS: Final = frozenset(
    {"conversation.output_audio.delta", "response.output_audio.delta", "response.audio.delta"}
)


def _floor_all(frames: Sequence[str]) -> Callable[[], object]:
    """The unavoidable work of any parser: JSON decoding plus base64 decoding of audio (with
    the decoder the parser uses, ``pybase64``, so the overhead figure is the parser's own)."""

    def run() -> object:
        loads = orjson.loads
        b64decode = pybase64.b64decode
        last: object = None
        for frame in frames:
            obj = loads(frame)
            last = b64decode(obj["delta"], validate=True) if obj["type"] in AUDIO_TAGS else obj
        return last

    return run


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else math.inf


def _check(frames: Sequence[str], version: ProtocolVersion) -> dict[str, int]:
    """Parse once untimed: every frame must become a typed event. Returns counts by class."""
    counts: dict[str, int] = {}
    for frame in frames:
        event = parse_server_event(frame, version)
        if isinstance(event, ParseFailure | UnknownEvent):
            raise AssertionError(f"benchmark frame did not parse in {version}: {event!r}")
        name = type(event).__name__
        counts[name] = counts.get(name, 0) + 1
    return counts


def _bench_dialect(version: ProtocolVersion, *, repeats: int, mixes: int) -> dict[str, Any]:
    frames = build_frames(version, mixes=mixes)
    n = len(frames)
    classes = _check(frames, version)

    parse_wall, parse_cpu = _best_of(_parse_all(frames, version), repeats)
    loads_wall, loads_cpu = _best_of(_loads_all(frames), repeats)
    floor_wall, floor_cpu = _best_of(_floor_all(frames), repeats)

    by_type: dict[str, list[str]] = {}
    for frame in frames:
        by_type.setdefault(orjson.loads(frame)["type"], []).append(frame)
    per_type: dict[str, dict[str, Any]] = {}
    for kind, group in sorted(by_type.items(), key=lambda kv: -len(kv[1])):
        p_wall, _ = _best_of(_parse_all(group, version), repeats)
        l_wall, _ = _best_of(_loads_all(group), repeats)
        per_type[kind] = {
            "count": len(group),
            "mean_frame_bytes": round(sum(len(f) for f in group) / len(group), 1),
            "parse_us": p_wall / len(group) * 1e6,
            "orjson_us": l_wall / len(group) * 1e6,
        }

    parse_rate = _rate(n, parse_wall)
    loads_rate = _rate(n, loads_wall)
    return {
        "events": n,
        "classes": classes,
        "parse": {
            "best_wall_s": parse_wall,
            "best_cpu_s": parse_cpu,
            "events_per_s": parse_rate,
            "cpu_events_per_s": _rate(n, parse_cpu),
            "us_per_event": parse_wall / n * 1e6,
        },
        "orjson_loads": {
            "best_wall_s": loads_wall,
            "best_cpu_s": loads_cpu,
            "events_per_s": loads_rate,
            "cpu_events_per_s": _rate(n, loads_cpu),
            "us_per_event": loads_wall / n * 1e6,
        },
        # orjson.loads + base64 decoding of the audio: the ceiling for any decoding parser
        "decode_floor": {
            "best_wall_s": floor_wall,
            "best_cpu_s": floor_cpu,
            "events_per_s": _rate(n, floor_wall),
            "us_per_event": floor_wall / n * 1e6,
        },
        # time the parser spends beyond JSON + base64 decoding, per event
        "parser_overhead_us": (parse_wall - floor_wall) / n * 1e6,
        # parser throughput as a fraction of bare JSON decoding (higher is better, ≤ ~1)
        "ratio_to_orjson": parse_rate / loads_rate,
        # how many times longer parsing takes than orjson.loads alone
        "slowdown_vs_orjson": parse_wall / loads_wall if loads_wall > 0 else math.inf,
        "per_type": per_type,
    }


def run_parser_bench(*, repeats: int = 7, mixes: int = 4) -> dict[str, Any]:
    """Benchmark ``parse_server_event`` on the canonical mix in v1 and v2.

    Args:
        repeats: timing repetitions; the best (fastest) is reported.
        mixes: canonical-mix units per dialect (1530 events each).

    Returns:
        A JSON-serialisable dict: ``config``, ``dialects`` (``v1``/``v2`` results) and
        ``target`` (the SPEC §7 v2 figure and whether this run met it).
    """
    if repeats < 1 or mixes < 1:
        raise ValueError(f"repeats and mixes must be >= 1, got {repeats} and {mixes}")
    dialects = {v.value: _bench_dialect(v, repeats=repeats, mixes=mixes) for v in ProtocolVersion}
    v2_rate = dialects["v2"]["parse"]["events_per_s"]
    return {
        "benchmark": "parser",
        "config": {
            "repeats": repeats,
            "mixes": mixes,
            "mix": dict(MIX),
            "audio_frame_ms": FRAME_MS,
            "audio_sample_rate": SAMPLE_RATE,
            "seed": SEED,
            "gc_during_timing": "disabled",
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "machine": platform.machine(),
            "orjson": orjson.__version__,
        },
        "dialects": dialects,
        "target": {
            "v2_events_per_s": SPEC_V2_TARGET_EVENTS_PER_S,
            "v2_measured_events_per_s": v2_rate,
            "met": v2_rate >= SPEC_V2_TARGET_EVENTS_PER_S,
        },
    }


def format_table(result: dict[str, Any]) -> str:
    """A plain-text report of a ``run_parser_bench`` result."""
    cfg = result["config"]
    lines = [
        f"parser benchmark — canonical mix x{cfg['mixes']}, best of {cfg['repeats']} "
        f"(Python {cfg['python']}, orjson {cfg['orjson']})",
        "",
        f"{'dialect':<8}{'events':>8}{'parse ev/s':>14}{'cpu ev/s':>14}"
        f"{'orjson ev/s':>14}{'ratio':>8}{'floor ev/s':>14}{'µs/ev':>8}{'overhead µs':>13}",
    ]
    for name, d in result["dialects"].items():
        lines.append(
            f"{name:<8}{d['events']:>8}{d['parse']['events_per_s']:>14,.0f}"
            f"{d['parse']['cpu_events_per_s']:>14,.0f}{d['orjson_loads']['events_per_s']:>14,.0f}"
            f"{d['ratio_to_orjson']:>8.2f}{d['decode_floor']['events_per_s']:>14,.0f}"
            f"{d['parse']['us_per_event']:>8.2f}{d['parser_overhead_us']:>13.2f}"
        )
    target = result["target"]
    lines += [
        "ratio = parse ev/s ÷ orjson.loads ev/s; floor = orjson.loads + base64 decode of audio "
        "(the best any decoding parser can do); overhead = parse − floor.",
        "",
        f"SPEC §7 target: v2 >= {target['v2_events_per_s']:,} events/s — "
        f"{'met' if target['met'] else 'NOT met'} ({target['v2_measured_events_per_s']:,.0f})",
    ]
    for name, d in result["dialects"].items():
        lines += [
            "",
            f"{name} per event type",
            f"  {'type':<44}{'count':>7}{'bytes':>8}{'parse µs':>10}{'orjson µs':>11}",
        ]
        for kind, row in d["per_type"].items():
            lines.append(
                f"  {kind:<44}{row['count']:>7}{row['mean_frame_bytes']:>8.0f}"
                f"{row['parse_us']:>10.2f}{row['orjson_us']:>11.2f}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=7, help="timing repetitions (best kept)")
    parser.add_argument("--mixes", type=int, default=4, help="canonical-mix units per dialect")
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    args = parser.parse_args(argv)
    result = run_parser_bench(repeats=args.repeats, mixes=args.mixes)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
