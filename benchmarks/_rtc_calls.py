"""WebRTC cost per audio conversation: duplex against a plain aiortc client, same call.

Run: ``python -m duplex.benchmarks._rtc_calls CLIENT BASE_URL [--calls N] [--seconds S]``;
prints one JSON object. ``CLIENT`` is ``duplex`` (``open_engine`` with ``transport="webrtc"``
under trio) or ``aiortc`` (a plain aiortc client under ``asyncio.run``: one peer connection,
one sendrecv audio track, the ``oai-events`` data channel, every remote frame read and its
PCM taken, every event parsed with ``json.loads``; no engine, nothing else).

Both clients make the same call against the same simulator: ``N`` concurrent calls, each
sending the same conversation audio (a spoken sentence of 2.4 s, then 3.6 s of digital
silence while the simulated model answers, in a 6 s loop; 20 ms frames on a real-time
tick; call ``i`` starts ``i × 140 ms`` into the loop) and receiving the model's audio. After a 1 s
warm-up the window measures the process CPU as a share of one core (``process_time`` over
wall time: everything the client does, aiortc's threads included), divided by ``N`` for the
per-conversation figure, plus:

- ``frames_lost``: frames lost on the way: ``inbound_gap_frames`` (remote frames never
  received; duplex: gaps in the RTP timestamps of the model's track after sound — the
  simulator honours duplex's Opus DTX request, and a gap after silence is its pause;
  aiortc: 20 ms of wall time without a frame, the simulator streaming continuously to a
  client that does not ask for DTX), plus, for duplex, the engine's
  ``audio_frames_dropped`` (the transport's outbound drops included);
- ``tick_late_ms_p99``: how late the host's 20 ms send ticks ran.

No figure asserts anything; the harness reports medians of interleaved runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import trio

__all__ = ["main"]

FRAME_MS = 20
CYCLE_MS = 6000
WARMUP_S = 1.0
CONNECT_TIMEOUT_S = 30.0


def _frames() -> list[bytes]:
    from duplex.simulator import synthesize, tone

    # One turn of a call: the user speaks (2.4 s), then listens (3.6 s) while the model
    # answers; the host keeps sending its microphone's (digital) silence meanwhile.
    pcm = synthesize("the quick brown fox jumps over the lazy dog")
    pcm += tone(CYCLE_MS - len(pcm) // 48, amplitude=0.0)
    size = 24 * FRAME_MS * 2
    return [pcm[i : i + size].ljust(size, b"\x00") for i in range(0, len(pcm), size)]


def _thread_cpu() -> dict[str, float]:
    """CPU seconds per live thread of this process, by thread name (Linux ``/proc``)."""
    import os
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        name = names.get(int(tid), "other")
        name = name.split("_")[0] if name.startswith("ThreadPoolExecutor") else name
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _thread_share(before: dict[str, float], wall: float) -> dict[str, float]:
    after = _thread_cpu()
    return {
        name: round((cpu - before.get(name, 0.0)) / wall * 100, 2)
        for name, cpu in sorted(after.items())
        if cpu - before.get(name, 0.0) > 0
    }


def _summary(
    calls: int, cpu: float, wall: float, late_ms: list[float], **extra: Any
) -> dict[str, Any]:
    late_ms.sort()
    total = cpu / wall * 100
    return {
        "calls": calls,
        "seconds": wall,
        "cpu_percent_of_one_core": total,
        "cpu_percent_per_call": total / max(1, calls),
        "tick_late_ms_p99": late_ms[min(len(late_ms) - 1, int(0.99 * len(late_ms)))]
        if late_ms
        else None,
        **extra,
    }


# ---- duplex --------------------------------------------------------------------------------


async def _duplex(url: str, calls: int, seconds: float) -> dict[str, Any]:
    from duplex.engine import AudioFrame, EngineConfig, SessionUpdated, open_engine

    frames = _frames()
    engines: list[Any] = []
    late: list[float] = []
    ready = trio.Event()

    async def one(index: int) -> None:
        config = EngineConfig(base_url=url, api_key="sk-bench", transport="webrtc")
        async with open_engine(config) as engine, trio.open_nursery() as nursery:
            await engine.start(prompt="")
            async for event in engine.events():
                if isinstance(event, SessionUpdated):
                    break
            engines.append(engine)
            if len(engines) == calls:
                ready.set()

            async def drain() -> None:
                async for _ in engine.events():
                    pass

            nursery.start_soon(drain)
            await ready.wait()
            sent = index * 7  # calls start at different points of the sentence
            next_at = trio.current_time()
            while True:
                late.append((trio.current_time() - next_at) * 1000)
                engine.send_audio(AudioFrame(frames[sent % len(frames)]))
                sent += 1
                next_at += FRAME_MS / 1000
                await trio.sleep_until(next_at)

    async with trio.open_nursery() as nursery:
        for i in range(calls):
            nursery.start_soon(one, i)
        with trio.fail_after(CONNECT_TIMEOUT_S):
            await ready.wait()
        await trio.sleep(WARMUP_S)
        late.clear()
        dropped0 = sum(e.statistics().audio_frames_dropped for e in engines)
        missing0 = sum(_missing(e) for e in engines)
        threads0 = _thread_cpu()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await trio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        threads = _thread_share(threads0, wall)
        dropped = sum(e.statistics().audio_frames_dropped for e in engines) - dropped0
        missing = sum(_missing(e) for e in engines) - missing0
        nursery.cancel_scope.cancel()
    return _summary(
        calls, cpu, wall, late, frames_lost=dropped + missing, inbound_gap_frames=missing,
        threads=threads,
    )  # fmt: skip


def _missing(engine: Any) -> int:
    # The engine exposes no transport; the bench looks inside its own package's engine.
    transport = getattr(getattr(engine, "_current", None), "transport", None)
    return int(getattr(transport, "remote_frames_missing", 0))


# ---- plain aiortc ----------------------------------------------------------------------------


async def _aiortc(url: str, calls: int, seconds: float, mute: bool = False) -> dict[str, Any]:
    import fractions

    import av
    import httpx
    from aiortc import (
        MediaStreamTrack,
        RTCConfiguration,
        RTCPeerConnection,
        RTCSessionDescription,
    )
    from aiortc.mediastreams import MediaStreamError

    from duplex.protocol import multipart_call_body, realtime_calls_url

    frames = _frames()
    late: list[float] = []
    loop = asyncio.get_running_loop()
    received = [0]
    gaps = [0]
    measuring = [False]
    last_arrival: dict[int, float] = {}

    class Mic(MediaStreamTrack):
        kind = "audio"

        def __init__(self, offset: int) -> None:
            super().__init__()
            self._sent = offset
            self._pts = 0
            self._next: float | None = None

        async def recv(self) -> av.AudioFrame:
            if mute:
                await asyncio.Event().wait()  # floor measurement: no outbound packets at all
            now = loop.time()
            if self._next is None:
                self._next = now
            else:
                self._next += FRAME_MS / 1000
                if self._next > now:
                    await asyncio.sleep(self._next - now)
            if measuring[0]:
                late.append((loop.time() - self._next) * 1000)
            frame = av.AudioFrame(format="s16", layout="mono", samples=480)
            frame.planes[0].update(frames[self._sent % len(frames)])
            frame.sample_rate = 24_000
            frame.pts = self._pts
            frame.time_base = fractions.Fraction(1, 24_000)
            self._sent += 1
            self._pts += 480
            return frame

    async def consume(track: MediaStreamTrack, key: int) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            pcm = bytes(frame.planes[0]) if isinstance(frame, av.AudioFrame) else b""  # played
            del pcm
            now = loop.time()
            if measuring[0]:
                received[0] += 1
                previous = last_arrival.get(key)
                if previous is not None and now - previous > 3 * FRAME_MS / 1000:
                    gaps[0] += round((now - previous) * 1000 / FRAME_MS) - 1
            last_arrival[key] = now

    pcs: list[RTCPeerConnection] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(index: int, client: httpx.AsyncClient) -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.append(pc)
        pc.addTransceiver(Mic(index * 7), direction="sendrecv")
        channel = pc.createDataChannel("oai-events")
        updated = asyncio.Event()

        @channel.on("open")
        def _open() -> None:
            channel.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))

        @channel.on("message")
        def _message(message: str | bytes) -> None:
            event = json.loads(message)
            if event.get("type") == "session.updated":
                updated.set()

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            tasks.append(asyncio.ensure_future(consume(track, index)))

        await pc.setLocalDescription(await pc.createOffer())
        content_type, body = multipart_call_body(
            pc.localDescription.sdp, {"type": "realtime", "model": "gpt-realtime"}
        )
        response = await client.post(
            realtime_calls_url(url),
            content=body,
            headers={"authorization": "Bearer sk-bench", "content-type": content_type},
        )
        response.raise_for_status()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
        await updated.wait()

    async with httpx.AsyncClient() as client:
        await asyncio.wait_for(
            asyncio.gather(*(one(i, client) for i in range(calls))), CONNECT_TIMEOUT_S
        )
    await asyncio.sleep(WARMUP_S)
    measuring[0] = True
    threads0 = _thread_cpu()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    threads = _thread_share(threads0, wall)
    measuring[0] = False
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for pc in pcs:
        await pc.close()
    return _summary(
        calls,
        cpu,
        wall,
        late,
        frames_lost=0,
        inbound_frames=received[0],
        inbound_gap_frames=gaps[0],
        threads=threads,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("client", choices=["duplex", "aiortc"])
    parser.add_argument("url")
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--mute", action="store_true", help="aiortc: send no audio (a floor)")
    args = parser.parse_args(argv)
    if args.client == "duplex":
        result = trio.run(_duplex, args.url, args.calls, args.seconds)
    else:
        result = asyncio.run(_aiortc(args.url, args.calls, args.seconds, args.mute))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
