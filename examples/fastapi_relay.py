"""A FastAPI app that gives every WebSocket client of the app its own duplex conversation.

Run it (against the local simulator, or a real server with ``OPENAI_API_KEY`` set)::

    duplex serve --port 8765 &
    OPENAI_BASE_URL=http://127.0.0.1:8765/v1 OPENAI_API_KEY=sk-local \\
        uvicorn examples.fastapi_relay:app --port 8000

and connect a WebSocket client to ``ws://127.0.0.1:8000/talk``. The relay, per client:

- client → model: a text message ``{"type": "text", "text": "…"}`` becomes a user turn
  (``send_text``); a binary message is microphone audio, PCM16 mono 24 kHz (``send_audio``,
  which never blocks: a full queue drops the frame).
- model → client: model audio as binary messages, every other event as one JSON object
  ``{"type": <event type>, ...}`` (transcripts carry ``text``/``delta``).

The conversation lives exactly as long as the client's socket: when the client goes away,
the handler's task is cancelled and ``duplex.aio.open_engine`` closes the conversation.
Everything runs on uvicorn's own loop (asyncio or uvloop); duplex adds no thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from duplex.aio import AudioFrame, AudioOut, EngineConfig, open_engine

SAMPLE_RATE = 24000


def create_app(config: EngineConfig | None = None) -> FastAPI:
    """The relay app; ``config`` defaults to ``EngineConfig.from_env()`` per connection."""
    app = FastAPI()

    @app.websocket("/talk")
    async def talk(websocket: WebSocket) -> None:
        await websocket.accept()
        engine_config = config or EngineConfig.from_env()
        async with open_engine(engine_config) as engine:
            await engine.start(prompt=websocket.query_params.get("prompt"))
            forward = asyncio.create_task(_forward_events(engine, websocket))
            try:
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        break
                    if message.get("bytes") is not None:
                        engine.send_audio(AudioFrame(message["bytes"], SAMPLE_RATE, 1))
                    elif message.get("text") is not None:
                        request = _json(message["text"])
                        if request.get("type") == "text":
                            await engine.send_text(str(request.get("text", "")))
            except WebSocketDisconnect:
                pass
            finally:
                forward.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await forward

    return app


async def _forward_events(engine: Any, websocket: WebSocket) -> None:
    async for event in engine.events():
        if isinstance(event, AudioOut):
            await websocket.send_bytes(event.frame.pcm)
        else:
            await websocket.send_json(_describe(event))


def _describe(event: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": getattr(event, "TYPE", type(event).__name__)}
    for field in ("text", "delta", "reason", "handoff_id", "session_id"):
        value = getattr(event, field, None)
        if isinstance(value, str):
            out[field] = value
    return out


def _json(text: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


app = create_app()
