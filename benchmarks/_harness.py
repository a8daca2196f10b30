"""``duplex bench``: every SPEC §7 measure in one run, peers side by side.

Each measure runs its server and its client in separate processes (CPU and RSS then belong
to the client alone, and asyncio peers never share a process with trio):

- parser: ``_parser_bench`` in-process (pure CPU, no I/O).
- burst / paced: ``_load_server`` + one ``_clients`` process per client (duplex, duplex.aio
  under ``asyncio.run``, bare trio-websocket loop, ``openai`` SDK, ``openai-agents``). Burst
  is repeated and the median taken. Peers that are not installed (``pip install
  duplex[bench]``) are skipped with a note.
- memory / webrtc / soak: ``duplex serve`` (the simulator) + ``_scenarios``.
- webrtc-calls: the simulator + ``_rtc_calls`` (duplex against a plain aiortc client making
  the same call, interleaved rounds, medians; then 20 duplex calls in one process).

Results: a table on stdout, ``bench.json`` and PNG plots in ``out_dir``. No measure asserts
anything; CI runs ``--quick`` as a smoke test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["SCENARIOS", "run_bench"]

SCENARIOS = (
    "parser", "burst", "paced", "memory", "webrtc", "webrtc-calls", "soak", "resume", "dead-peer",
)  # fmt: skip
DEFAULT_SCENARIOS = tuple(s for s in SCENARIOS if s != "soak")
#: ``webrtc-calls``: concurrent calls in one process (SPEC §7: 20 with zero lost frames).
RTC_MANY_CALLS = 20
# ``aio``: the duplex engine under an asyncio host (``duplex.aio``), beside the trio host.
CLIENTS = ("duplex", "aio", "bare", "openai", "agents")

PEERS = {"openai": "openai", "agents": "agents"}
SUBPROCESS_TIMEOUT_S = 300


def _available(client: str) -> bool:
    module = PEERS.get(client)
    return module is None or importlib.util.find_spec(module) is not None


@contextmanager
def _server(args: list[str], prefix: str = "") -> Iterator[str]:
    """Start a server process; yield the URL it prints on its first line."""
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"server {args} did not start")
        yield line.removeprefix(prefix)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def _run_json(args: list[str], timeout: float = SUBPROCESS_TIMEOUT_S) -> dict[str, Any]:
    """Run ``python ARGS`` and return the JSON object it prints, or ``{"error": …}`` (a
    failed or timed-out scenario is a row of the table, never a crash of the harness)."""
    try:
        done = subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    if done.returncode != 0:
        lines = [ln.strip(" |+-") for ln in done.stderr.strip().splitlines()]
        errors = [ln for ln in lines if "Error" in ln or "Exception" in ln] or lines[-1:]
        return {"error": (errors[-1] if errors else "no output")[:300]}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _progress(message: str) -> None:
    print(f"  · {message}", flush=True)


def _bench_parser(quick: bool) -> dict[str, Any]:
    from ._parser_bench import run_parser_bench

    return run_parser_bench(repeats=3 if quick else 7, mixes=2 if quick else 4)


def _interleaved_rounds(
    results: dict[str, Any],
    scenario: str,
    url: str,
    repeats: int,
    args: list[str],
    describe: str,
) -> dict[str, list[dict[str, Any]]]:
    """Run every installed client ``repeats`` times, one round of all clients after another,
    and return each client's runs; clients not installed are marked skipped in ``results``.

    Rounds interleave the clients, so every client sees the same machine conditions and the
    differences are not just drift between runs (a p99 or a CPU figure from one short run
    mostly measures what else the machine did during it)."""
    clients = [c for c in CLIENTS if _available(c)]
    for client in CLIENTS:
        if client not in clients:
            results["clients"][client] = {"skipped": "not installed (pip install duplex[bench])"}
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    for round_ in range(repeats):
        for client in clients:
            _progress(f"{scenario} round {round_ + 1}/{repeats}: {client} ({describe})")
            runs[client].append(
                _run_json(["-m", "duplex.benchmarks._clients", client, scenario, url, *args])
            )
    return runs


def _bench_burst(quick: bool) -> dict[str, Any]:
    events = 10000 if quick else 30000
    repeats = 3 if quick else 5
    results: dict[str, Any] = {"events": events, "repeats": repeats, "clients": {}}
    with _server(
        ["-m", "duplex.benchmarks._load_server", "--mode", "burst", "--events", str(events)]
    ) as url:
        runs = _interleaved_rounds(
            results, "burst", url, repeats, ["--events", str(events)], f"{events} events"
        )
        _progress("websocket round trip (duplex transport)")
        results["websocket_rtt"] = _run_json(
            [
                "-m",
                "duplex.benchmarks._clients",
                "duplex",
                "rtt",
                url,
                "--events",
                "300" if quick else "2000",
            ]
        )
        for client, client_runs in runs.items():
            ok = [r for r in client_runs if "error" not in r]
            if not ok:
                results["clients"][client] = client_runs[0]
                continue
            results["clients"][client] = {
                "cpu_us_per_event": statistics.median(r["cpu_us_per_event"] for r in ok),
                "events_per_s": statistics.median(r["events_per_s"] for r in ok),
                "runs": ok,
            }
    total = results["clients"].get("duplex", {}).get("cpu_us_per_event")
    if total:
        # The parser's share is measured in-process on exactly the burst's frames: a pure
        # function, so its cost per event does not depend on batching. Cutting the live
        # pipeline into stage runs does not work: a faster consumer makes the transport wake
        # it for smaller batches, which changes the transport's own cost per event.
        parser = _parser_us_per_event(events)
        results["stages_us"] = {
            "parser": parser,
            "transport+actors+host": max(0.0, total - parser),
        }
    return results


def _parser_us_per_event(events: int) -> float:
    from duplex.protocol import parse_server_event

    from ._load_server import burst_frames

    frames = burst_frames(events)
    best = float("inf")
    for _ in range(3):
        began = time.process_time()
        for frame in frames:
            parse_server_event(frame, "v2")
        best = min(best, time.process_time() - began)
    return best / len(frames) * 1e6


def _bench_paced(quick: bool) -> dict[str, Any]:
    conversations, rate = 50, 50.0
    seconds = 2.0 if quick else 10.0
    repeats = 3  # the median of three shrugs off one disturbed round; two cannot
    results: dict[str, Any] = {
        "conversations": conversations,
        "rate_per_conversation": rate,
        "seconds": seconds,
        "repeats": repeats,
        "clients": {},
    }
    server = ["-m", "duplex.benchmarks._load_server", "--mode", "paced", "--rate", str(rate)]
    with _server([*server, "--spread", str(conversations)]) as url:
        runs = _interleaved_rounds(
            results,
            "paced",
            url,
            repeats,
            ["--conversations", str(conversations), "--seconds", str(seconds)],
            f"{conversations} conversations x {rate:g} ev/s",
        )
        for client, client_runs in runs.items():
            results["clients"][client] = _paced_summary(client_runs)
    return results


def _paced_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric, the median over rounds; the latency samples of every round (for the CDF)."""
    ok = [r for r in runs if "error" not in r and r.get("events")]
    if not ok:
        return runs[0]
    summary: dict[str, Any] = {
        key: statistics.median(r[key] for r in ok)
        for key in ("cpu_us_per_event", "latency_ms_p50", "latency_ms_p99", "latency_ms_max")
    }
    summary["events"] = sum(r["events"] for r in ok)
    summary["connected"] = min(r["connected"] for r in ok)
    summary["rounds"] = [{k: v for k, v in r.items() if k != "latency_samples_ms"} for r in ok]
    summary["latency_samples_ms"] = sorted(x for r in ok for x in r["latency_samples_ms"])
    return summary


@contextmanager
def _simulator() -> Iterator[str]:
    with _server(["-m", "duplex.cli", "serve", "--port", "0"], prefix="listening on ") as url:
        yield url + "/v1"


def _bench_memory(quick: bool) -> dict[str, Any]:
    with _simulator() as url:
        _progress("memory: 100 idle conversations")
        return _run_json(
            ["-m", "duplex.benchmarks._scenarios", "idle", url, "--conversations", "100"]
        )


def _bench_dead_peer(quick: bool) -> dict[str, Any]:
    runs = 1 if quick else 3
    _progress(f"dead-peer: {runs} frozen simulator(s) per transport, mid-response")
    # Each run starts (and freezes) a simulator process of its own.
    return _run_json(["-m", "duplex.benchmarks._scenarios", "dead-peer", "-", "--runs", str(runs)])


def _bench_resume(quick: bool) -> dict[str, Any]:
    runs = 5 if quick else 20
    _progress(f"resume: {runs} drops (close 1011) and reconnects")
    # The simulator runs inside the scenario process (one clock for accept and resume).
    return _run_json(["-m", "duplex.benchmarks._scenarios", "resume", "-", "--runs", str(runs)])


def _bench_webrtc(quick: bool) -> dict[str, Any]:
    runs, seconds = (3, 5.0) if quick else (5, 15.0)
    with _simulator() as url:
        _progress(f"webrtc: {runs} connects, {seconds:g} s duplex audio")
        result = _run_json(
            [
                "-m",
                "duplex.benchmarks._scenarios",
                "webrtc",
                url,
                "--runs",
                str(runs),
                "--seconds",
                str(seconds),
            ]
        )
        # The same audio stream under the trio host and under duplex.aio (asyncio.run): CPU
        # and the lateness of the host's own 20 ms ticks (aiortc stays on its bridge thread).
        hosts: dict[str, Any] = {}
        for client in ("duplex", "aio"):
            _progress(f"webrtc: {seconds:g} s audio under the {client} host")
            hosts[client] = _run_json(
                [
                    "-m",
                    "duplex.benchmarks._clients",
                    client,
                    "webrtc",
                    url,
                    "--seconds",
                    str(seconds),
                ]
            )
        if "error" not in result:
            result["hosts"] = hosts
        return result


def _bench_webrtc_calls(quick: bool) -> dict[str, Any]:
    """CPU per WebRTC audio conversation, duplex against a plain aiortc client making the
    same call (``_rtc_calls``), in interleaved rounds against one simulator, then
    ``RTC_MANY_CALLS`` duplex calls in one process. Medians, with the load average."""
    rounds, seconds = (2, 6.0) if quick else (3, 12.0)
    runs: dict[str, list[dict[str, Any]]] = {"aiortc": [], "duplex": []}
    load_before = os.getloadavg()
    with _simulator() as url:
        for round_ in range(rounds):
            for client in runs:
                _progress(f"webrtc-calls round {round_ + 1}/{rounds}: {client}, {seconds:g} s")
                runs[client].append(
                    _run_json(
                        [
                            "-m",
                            "duplex.benchmarks._rtc_calls",
                            client,
                            url,
                            "--seconds",
                            str(seconds),
                        ]
                    )
                )
        _progress(f"webrtc-calls: {RTC_MANY_CALLS} duplex calls in one process, {seconds:g} s")
        many = _run_json(
            [
                "-m", "duplex.benchmarks._rtc_calls", "duplex", url,
                "--calls", str(RTC_MANY_CALLS), "--seconds", str(seconds),
            ]
        )  # fmt: skip
    result: dict[str, Any] = {
        "seconds": seconds,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "runs": runs,
        "many": many,
    }
    for client, client_runs in runs.items():
        values = [r["cpu_percent_per_call"] for r in client_runs if "error" not in r]
        errors = [r["error"] for r in client_runs if "error" in r]
        result[client] = {
            "cpu_percent_per_call_median": statistics.median(values) if values else None,
            "cpu_percent_per_call_runs": values,
            "errors": errors,
        }
    ours = result["duplex"]["cpu_percent_per_call_median"]
    theirs = result["aiortc"]["cpu_percent_per_call_median"]
    result["ratio_to_aiortc"] = ours / theirs if ours is not None and theirs else None
    return result


def _bench_soak(minutes: float) -> dict[str, Any]:
    seconds = minutes * 60
    with _simulator() as url:
        _progress(f"soak: {minutes:g} min of streaming audio")
        return _run_json(
            [
                "-m", "duplex.benchmarks._scenarios", "soak", url,
                "--seconds", str(seconds), "--interval", str(max(1.0, seconds / 120)),
            ],
            timeout=seconds + SUBPROCESS_TIMEOUT_S,  # the soak itself, plus start and report
        )  # fmt: skip


def _ratio(ours: float | None, best: float | None) -> str:
    if ours is None or not best:
        return "-"
    return f"{ours / best:.2f}x"


def _best_peer(clients: dict[str, Any], key: str) -> tuple[str | None, float | None]:
    best: tuple[str | None, float | None] = (None, None)
    for name, data in clients.items():
        # The bare loop is the floor any Python client pays, not a peer.
        if name not in PEERS or not isinstance(data.get(key), int | float):
            continue
        if best[1] is None or data[key] < best[1]:
            best = (name, data[key])
    return best


def format_table(results: dict[str, Any]) -> str:
    """The summary table: one row per measure, duplex against the best peer."""
    rows: list[tuple[str, str, str, str]] = []
    parser = results.get("parser")
    if parser:
        for dialect, d in parser["dialects"].items():
            rows.append(
                (
                    f"parser {dialect} (canonical mix)",
                    f"{d['parse']['events_per_s']:,.0f} ev/s",
                    f"orjson.loads {d['orjson_loads']['events_per_s']:,.0f} ev/s",
                    f"{d['ratio_to_orjson']:.2f} of orjson",
                )
            )
    for name, key, unit in (
        ("burst", "cpu_us_per_event", "µs CPU/event"),
        ("paced", "latency_ms_p99", "ms p99 latency"),
    ):
        section = results.get(name)
        if not section:
            continue
        clients = section["clients"]
        ours = clients.get("duplex", {}).get(key)
        peer, best = _best_peer(clients, key)
        rows.append(
            (
                f"{name}: {unit}",
                f"{ours:.1f}" if isinstance(ours, float | int) else str(ours),
                f"{peer} {best:.1f}" if best is not None else "-",
                _ratio(ours, best),
            )
        )
        aio_cpu = clients.get("aio", {}).get("cpu_us_per_event")
        if isinstance(aio_cpu, float | int):
            # duplex.aio against the asyncio peers, on CPU per event (SPEC §3.6).
            peer, best = _best_peer(clients, "cpu_us_per_event")
            rows.append(
                (
                    f"{name}: duplex.aio µs CPU/event",
                    f"{aio_cpu:.1f}",
                    f"{peer} {best:.1f}" if best is not None else "-",
                    _ratio(aio_cpu, best),
                )
            )
        rtt = section.get("websocket_rtt")
        if rtt and "rtt_us_p50" in rtt:
            rows.append(
                (
                    "  websocket round trip (transport)",
                    f"p50 {rtt['rtt_us_p50']:.0f} µs, p99 {rtt['rtt_us_p99']:.0f} µs",
                    f"{rtt['rounds']} rounds",
                    "",
                )
            )
        stages = section.get("stages_us")
        if stages:
            total = sum(stages.values()) or 1.0
            shares = ", ".join(f"{k} {v:.1f} ({v / total:.0%})" for k, v in stages.items())
            rows.append((f"  {name} duplex stages", shares, "", ""))
        for client, data in clients.items():
            if "skipped" in data or "error" in data:
                rows.append((f"  {name} {client}", data.get("skipped") or data["error"], "", ""))
                continue
            value = data.get(key)
            detail = f"{value:.1f}" if isinstance(value, float | int) else "no data"
            if name == "paced" and data.get("latency_ms_p50") is not None:
                detail += (
                    f" (p50 {data['latency_ms_p50']:.2f}, CPU {data['cpu_us_per_event']:.0f} µs/ev)"
                )
            rows.append((f"  {name} {client}", detail, "", ""))
    memory = results.get("memory")
    if memory and "error" not in memory:
        rows.append(
            (
                f"memory: {memory['conversations']} idle conversations",
                f"{memory['rss_after_mb']:.0f} MB RSS",
                f"{memory['rss_per_conversation_kb']:.0f} KB each",
                "",
            )
        )
    webrtc = results.get("webrtc")
    if webrtc and "error" not in webrtc:
        onset = webrtc["speech_onset_to_started_ms"]
        rows.append(
            (
                "webrtc: connect → session.updated",
                f"{webrtc['connect_ms_median']:.0f} ms median",
                f"max {webrtc['connect_ms_max']:.0f} ms",
                "",
            )
        )
        rows.append(
            (
                "webrtc: CPU per duplex audio conversation",
                f"{webrtc['cpu_percent_of_one_core']:.1f} % of a core",
                f"dropped {webrtc['audio_frames_dropped']}",
                "",
            )
        )
        for client, data in (webrtc.get("hosts") or {}).items():
            if "cpu_percent_of_one_core" in data:
                rows.append(
                    (
                        f"webrtc: audio under the {client} host",
                        f"{data['cpu_percent_of_one_core']:.1f} % of a core",
                        f"host tick late p99 {data['tick_late_ms_p99']:.1f} ms",
                        "",
                    )
                )
        one_way = webrtc.get("audio_one_way_ms") or []
        if one_way:
            rows.append(
                (
                    "webrtc: audio one-way latency host → simulator",
                    f"{statistics.median(one_way):.0f} ms median",
                    f"max {max(one_way):.0f} ms over {len(one_way)} onsets",
                    "",
                )
            )
        if onset:
            rows.append(
                (
                    "webrtc: speech onset → speech_started",
                    f"{statistics.median(onset):.0f} ms",
                    "(round trip incl. VAD)",
                    "",
                )
            )
    resumed = results.get("resume")
    if resumed and "error" not in resumed and resumed.get("accept_to_resumed_ms_median"):
        rows.append(
            (
                "resume: server accepts again → ConversationResumed",
                f"{resumed['accept_to_resumed_ms_median']:.1f} ms median",
                f"max {resumed['accept_to_resumed_ms_max']:.1f} ms "
                f"({resumed['replayed_items']} items replayed)",
                "≤ 1000 ms",
            )
        )
    dead = results.get("dead-peer")
    if dead and "error" not in dead:
        rows.append(
            (
                "dead peer (frozen mid-response) → ConversationClosed",
                f"websocket {dead['websocket']['noticed_s_max']:.2f} s, "
                f"webrtc {dead['webrtc']['noticed_s_max']:.2f} s (max)",
                f"liveness_timeout {dead['liveness_timeout_s']:g} s",
                "≤ 5 s",
            )
        )
    calls = results.get("webrtc-calls")
    if calls:
        ours = calls["duplex"]["cpu_percent_per_call_median"]
        theirs = calls["aiortc"]["cpu_percent_per_call_median"]
        rows.append(
            (
                "webrtc: CPU per audio conversation (same call)",
                f"{ours:.1f} % of a core" if ours is not None else "error",
                f"plain aiortc {theirs:.1f} %" if theirs is not None else "aiortc: error",
                _ratio(ours, theirs),
            )
        )
        many = calls["many"]
        if "error" in many:
            rows.append((f"webrtc: {RTC_MANY_CALLS} calls in one process", many["error"], "", ""))
        else:
            rows.append(
                (
                    f"webrtc: {many['calls']} calls in one process",
                    f"{many['cpu_percent_per_call']:.1f} % of a core per call",
                    f"lost {many['frames_lost']}, tick p99 {many['tick_late_ms_p99']:.1f} ms",
                    "",
                )
            )
    soak = results.get("soak")
    if soak and "error" not in soak:
        rows.append(
            (
                "soak: RSS growth after warm-up",
                f"{soak['rss_growth_after_warmup_mb']:+.1f} MB",
                f"{soak['seconds'] / 60:g} min",
                "",
            )
        )
    for name in ("memory", "webrtc", "soak", "resume", "dead-peer"):
        if results.get(name, {}).get("error"):
            rows.append((name, "error: " + results[name]["error"], "", ""))
    widths = [max(len(r[i]) for r in rows) if rows else 0 for i in range(4)]
    header = ("measure", "duplex", "best peer / reference", "ratio")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _plots(results: dict[str, Any], out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError:
        return []
    written: list[str] = []
    burst = results.get("burst", {}).get("clients", {})
    names = [n for n, d in burst.items() if "cpu_us_per_event" in d]
    if names:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(
            names,
            [burst[n]["cpu_us_per_event"] for n in names],
            color=["C0" if n == "duplex" else "C7" for n in names],
        )
        ax.set_ylabel("CPU µs per server event (lower is better)")
        ax.set_title("Burst: engine vs peers")
        fig.tight_layout()
        fig.savefig(out / "burst_cpu.png", dpi=110)
        plt.close(fig)
        written.append("burst_cpu.png")
    paced = results.get("paced", {}).get("clients", {})
    names = [n for n, d in paced.items() if d.get("latency_samples_ms")]
    if names:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for n in names:
            samples = paced[n]["latency_samples_ms"]
            ax.plot(samples, [i / len(samples) for i in range(len(samples))], label=n)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("host-visible latency, ms (log)")
        ax.set_ylabel("fraction of events")
        ax.set_title("50 conversations x 50 events/s")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "paced_latency_cdf.png", dpi=110)
        plt.close(fig)
        written.append("paced_latency_cdf.png")
    soak = results.get("soak", {}).get("rss_samples")
    if soak:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([t for t, _ in soak], [r for _, r in soak])
        ax.set_xlabel("seconds")
        ax.set_ylabel("RSS MB")
        ax.set_title("Soak: one streaming conversation")
        fig.tight_layout()
        fig.savefig(out / "soak_rss.png", dpi=110)
        plt.close(fig)
        written.append("soak_rss.png")
    return written


def run_bench(
    *,
    quick: bool = False,
    scenarios: list[str] | None = None,
    out_dir: str = "results",
    soak_minutes: float | None = None,
) -> int:
    """Run the selected measures, print the table, write JSON and plots. Returns 0 unless a
    requested scenario name is unknown."""
    selected = list(scenarios or DEFAULT_SCENARIOS)
    if soak_minutes and "soak" not in selected:
        selected.append("soak")
    unknown = [s for s in selected if s not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
        return 2
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "quick": quick,
    }
    began = time.perf_counter()
    for index, name in enumerate(selected, 1):
        print(f"[{index}/{len(selected)}] {name}", flush=True)
        if name == "parser":
            results[name] = _bench_parser(quick)
        elif name == "burst":
            results[name] = _bench_burst(quick)
        elif name == "paced":
            results[name] = _bench_paced(quick)
        elif name == "memory":
            results[name] = _bench_memory(quick)
        elif name == "webrtc":
            results[name] = _bench_webrtc(quick)
        elif name == "resume":
            results[name] = _bench_resume(quick)
        elif name == "dead-peer":
            results[name] = _bench_dead_peer(quick)
        elif name == "webrtc-calls":
            results[name] = _bench_webrtc_calls(quick)
        elif name == "soak":
            results[name] = _bench_soak(soak_minutes or (0.5 if quick else 10.0))
    results["seconds"] = time.perf_counter() - began
    (out / "bench.json").write_text(json.dumps(results, indent=2, default=str))
    plots = _plots(results, out)
    print()
    print(format_table(results))
    print(f"\nwrote {out / 'bench.json'}" + (f" and {', '.join(plots)}" if plots else ""))
    print(f"total {results['seconds']:.0f} s")
    return 0
