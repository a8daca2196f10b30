"""Helpers for the simulator tests: a started simulator, WebSocket clients, event readers."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from trio_websocket import WebSocketConnection, open_websocket_url

from duplex.simulator import Simulator

AUTH = [("Authorization", "Bearer sk-test")]


def close_code(exc: BaseException) -> int | None:
    """The close code a trio-websocket ``ConnectionClosed``/``ConnectionRejected`` carries."""
    reason = getattr(exc, "reason", None)
    return None if reason is None else int(reason.code)


def ws_url(sim: Simulator, query: str = "model=gpt-realtime") -> str:
    assert sim.base_url is not None
    base = sim.base_url.replace("http://", "ws://")
    return f"{base}/realtime?{query}" if query else f"{base}/realtime"


@asynccontextmanager
async def connect(
    sim: Simulator,
    query: str = "model=gpt-realtime",
    headers: list[tuple[str, str]] | None = None,
    max_message_size: int = 16 * 1024 * 1024,
) -> AsyncIterator[WebSocketConnection]:
    async with open_websocket_url(
        ws_url(sim, query),
        extra_headers=[(k.encode(), v.encode()) for k, v in (AUTH if headers is None else headers)],
        max_message_size=max_message_size,
    ) as ws:
        yield ws


async def send(ws: WebSocketConnection, event: dict[str, Any]) -> None:
    await ws.send_message(json.dumps(event))


async def recv(ws: WebSocketConnection) -> dict[str, Any]:
    message = await ws.get_message()
    assert isinstance(message, str)
    event: dict[str, Any] = json.loads(message)
    return event


async def recv_until(
    ws: WebSocketConnection, type_: str, *, into: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Read events until one of ``type_``; every event read is appended to ``into``."""
    while True:
        event = await recv(ws)
        if into is not None:
            into.append(event)
        if event["type"] == type_:
            return event


def user_text(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
        **extra,
    }


def append(pcm: bytes) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}


async def send_pcm(ws: WebSocketConnection, pcm: bytes, chunk: int = 4800) -> None:
    for i in range(0, len(pcm), chunk):
        await send(ws, append(pcm[i : i + chunk]))


def silence(ms: int) -> bytes:
    return b"\x00\x00" * (24 * ms)


async def session_update(ws: WebSocketConnection, **session: Any) -> dict[str, Any]:
    await send(ws, {"type": "session.update", "session": {"type": "realtime", **session}})
    return await recv_until(ws, "session.updated")
