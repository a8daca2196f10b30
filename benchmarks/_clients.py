"""Benchmark clients, one per library, each run in its own process by the harness.

Every client does the same work against the load server (``_load_server``):

- ``burst``: handshake, then ask for one response (each library's own way of sending
  ``response.create``) and consume every event until ``response.done``. Reported: process CPU
  and wall time from the request to ``response.done``, divided by the server events.
- ``paced``: open C connections, consume transcript deltas whose text is the server's send
  time, and record host-visible latency (the moment the host's loop sees the event).

Clients: ``duplex`` (the engine: events are parsed, pass through the actors and are taken
from ``Engine.events()``), ``aio`` (the same engine under ``asyncio.run`` through
``duplex.aio``, trio in guest mode; ``aio-thread``: trio on a thread instead), ``bare``
(trio-websocket + ``orjson.loads``: the floor any Python client pays), ``openai`` (the
``openai`` SDK's ``realtime.connect``, asyncio, ``async for event in connection``) and
``agents`` (``openai-agents`` ``RealtimeSession``, ``async for event in session``).

Run: ``python -m benchmarks._clients CLIENT SCENARIO URL [--events N] [--conversations C]
[--seconds S]``; prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
import trio

if TYPE_CHECKING:
    from duplex.aio import Mechanism

__all__ = ["main"]

BURST_TIMEOUT_S = 120.0


def _result(events: int, cpu: float, wall: float, **extra: Any) -> dict[str, Any]:
    return {
        "events": events,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_us_per_event": cpu / events * 1e6 if events else None,
        "events_per_s": events / wall if wall else None,
        **extra,
    }


SETTLE_S = 0.5
CONNECT_TIMEOUT_S = 30.0


class Window:
    """The steady-state measurement window of a paced run. It opens ``SETTLE_S`` after the
    last connection is up (so handshakes never count) and lasts ``seconds``; latencies and
    process CPU are recorded only inside it."""

    def __init__(self, seconds: float, conversations: int) -> None:
        self.seconds = seconds
        self.expected = conversations
        self.connected_count = 0
        self.start_ns = 1 << 62
        self.end_ns = 1 << 62
        self.latencies: list[int] = []
        self.cpu_start = 0.0
        self.cpu_end = 0.0
        self._all_trio: trio.Event | None = None
        self._all_asyncio: asyncio.Event | None = None

    def connected(self) -> None:
        self.connected_count += 1
        if self.connected_count >= self.expected:
            if self._all_trio is not None:
                self._all_trio.set()
            if self._all_asyncio is not None:
                self._all_asyncio.set()

    def record(self, sent_ns: int) -> None:
        now = time.monotonic_ns()
        if self.start_ns <= sent_ns and now <= self.end_ns:
            self.latencies.append(now - sent_ns)

    def _open(self) -> None:
        self.start_ns = time.monotonic_ns() + int(SETTLE_S * 1e9)
        self.end_ns = self.start_ns + int(self.seconds * 1e9)

    async def run_trio(self) -> None:
        self._all_trio = trio.Event()
        if self.connected_count >= self.expected:
            self._all_trio.set()
        with trio.move_on_after(CONNECT_TIMEOUT_S):
            await self._all_trio.wait()
        self._open()
        await trio.sleep(SETTLE_S)
        self.cpu_start = time.process_time()
        await trio.sleep(self.seconds)
        self.cpu_end = time.process_time()

    async def run_asyncio(self) -> None:
        self._all_asyncio = asyncio.Event()
        if self.connected_count >= self.expected:
            self._all_asyncio.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_asyncio.wait(), CONNECT_TIMEOUT_S)
        self._open()
        await asyncio.sleep(SETTLE_S)
        self.cpu_start = time.process_time()
        await asyncio.sleep(self.seconds)
        self.cpu_end = time.process_time()

    def summary(self) -> dict[str, Any]:
        result = _latency_summary(self.latencies, self.cpu_end - self.cpu_start, self.seconds)
        result["connected"] = self.connected_count
        return result


def _latency_summary(latencies_ns: list[int], cpu: float, seconds: float) -> dict[str, Any]:
    values = sorted(latencies_ns)
    n = len(values)

    def pct(p: float) -> float | None:
        return values[min(n - 1, int(p * n))] / 1e6 if n else None

    return {
        "events": n,
        "cpu_s": cpu,
        "wall_s": seconds,
        "cpu_us_per_event": cpu / n * 1e6 if n else None,
        "latency_ms_p50": pct(0.50),
        "latency_ms_p99": pct(0.99),
        "latency_ms_max": values[-1] / 1e6 if n else None,
        "latency_samples_ms": [v / 1e6 for v in values[:: max(1, n // 2000)]],
    }


# ---- duplex -------------------------------------------------------------------------


def _duplex_config(url: str) -> Any:
    from duplex.engine import EngineConfig

    return EngineConfig(base_url=url, api_key="sk-bench", version="v2", transport="websocket")


async def _duplex_burst(url: str, expected: int) -> dict[str, Any]:
    from duplex.engine import ResponseDone, SessionUpdated, open_engine

    async with open_engine(_duplex_config(url)) as engine:
        await engine.start(prompt="")
        events = engine.events()
        async for event in events:
            if isinstance(event, SessionUpdated):
                break
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await engine.send_text("go")
        count = 0
        async for event in events:
            count += 1
            if isinstance(event, ResponseDone):
                break
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        stats = engine.statistics()
        await engine.close()
    return _result(expected, cpu, wall, host_events=count, server_events=stats.server_events)


async def _duplex_paced(url: str, conversations: int, seconds: float) -> dict[str, Any]:
    from duplex.engine import OutputTranscriptDelta, open_engine

    window = Window(seconds, conversations)

    async def one() -> None:
        async with open_engine(_duplex_config(url)) as engine:
            await engine.start(prompt="")
            window.connected()
            async for event in engine.events():
                if type(event) is OutputTranscriptDelta:
                    window.record(int(event.delta))

    async with trio.open_nursery() as nursery:
        for _ in range(conversations):
            nursery.start_soon(one)
        await window.run_trio()
        nursery.cancel_scope.cancel()
    return window.summary()


# ---- duplex.aio (the same engine under an asyncio host) ------------------------------


async def _aio_burst(url: str, expected: int, mechanism: Mechanism = "guest") -> dict[str, Any]:
    from duplex.aio import open_engine
    from duplex.engine import ResponseDone, SessionUpdated

    async with open_engine(_duplex_config(url), mechanism=mechanism) as engine:
        await engine.start(prompt="")
        events = engine.events()
        async for event in events:
            if isinstance(event, SessionUpdated):
                break
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await engine.send_text("go")
        count = 0
        async for event in events:
            count += 1
            if isinstance(event, ResponseDone):
                break
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        stats = engine.statistics()
        await engine.close()
    return _result(expected, cpu, wall, host_events=count, server_events=stats.server_events)


async def _aio_paced(
    url: str, conversations: int, seconds: float, mechanism: Mechanism = "guest"
) -> dict[str, Any]:
    from duplex.aio import open_engine
    from duplex.engine import OutputTranscriptDelta

    window = Window(seconds, conversations)

    async def one() -> None:
        async with open_engine(_duplex_config(url), mechanism=mechanism) as engine:
            await engine.start(prompt="")
            window.connected()
            async for event in engine.events():
                if type(event) is OutputTranscriptDelta:
                    window.record(int(event.delta))

    return await _run_asyncio_window(window, one, conversations)


async def _aio_thread_burst(url: str, expected: int) -> dict[str, Any]:
    return await _aio_burst(url, expected, "thread")


async def _aio_thread_paced(url: str, conversations: int, seconds: float) -> dict[str, Any]:
    return await _aio_paced(url, conversations, seconds, "thread")


# ---- WebRTC audio under the trio host and under duplex.aio ------------------------------
#
# One WebRTC conversation (against the simulator) streaming 20 ms speech frames for
# ``seconds``: process CPU as a share of one core, and how late the host's own 20 ms ticks
# run (p99), which shows whether aiortc's per-packet work (on the transport's bridge thread)
# disturbs the host's loop.

RTC_FRAME_MS = 20


def _rtc_frames() -> list[bytes]:
    from duplex.simulator import synthesize, tone

    pcm = synthesize("the quick brown fox jumps over the lazy dog") + tone(900, amplitude=0.0)
    size = 24 * RTC_FRAME_MS * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def _rtc_summary(cpu: float, wall: float, late_ms: list[float], sent: int) -> dict[str, Any]:
    late_ms.sort()
    return {
        "cpu_percent_of_one_core": cpu / wall * 100,
        "tick_late_ms_p50": late_ms[len(late_ms) // 2] if late_ms else None,
        "tick_late_ms_p99": late_ms[min(len(late_ms) - 1, int(0.99 * len(late_ms)))]
        if late_ms
        else None,
        "audio_frames_sent": sent,
    }


async def _duplex_webrtc(url: str, seconds: float) -> dict[str, Any]:
    from duplex.engine import AudioFrame, EngineConfig, SessionUpdated, open_engine

    config = EngineConfig(base_url=url, api_key="sk-bench", transport="webrtc")
    frames = _rtc_frames()
    late: list[float] = []
    async with open_engine(config) as engine, trio.open_nursery() as nursery:
        await engine.start(prompt="")
        async for event in engine.events():
            if isinstance(event, SessionUpdated):
                break

        async def drain() -> None:
            async for _ in engine.events():
                pass

        nursery.start_soon(drain)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sent = 0
        next_at = trio.current_time()
        while sent * RTC_FRAME_MS < seconds * 1000:
            late.append((trio.current_time() - next_at) * 1000)
            engine.send_audio(AudioFrame(frames[sent % len(frames)]))
            sent += 1
            next_at += RTC_FRAME_MS / 1000
            await trio.sleep_until(next_at)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        nursery.cancel_scope.cancel()
    return _rtc_summary(cpu, wall, late, sent)


async def _aio_webrtc(url: str, seconds: float) -> dict[str, Any]:
    from duplex.aio import AudioFrame, EngineConfig, open_engine
    from duplex.engine import SessionUpdated

    config = EngineConfig(base_url=url, api_key="sk-bench", transport="webrtc")
    frames = _rtc_frames()
    late: list[float] = []
    loop = asyncio.get_running_loop()
    async with open_engine(config) as engine:
        await engine.start(prompt="")
        async for event in engine.events():
            if isinstance(event, SessionUpdated):
                break

        async def drain() -> None:
            async for _ in engine.events():
                pass

        draining = asyncio.ensure_future(drain())
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sent = 0
        next_at = loop.time()
        while sent * RTC_FRAME_MS < seconds * 1000:
            late.append((loop.time() - next_at) * 1000)
            engine.send_audio(AudioFrame(frames[sent % len(frames)]))
            sent += 1
            next_at += RTC_FRAME_MS / 1000
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        draining.cancel()
        await asyncio.gather(draining, return_exceptions=True)
    return _rtc_summary(cpu, wall, late, sent)


# ---- transport round trip ------------------------------------------------------------


async def _transport_rtt(url: str, rounds: int) -> dict[str, Any]:
    """``session.update`` → ``session.updated`` through the duplex WebSocket transport."""
    from duplex.transports import connect_websocket

    update = '{"type":"session.update","session":{"type":"realtime"}}'
    samples: list[float] = []
    async with trio.open_nursery() as nursery:
        transport = await connect_websocket(
            nursery, url + "/realtime?model=gpt-realtime", {"authorization": "Bearer sk-bench"}
        )
        await transport.receive_batch()  # session.created
        for _ in range(rounds):
            began = time.perf_counter()
            await transport.send_text(update)
            while not any(
                isinstance(m, str) and '"session.updated"' in m
                for m in await transport.receive_batch()
            ):
                pass
            samples.append((time.perf_counter() - began) * 1e6)
        await transport.aclose()
        nursery.cancel_scope.cancel()
    samples.sort()
    return {
        "rounds": len(samples),
        "rtt_us_p50": samples[len(samples) // 2],
        "rtt_us_p99": samples[min(len(samples) - 1, int(0.99 * len(samples)))],
    }


# ---- bare trio-websocket + orjson ---------------------------------------------------


async def _bare_burst(url: str, expected: int) -> dict[str, Any]:
    from trio_websocket import open_websocket_url

    async with open_websocket_url(url + "/realtime?model=gpt-realtime") as ws:
        await ws.send_message('{"type":"session.update","session":{"type":"realtime"}}')
        while orjson.loads(await ws.get_message())["type"] != "session.updated":
            pass
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await ws.send_message('{"type":"response.create"}')
        count = 0
        while True:
            event = orjson.loads(await ws.get_message())
            count += 1
            if event["type"] == "response.done":
                break
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return _result(expected, cpu, wall, host_events=count)


async def _bare_paced(url: str, conversations: int, seconds: float) -> dict[str, Any]:
    from trio_websocket import open_websocket_url

    window = Window(seconds, conversations)

    async def one() -> None:
        async with open_websocket_url(url + "/realtime?model=gpt-realtime") as ws:
            window.connected()
            while True:
                event = orjson.loads(await ws.get_message())
                if event["type"] == "response.output_audio_transcript.delta":
                    window.record(int(event["delta"]))

    async with trio.open_nursery() as nursery:
        for _ in range(conversations):
            nursery.start_soon(one)
        await window.run_trio()
        nursery.cancel_scope.cancel()
    return window.summary()


# ---- openai SDK ---------------------------------------------------------------------


def _openai_client(url: str) -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(api_key="sk-bench", websocket_base_url=url)


async def _openai_burst(url: str, expected: int) -> dict[str, Any]:
    client = _openai_client(url)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session={"type": "realtime"})
        async for event in conn:
            if event.type == "session.updated":
                break
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await conn.response.create()
        count = 0
        async for event in conn:
            count += 1
            if event.type == "response.done":
                break
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return _result(expected, cpu, wall, host_events=count)


async def _openai_paced(url: str, conversations: int, seconds: float) -> dict[str, Any]:
    window = Window(seconds, conversations)

    async def one() -> None:
        client = _openai_client(url)
        async with client.realtime.connect(model="gpt-realtime") as conn:
            window.connected()
            async for event in conn:
                if event.type == "response.output_audio_transcript.delta":
                    window.record(int(event.delta))

    return await _run_asyncio_window(window, one, conversations)


# ---- openai-agents ------------------------------------------------------------------


async def _agents_session(url: str) -> Any:
    from agents.realtime import RealtimeAgent, RealtimeRunner

    runner = RealtimeRunner(RealtimeAgent(name="bench", instructions=""))
    return await runner.run(
        model_config={"url": url + "/realtime?model=gpt-realtime", "api_key": "sk-bench"}
    )


def _raw_type(event: Any) -> str | None:
    if getattr(event, "type", None) != "raw_model_event":
        return None
    data = getattr(event, "data", None)
    if getattr(data, "type", None) == "raw_server_event":
        raw = getattr(data, "data", None)
        if isinstance(raw, dict):
            return raw.get("type")
    return None


async def _agents_burst(url: str, expected: int) -> dict[str, Any]:
    session = await _agents_session(url)
    async with session:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await session.send_message("go")
        count = 0
        async for event in session:
            count += 1
            if _raw_type(event) == "response.done":
                break
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return _result(expected, cpu, wall, host_events=count)


async def _agents_paced(url: str, conversations: int, seconds: float) -> dict[str, Any]:
    window = Window(seconds, conversations)

    async def one() -> None:
        session = await _agents_session(url)
        async with session:
            window.connected()
            async for event in session:
                if _raw_type(event) == "response.output_audio_transcript.delta":
                    window.record(int(event.data.data["delta"]))

    return await _run_asyncio_window(window, one, conversations)


async def _run_asyncio_window(
    window: Window, one: Callable[[], Any], conversations: int
) -> dict[str, Any]:
    tasks = [asyncio.ensure_future(one()) for _ in range(conversations)]
    await window.run_asyncio()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return window.summary()


RUNNERS: dict[tuple[str, str], tuple[str, Callable[..., Any]]] = {
    ("duplex", "burst"): ("trio", _duplex_burst),
    ("duplex", "paced"): ("trio", _duplex_paced),
    ("duplex", "rtt"): ("trio", _transport_rtt),
    ("bare", "burst"): ("trio", _bare_burst),
    ("bare", "paced"): ("trio", _bare_paced),
    ("openai", "burst"): ("asyncio", _openai_burst),
    ("openai", "paced"): ("asyncio", _openai_paced),
    ("agents", "burst"): ("asyncio", _agents_burst),
    ("agents", "paced"): ("asyncio", _agents_paced),
    ("aio", "burst"): ("asyncio", _aio_burst),
    ("aio", "paced"): ("asyncio", _aio_paced),
    ("aio-thread", "burst"): ("asyncio", _aio_thread_burst),
    ("aio-thread", "paced"): ("asyncio", _aio_thread_paced),
    ("duplex", "webrtc"): ("trio", _duplex_webrtc),
    ("aio", "webrtc"): ("asyncio", _aio_webrtc),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("client", choices=sorted({client for client, _ in RUNNERS}))
    parser.add_argument("scenario", choices=["burst", "paced", "rtt", "webrtc"])
    parser.add_argument("url")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    loop, fn = RUNNERS[(args.client, args.scenario)]
    params: tuple[Any, ...] = (args.url, args.conversations, args.seconds)
    if args.scenario in ("burst", "rtt"):
        params = (args.url, args.events)
    elif args.scenario == "webrtc":
        params = (args.url, args.seconds)
    if loop == "trio":
        result = trio.run(fn, *params)
    else:
        result = asyncio.run(asyncio.wait_for(fn(*params), BURST_TIMEOUT_S))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
