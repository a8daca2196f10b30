"""A Realtime-GA-shaped load server for the engine benchmarks, run as its own process.

Why not the full simulator: the benchmark must measure the *client's* CPU per event, so the
server side should cost as little as possible and behave identically for every client. This
server speaks just enough GA to satisfy each peer's handshake (``session.created`` first,
``session.updated`` for every ``session.update``) and then produces load on demand:

- ``burst``: on the client's ``response.create`` it sends one response as fast as the socket
  takes it: ``response.created``, N events in the ratio 2 audio deltas (20 ms, non-silent
  PCM) : 1 transcript delta, then ``response.done``. Frames are pre-encoded once, with GA
  locator fields and ``event_id``s so strict (pydantic-validating) peers accept them.
- ``paced``: after the handshake it sends one transcript delta every ``1/rate`` seconds whose
  text is the send time (``time.monotonic_ns()``, the same clock in every process on Linux),
  so the client can compute host-visible latency. The k-th connection ticks on a common grid
  at phase ``(k mod spread) / spread`` of the period: ``spread`` connections (the client's
  conversation count) interleave evenly, and every client gets the same schedule. (Random
  phases let one run's collisions decide its p99; lock-step ticks would make the last send
  of every tick wait behind the others and blame the client for it.)

Run: ``python -m benchmarks._load_server --mode burst --events 3000`` prints ``ws://…`` on
stdout once listening.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from array import array

import orjson
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

from duplex.protocol import b64encode_pcm

__all__ = ["burst_frames", "main"]

RESPONSE_ID = "resp_bench"
ITEM_ID = "item_bench"


def _pcm_20ms() -> bytes:
    samples = array("h", (int(6000 * math.sin(2 * math.pi * 220 * i / 24000)) for i in range(480)))
    return samples.tobytes()


def _locator(i: int) -> dict[str, object]:
    return {
        "event_id": f"event_{i}",
        "response_id": RESPONSE_ID,
        "item_id": ITEM_ID,
        "output_index": 0,
        "content_index": 0,
    }


def burst_frames(n: int) -> list[str]:
    """The ``n`` body frames of one burst response (2 audio : 1 transcript delta)."""
    audio = b64encode_pcm(_pcm_20ms())
    frames = []
    for i in range(n):
        if i % 3 == 2:
            body = {
                "type": "response.output_audio_transcript.delta",
                **_locator(i),
                "delta": "word ",
            }
        else:
            body = {"type": "response.output_audio.delta", **_locator(i), "delta": audio}
        frames.append(orjson.dumps(body).decode())
    return frames


def _session(kind: str) -> str:
    session = {
        "type": "realtime",
        "object": "realtime.session",
        "id": "sess_bench",
        "model": "gpt-realtime",
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
    }
    return orjson.dumps({"type": kind, "event_id": f"event_{kind}", "session": session}).decode()


def _response(kind: str, status: str) -> str:
    response = {"id": RESPONSE_ID, "object": "realtime.response", "status": status, "output": []}
    return orjson.dumps({"type": kind, "event_id": f"event_{kind}", "response": response}).decode()


async def _handle(
    request: WebSocketRequest, mode: str, events: int, rate: float, phase: float
) -> None:
    ws = await request.accept()
    frames = burst_frames(events) if mode == "burst" else []
    created = _response("response.created", "in_progress")
    done = _response("response.done", "completed")
    async with trio.open_nursery() as nursery:
        if mode == "paced":
            nursery.start_soon(_paced, ws, rate, phase)
        try:
            await ws.send_message(_session("session.created"))
            while True:
                message = await ws.get_message()
                kind = orjson.loads(message).get("type")
                if kind == "session.update":
                    await ws.send_message(_session("session.updated"))
                elif kind == "response.create" and mode == "burst":
                    await ws.send_message(created)
                    for frame in frames:
                        await ws.send_message(frame)
                    await ws.send_message(done)
        except ConnectionClosed:
            pass
        nursery.cancel_scope.cancel()


async def _paced(ws: WebSocketConnection, rate: float, phase: float) -> None:
    """Send on the grid ``phase + n / rate`` (trio clock), from the first tick after now."""
    period = 1.0 / rate
    i = 0
    next_at = phase + math.ceil((trio.current_time() - phase) / period) * period
    try:
        while True:
            await trio.sleep_until(next_at)
            next_at += period
            body = {
                "type": "response.output_audio_transcript.delta",
                **_locator(i),
                "delta": str(time.monotonic_ns()),
            }
            await ws.send_message(orjson.dumps(body).decode())
            i += 1
    except ConnectionClosed:
        return


async def _serve(mode: str, events: int, rate: float, spread: int) -> None:
    epoch = trio.current_time()
    accepted = 0

    async def handler(request: WebSocketRequest) -> None:
        nonlocal accepted
        phase = epoch + (accepted % spread) / spread / rate
        accepted += 1
        await _handle(request, mode, events, rate, phase)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
        port = server.port
        print(f"ws://127.0.0.1:{port}/v1", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["burst", "paced"], default="burst")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--spread", type=int, default=50, help="paced: connections per grid")
    args = parser.parse_args(argv)
    try:
        trio.run(_serve, args.mode, args.events, args.rate, max(1, args.spread))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
