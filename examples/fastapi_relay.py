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
the handler's task is cancelled and ``duplex.aio.open_engine`` closes the conversation. When
the conversation ends first (the server dropped it and reconnection gave up), the client gets
its ``conversation.closed`` event and then a close frame saying why; when it cannot start, a
close frame (1011) with the start error.
Everything runs on uvicorn's own loop (asyncio or uvloop); duplex adds no thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from duplex.aio import (
    AudioFrame,
    AudioOut,
    ConversationClosed,
    ConversationNotRunning,
    ConversationStartError,
    EngineConfig,
    InvalidAudioFrame,
    open_engine,
)

SAMPLE_RATE = 24000
#: A WebSocket close frame's reason is at most 123 bytes.
MAX_REASON_BYTES = 123


def create_app(config: EngineConfig | None = None) -> FastAPI:
    """The relay app; ``config`` defaults to ``EngineConfig.from_env()`` per connection."""
    app = FastAPI()

    @app.websocket("/talk")
    async def talk(websocket: WebSocket) -> None:
        await websocket.accept()
        engine_config = config or EngineConfig.from_env()
        async with open_engine(engine_config) as engine:
            try:
                await engine.start(prompt=websocket.query_params.get("prompt"))
            except ConversationStartError as exc:
                # Told to the client, not raised out of the handler (uvicorn would log an
                # ASGI error and cut the socket without a close frame).
                await websocket.close(code=1011, reason=_reason(f"could not start: {exc}"))
                return
            forward = asyncio.create_task(_forward_events(engine, websocket))
            try:
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        break
                    try:
                        if message.get("bytes") is not None:
                            engine.send_audio(AudioFrame(message["bytes"], SAMPLE_RATE, 1))
                        elif message.get("text") is not None:
                            request = _json(message["text"])
                            if request.get("type") == "text":
                                await engine.send_text(str(request.get("text", "")))
                    except InvalidAudioFrame:
                        continue  # not PCM16 (an odd byte count): this frame is dropped
                    except ConversationNotRunning:
                        # The conversation has ended: the forwarder relays its
                        # ConversationClosed and closes the socket with the reason.
                        await forward
                        break
            except WebSocketDisconnect:
                pass
            finally:
                forward.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await forward

    return app


async def _forward_events(engine: Any, websocket: WebSocket) -> None:
    """Relay the conversation's events until its ``ConversationClosed``, then close the
    client's socket saying why (the client cannot go on talking to an ended conversation)."""
    async for event in engine.events():
        if isinstance(event, AudioOut):
            await websocket.send_bytes(event.frame.pcm)
            continue
        await websocket.send_json(_describe(event))
        if isinstance(event, ConversationClosed):
            code = 1011 if event.reason == "error" else 1000
            detail = f": {event.error}" if event.error else ""
            await websocket.close(code=code, reason=_reason(f"{event.reason}{detail}"))
            return


def _reason(text: str) -> str:
    """``text`` cut to fit a close frame's reason (at most 123 bytes of UTF-8)."""
    data = text.encode()
    if len(data) <= MAX_REASON_BYTES:
        return text
    return data[: MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


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
