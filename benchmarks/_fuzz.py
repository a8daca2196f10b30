"""``duplex fuzz``: feed both parsers mutated and generated frames and catch what breaks.

Targets: ``parse_server_event`` (client role) and ``parse_client_event`` (server role), in
both dialects unless narrowed. Every input must yield exactly one event of the right root
class, a ``ParseFailure.preview`` of at most 200 characters, within ``HANG_LIMIT_S``, without
growing the heap past ``ALLOCATION_LIMIT``. Anything else is a failure, written to a
reproducer file (the exact input as JSON, plus the target and what went wrong) in
``fuzz-reproducers/``.

Engines: hypothesis (default) mutates seed frames — the golden fixtures under
``tests/protocol/data`` when the source tree is present, else frames encoded from the event
vocabulary — by truncating, splicing, flipping bytes, swapping field values for other JSON
types and nesting; it also generates free-form JSON. With ``--engine atheris`` (when
installed) libFuzzer drives the same check from raw bytes, coverage-guided.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duplex.protocol as p

__all__ = ["run_fuzz"]

HANG_LIMIT_S = 1.0
ALLOCATION_LIMIT = 64 * 2**20
REPRODUCER_DIR = Path("fuzz-reproducers")
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "protocol" / "data"

Target = tuple[str, str, Callable[[str | bytes], Any], type[Any]]


class _Hang(Exception):
    pass


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def alarm(_signum: int, _frame: object) -> None:
        raise _Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _targets(dialect: str | None, role: str | None) -> list[Target]:
    targets: list[Target] = []
    for version in [dialect] if dialect else ["v1", "v2"]:
        if role in (None, "client"):
            targets.append(("client", version, _server_parser(version), p.ServerEvent))
        if role in (None, "server"):
            targets.append(("server", version, _client_parser(version), object))
    return targets


def _server_parser(version: str) -> Callable[[str | bytes], Any]:
    def parse(data: str | bytes) -> Any:
        return p.parse_server_event(data, version)

    return parse


def _client_parser(version: str) -> Callable[[str | bytes], Any]:
    def parse(data: str | bytes) -> Any:
        return p.parse_client_event(data, version)

    return parse


def _seeds(version: str) -> list[str]:
    seeds: list[str] = []
    folder = FIXTURES / version
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            for case in json.loads(path.read_text()):
                frame = case.get("frame")
                seeds.append(frame if isinstance(frame, str) else json.dumps(frame))
    if not seeds:
        pcm = bytes(range(256)) * 4
        for event in (
            p.AudioOut(p.AudioFrame(pcm), "item_1", "resp_1"),
            p.OutputTranscriptDelta("hi", "item_1", "resp_1"),
            p.HandoffRequested("call_1", "item_1", "do it"),
            p.Error("bad", "invalid_value", "evt_1"),
            p.ResponseDone("resp_1", "completed", p.Usage(total_tokens=1)),
        ):
            seeds.append(p.encode_server_event(event, version))
        if version == "v2":  # GA-only shapes: a host tool call, nested items and parts
            item = p.ConversationItem(type="message", id="item_1", role="assistant")
            ga_events: tuple[p.ServerEvent, ...] = (
                p.ToolCallRequested("call_2", "get_time", '{"zone":"UTC"}', "item_2"),
                p.OutputItemDone(item, "resp_1", 0),
                p.ContentPartDone("item_1", p.ContentPart(type="audio", transcript="hi")),
                p.InputTranscriptSegment("item_3", "seg_1", "hi", 0.0, 0.5, "A"),
                p.OutputAudioBufferStopped("resp_1"),
            )
            seeds.extend(p.encode_server_event(event, version) for event in ga_events)
        seeds.append(p.encode_client_event(p.session_start_event(version), version))
    return seeds


def _check(target: Target, data: str | bytes) -> str | None:
    """None if the parser behaved; otherwise what went wrong."""
    role, version, parse, root = target
    tracemalloc.start()
    try:
        with _time_limit(HANG_LIMIT_S):
            event = parse(data)
        _, peak = tracemalloc.get_traced_memory()
    except _Hang:
        return f"hang: no result within {HANG_LIMIT_S} s"
    except Exception as exc:
        return f"raised {type(exc).__name__}: {exc}"
    finally:
        tracemalloc.stop()
    if peak > ALLOCATION_LIMIT + 4 * len(data):
        return f"allocated {peak} bytes for a {len(data)}-byte input"
    if not isinstance(event, root):
        return f"returned {type(event).__name__}, not a {root.__name__}"
    if isinstance(event, p.ParseFailure) and len(event.preview) > 200:
        return f"preview of {len(event.preview)} chars"
    del role, version
    return None


def _write_reproducer(target: Target, data: str | bytes, problem: str) -> Path:
    REPRODUCER_DIR.mkdir(exist_ok=True)
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    digest = hashlib.sha256(raw).hexdigest()[:16]
    path = REPRODUCER_DIR / f"{target[0]}-{target[1]}-{digest}.json"
    payload = {
        "role": target[0],
        "dialect": target[1],
        "problem": problem,
        "input_kind": "str" if isinstance(data, str) else "bytes",
        "input": data if isinstance(data, str) else data.hex(),
    }
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=True))
    return path


def _hypothesis(targets: list[Target], seconds: float) -> tuple[int, list[Path]]:
    from hypothesis import HealthCheck, given, settings, strategies as st

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=12), children, max_size=4)
        ),
        max_leaves=20,
    )

    @st.composite
    def mutated(draw: st.DrawFn, seeds: list[str]) -> str | bytes:
        base = draw(st.sampled_from(seeds))
        how = draw(st.integers(0, 6))
        if how == 0:  # truncate
            return base[: draw(st.integers(0, len(base)))]
        if how == 1:  # flip bytes
            raw = bytearray(base.encode())
            for _ in range(draw(st.integers(1, 8))):
                if raw:
                    raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
            return bytes(raw)
        if how == 2:  # splice two seeds
            other = draw(st.sampled_from(seeds))
            return base[: len(base) // 2] + other[len(other) // 2 :]
        if how in (3, 4):  # replace or add a field with another JSON type
            try:
                obj = json.loads(base)
            except ValueError:
                return base
            if isinstance(obj, dict):
                keys = [*obj.keys(), "delta", "item", "session", "type", "error", "response"]
                obj[draw(st.sampled_from(keys))] = draw(json_values)
                if how == 4 and isinstance(obj.get("item"), dict):
                    obj["item"][draw(st.sampled_from(["type", "name", "id", "content"]))] = draw(
                        json_values
                    )
            return json.dumps(obj)
        if how == 5:  # deep nesting
            depth = draw(st.integers(1, 3000))
            return "[" * depth + "]" * draw(st.integers(0, depth))
        return json.dumps(draw(json_values))

    inputs = 0
    found: list[Path] = []
    deadline = time.monotonic() + seconds

    def _fuzz_once(target: Target, strategy: st.SearchStrategy[str | bytes]) -> Callable[[], None]:
        @settings(
            max_examples=200,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(data=strategy)
        def run(data: str | bytes) -> None:
            nonlocal inputs
            inputs += 1
            problem = _check(target, data)
            if problem is not None:
                found.append(_write_reproducer(target, data, problem))

        return run

    while time.monotonic() < deadline:
        for target in targets:
            seeds = _seeds(target[1])

            _fuzz_once(target, mutated(seeds) | st.binary(max_size=256) | st.text(max_size=256))()
            if time.monotonic() >= deadline:
                break
    return inputs, found


def _atheris(targets: list[Target], seconds: float) -> tuple[int, list[Path]]:
    import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]

    found: list[Path] = []
    inputs = 0

    def one(data: bytes) -> None:
        nonlocal inputs
        inputs += 1
        for target in targets:
            problem = _check(target, data)
            if problem is not None:
                found.append(_write_reproducer(target, data, problem))

    atheris.Setup(["duplex-fuzz", f"-max_total_time={int(seconds)}"], one)
    with contextlib.suppress(SystemExit):  # libFuzzer exits when its time is up
        atheris.Fuzz()
    return inputs, found


def run_fuzz(
    *,
    dialect: str | None = None,
    role: str | None = None,
    seconds: float = 30.0,
    engine: str = "hypothesis",
) -> int:
    """Fuzz the parsers for ``seconds``. Returns 0 if nothing broke, 1 otherwise."""
    targets = _targets(dialect, role)
    names = ", ".join(f"{r}/{v}" for r, v, _, _ in targets)
    if engine == "atheris":
        try:
            inputs, found = _atheris(targets, seconds)
        except ImportError:
            print("atheris is not installed; using hypothesis")
            inputs, found = _hypothesis(targets, seconds)
    else:
        inputs, found = _hypothesis(targets, seconds)
    print(f"fuzzed {names}: {inputs} inputs in {seconds:g} s, {len(found)} failures")
    for path in found[:20]:
        print(f"  reproducer: {path}")
    return 1 if found else 0
