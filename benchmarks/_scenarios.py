"""Benchmark scenarios that run the engine against the real simulator (memory, soak, WebRTC),
each in its own process so RSS and CPU belong to the client alone.

Run: ``python -m benchmarks._scenarios SCENARIO BASE_URL [options]``; prints one JSON object.

- ``idle``: open C conversations (each its own engine, WebSocket, v2) and leave them idle;
  report RSS before and after, and per conversation.
- ``soak``: one conversation streams microphone audio (speech bursts, 20 ms frames, real time)
  and receives the model's answers for S seconds; RSS is sampled every ``interval`` seconds.
- ``webrtc``: R times: ``start()`` → ``SessionUpdated`` over WebRTC (connect time); then one
  duplex-audio WebRTC conversation for S seconds: 20 ms frames out in real time, model audio
  in, process CPU over the window (% of one core), frames in/out and drops, and the time from
  the first audible frame after silence to ``InputAudioSpeechStarted`` (a round trip through
  the simulator's VAD: an upper bound of the one-way latency), and the true one-way audio
  latency: the host's send time of the first voiced frame of each speech burst against the
  simulator's arrival stamp of that onset (its debug route ``GET …/realtime/calls/
  audio_onsets``; both are ``time.monotonic_ns()`` on one host).
- ``resume``: R times: a conversation (seeded with a short history) whose first session the
  simulator closes with 1011 right after ``session.updated``; reports the time from the
  simulator accepting the new session to ``ConversationResumed`` (the reconnect driver's own
  cost: handshake + replay queued; target ≤ 1 s on loopback) and from the drop
  (``ConversationReconnecting``) to ``ConversationResumed``. The simulator runs in this
  process so both ends read one clock; the accept is observed by polling the simulator's
  session list every 0.5 ms (the resolution of the figure).
- ``dead-peer``: R times per transport (WebSocket, WebRTC): a conversation against a
  simulator in a process of its own, a text turn, and at the reply's first ``AudioOut`` the
  simulator process is frozen (``SIGSTOP``: no FIN, no RST, no DTLS close, no RTP, no ICE
  answers, its sockets stay open: a peer that is gone without saying so). Reports the time
  from the freeze to the engine's ``ConversationClosed`` (reconnection off, default
  ``liveness_timeout`` of 5 s; SPEC §7: dead peer noticed ≤ 5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from array import array
from typing import Any

import httpx
import trio

from duplex.engine import (
    AudioFrame,
    AudioOut,
    ConversationClosed,
    ConversationReconnecting,
    ConversationResumed,
    ConversationStartError,
    EngineConfig,
    HistoryItem,
    InputAudioSpeechStarted,
    ReconnectPolicy,
    SessionUpdated,
    open_engine,
)
from duplex.simulator import (
    FaultConfig,
    Scenario,
    SimulatorConfig,
    open_simulator,
    synthesize,
    tone,
)

__all__ = ["main", "rss_mb"]

FRAME_MS = 20
FRAME_BYTES = 24 * FRAME_MS * 2


def rss_mb() -> float:
    """This process's resident set size in MiB (Linux ``/proc``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _config(url: str, transport: str = "websocket") -> EngineConfig:
    return EngineConfig(base_url=url, api_key="sk-bench", transport=transport)  # type: ignore[arg-type]


async def _wait_session(engine: Any) -> None:
    async for event in engine.events():
        if isinstance(event, SessionUpdated):
            return


async def idle(url: str, conversations: int) -> dict[str, Any]:
    before = rss_mb()
    ready = trio.Event()
    opened = failed = 0
    errors: list[str] = []

    async def one() -> None:
        nonlocal opened, failed
        async with open_engine(_config(url)) as engine:
            try:
                await engine.start(prompt="")
                await _wait_session(engine)
            except ConversationStartError as exc:
                failed += 1
                errors.append(str(exc))
                if opened + failed == conversations:
                    ready.set()
                return
            opened += 1
            if opened + failed == conversations:
                ready.set()
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        for _ in range(conversations):
            nursery.start_soon(one)
        with trio.fail_after(120):
            await ready.wait()
        await trio.sleep(1.0)
        after = rss_mb()
        nursery.cancel_scope.cancel()
    return {
        "conversations": opened,
        "failed_starts": failed,
        "start_errors": errors[:3],
        "rss_before_mb": before,
        "rss_after_mb": after,
        "rss_per_conversation_kb": (after - before) * 1024 / max(1, opened),
    }


def _speech_cycle() -> list[bytes]:
    pcm = synthesize("the quick brown fox jumps over the lazy dog") + tone(900, amplitude=0.0)
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


async def _stream_audio(engine: Any, seconds: float) -> int:
    frames = _speech_cycle()
    sent = 0
    next_at = trio.current_time()
    deadline = next_at + seconds
    while trio.current_time() < deadline:
        engine.send_audio(AudioFrame(frames[sent % len(frames)]))
        sent += 1
        next_at += FRAME_MS / 1000
        await trio.sleep_until(next_at)
    return sent


async def soak(url: str, seconds: float, interval: float) -> dict[str, Any]:
    samples: list[tuple[float, float]] = []
    began = time.perf_counter()
    async with open_engine(_config(url)) as engine:
        await engine.start(prompt="")
        async with trio.open_nursery() as nursery:

            async def drain() -> None:
                async for _ in engine.events():
                    pass

            async def sample() -> None:
                while True:
                    samples.append((time.perf_counter() - began, rss_mb()))
                    await trio.sleep(interval)

            nursery.start_soon(drain)
            nursery.start_soon(sample)
            await _stream_audio(engine, seconds)
            samples.append((time.perf_counter() - began, rss_mb()))
            stats = engine.statistics()
            nursery.cancel_scope.cancel()
    first = samples[len(samples) // 5][1] if samples else 0.0  # after warm-up
    return {
        "seconds": seconds,
        "rss_samples": samples,
        "rss_growth_after_warmup_mb": samples[-1][1] - first if samples else None,
        "audio_frames_in": stats.audio_frames_in,
        "audio_frames_dropped": stats.audio_frames_dropped,
        "model_audio_frames": stats.audio_frames_out,
    }


async def webrtc(url: str, runs: int, seconds: float) -> dict[str, Any]:
    connect_ms: list[float] = []
    for _ in range(runs):
        async with open_engine(_config(url, "webrtc")) as engine:
            began = time.perf_counter()
            await engine.start(prompt="")
            await _wait_session(engine)
            connect_ms.append((time.perf_counter() - began) * 1000)
            await engine.close()
    onset_ms: list[float] = []
    async with open_engine(_config(url, "webrtc")) as engine:
        await engine.start(prompt="")
        await _wait_session(engine)
        speech_at: list[float] = []
        sent_onsets: list[int] = []
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for event in engine.events():
                    if isinstance(event, InputAudioSpeechStarted) and speech_at:
                        onset_ms.append((time.perf_counter() - speech_at[-1]) * 1000)

            nursery.start_soon(watch)
            await trio.sleep(0.5)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            frames = _speech_cycle()
            first_voiced = next(i for i, f in enumerate(frames) if _peak(f) > ONSET_PEAK)
            sent = 0
            next_at = trio.current_time()
            deadline = next_at + seconds
            while trio.current_time() < deadline:
                index = sent % len(frames)
                if index == 0:
                    speech_at.append(time.perf_counter())
                if index == first_voiced:
                    sent_onsets.append(time.monotonic_ns())
                engine.send_audio(AudioFrame(frames[index]))
                sent += 1
                next_at += FRAME_MS / 1000
                await trio.sleep_until(next_at)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            stats = engine.statistics()
            await trio.sleep(0.3)  # let the last onset reach the simulator
            arrivals = await _simulator_onsets(url)
            nursery.cancel_scope.cancel()
    one_way_ms = _pair_onsets(sent_onsets, arrivals)
    connect_ms.sort()
    return {
        "connect_ms_runs": connect_ms,
        "connect_ms_median": connect_ms[len(connect_ms) // 2] if connect_ms else None,
        "connect_ms_max": connect_ms[-1] if connect_ms else None,
        "cpu_percent_of_one_core": cpu / wall * 100,
        "audio_frames_sent": sent,
        "audio_frames_dropped": stats.audio_frames_dropped,
        "model_audio_frames": stats.audio_frames_out,
        "speech_onset_to_started_ms": onset_ms,
        "audio_one_way_ms": one_way_ms,
    }


async def _watch_accept(sim: Any, expected: int, accepted_at: list[float]) -> None:
    # The simulator has no accept hook: poll its session list (0.5 ms: the resolution).
    while len(sim.sessions) < expected:  # noqa: ASYNC110
        await trio.sleep(0.0005)
    accepted_at.append(time.perf_counter())


async def resume(runs: int) -> dict[str, Any]:
    accept_ms: list[float] = []
    drop_ms: list[float] = []
    seed = [HistoryItem.user(f"turn {i}") for i in range(10)]
    policy = ReconnectPolicy(stable_after_s=0.0)
    async with open_simulator(SimulatorConfig()) as sim:
        config = EngineConfig(base_url=sim.base_url or "", api_key="sk-bench", reconnect=policy)
        async with open_engine(config) as engine:
            events = engine.events()
            for _ in range(runs):
                drop = Scenario(faults=FaultConfig(close_after_events=2, close_code=1011))
                sim.add_scenario(drop)
                accepted_at: list[float] = []
                expected = len(sim.sessions) + 2  # the dropped session, then the new one
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_watch_accept, sim, expected, accepted_at)
                    await engine.start(prompt="", history=seed)
                    dropped_at = resumed_at = 0.0
                    async for event in events:
                        if isinstance(event, ConversationReconnecting):
                            dropped_at = time.perf_counter()
                        elif isinstance(event, ConversationResumed):
                            resumed_at = time.perf_counter()
                            break
                    nursery.cancel_scope.cancel()
                if accepted_at:
                    accept_ms.append((resumed_at - accepted_at[0]) * 1000)
                drop_ms.append((resumed_at - dropped_at) * 1000)
                await engine.close()
    accept_ms.sort()
    drop_ms.sort()
    return {
        "runs": runs,
        "replayed_items": len(seed),
        "accept_to_resumed_ms": accept_ms,
        "accept_to_resumed_ms_median": accept_ms[len(accept_ms) // 2] if accept_ms else None,
        "accept_to_resumed_ms_max": accept_ms[-1] if accept_ms else None,
        "drop_to_resumed_ms_median": drop_ms[len(drop_ms) // 2] if drop_ms else None,
    }


async def _frozen_simulator_run(transport: str) -> float:
    """One run of ``dead-peer``: seconds from freezing the simulator to ``ConversationClosed``."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "duplex.cli", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = b""
        with trio.fail_after(30):
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(1)
                if not chunk:
                    raise RuntimeError("the simulator exited before listening")
                line += chunk
        url = line.decode().strip().removeprefix("listening on ") + "/v1"
        config = EngineConfig(
            base_url=url,
            api_key="sk-bench",
            transport=transport,  # type: ignore[arg-type]
            reconnect=ReconnectPolicy.disabled(),
        )
        async with open_engine(config) as engine:
            events = engine.events()
            with trio.fail_after(30):
                await engine.start(prompt="")
                await _wait_session(engine)
                await engine.send_text("tell me a long story about the sea")
                async for event in events:
                    if isinstance(event, AudioOut):
                        break
            os.kill(proc.pid, signal.SIGSTOP)
            frozen = time.perf_counter()
            with trio.fail_after(60):
                async for event in events:
                    if isinstance(event, ConversationClosed):
                        return time.perf_counter() - frozen
        raise RuntimeError("events() ended without ConversationClosed")
    finally:
        proc.kill()  # SIGKILL also ends a stopped process
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await proc.wait()


async def dead_peer(runs: int) -> dict[str, Any]:
    result: dict[str, Any] = {"runs": runs, "liveness_timeout_s": EngineConfig().liveness_timeout}
    for transport in ("websocket", "webrtc"):
        noticed = sorted([await _frozen_simulator_run(transport) for _ in range(runs)])
        result[transport] = {"noticed_s": noticed, "noticed_s_max": noticed[-1]}
    return result


ONSET_PEAK = 300  # the simulator's onset criterion (simulator/_session.py)


def _peak(pcm: bytes) -> int:
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    return max(map(abs, samples)) if samples else 0


async def _simulator_onsets(url: str) -> list[int]:
    """The simulator's arrival stamps of voiced audio (its debug route), all live calls."""
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{url}/realtime/calls/audio_onsets", headers={"authorization": "Bearer sk-bench"}
        )
    stamps: list[int] = []
    for values in response.json().values():
        stamps.extend(values)
    return sorted(stamps)


def _pair_onsets(sent: list[int], arrived: list[int]) -> list[float]:
    """One-way latency per speech onset: the first arrival at or after each send."""
    latencies: list[float] = []
    j = 0
    for t in sent:
        while j < len(arrived) and arrived[j] < t:
            j += 1
        if j == len(arrived):
            break
        latencies.append((arrived[j] - t) / 1e6)
        j += 1
    return latencies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["idle", "soak", "webrtc", "resume", "dead-peer"])
    parser.add_argument("url")
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if args.scenario == "idle":
        result = trio.run(idle, args.url, args.conversations)
    elif args.scenario == "resume":
        result = trio.run(resume, args.runs)
    elif args.scenario == "dead-peer":
        result = trio.run(dead_peer, args.runs)
    elif args.scenario == "soak":
        result = trio.run(soak, args.url, args.seconds, args.interval)
    else:
        result = trio.run(webrtc, args.url, args.runs, args.seconds)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
