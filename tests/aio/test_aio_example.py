"""The example app (``examples/fastapi_relay.py``) on uvicorn (loopback, port 0), asyncio and
uvloop, against the simulator: a client of the app holds a text and a spoken turn; a
conversation that ends, or cannot start, closes the client's socket with the reason."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import signal
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from duplex.engine import EngineConfig, ReconnectPolicy
from duplex.simulator import FaultConfig, SimulatorConfig, tone

from ._hosts import ASYNCIO_HOSTS, Host, poll_until, run_on, simulator_thread

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_relay.py"
TIMEOUT_S = 20
HOSTS = [h for h in ASYNCIO_HOSTS if h.mechanism == "guest"]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_relay", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def receive_until(ws: Any, kind: str, seen: list[Any]) -> dict[str, Any]:
    """Read the app's messages (JSON events, binary audio) until an event of ``kind``."""
    while True:
        message = await ws.recv()
        seen.append(message)
        if isinstance(message, str):
            event: dict[str, Any] = json.loads(message)
            if event["type"] == kind:
                return event


@pytest.mark.parametrize("host", HOSTS, ids=lambda h: h.name)
def test_example_relays_text_and_audio_per_websocket_client_under_uvicorn(host: Host) -> None:
    relay = load_example()
    speech = b"\x00\x00" * 4800 + tone(800, amplitude=0.3) + b"\x00\x00" * 16800
    with simulator_thread(SimulatorConfig(speech_transcript="ok")) as sim:
        app = relay.create_app(sim.config())

        async def scenario(host: Host) -> None:
            server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="error")
            )
            serving = asyncio.create_task(server.serve())
            async with asyncio.timeout(TIMEOUT_S):
                await poll_until(lambda: server.started)  # uvicorn has no event for it
            port = server.servers[0].sockets[0].getsockname()[1]
            host_sigint = signal.getsignal(signal.SIGINT)
            tasks_before = asyncio.all_tasks()
            try:
                async with asyncio.timeout(TIMEOUT_S):
                    seen: list[Any] = []
                    async with connect(f"ws://127.0.0.1:{port}/talk") as ws:
                        await ws.send(json.dumps({"type": "text", "text": "hello"}))
                        done = await receive_until(
                            ws, "response.output_audio_transcript.done", seen
                        )
                        assert done["text"] == "You said: hello."
                        assert any(isinstance(m, bytes) for m in seen)  # model audio
                        for i in range(0, len(speech), 960):
                            await ws.send(speech[i : i + 960])
                        heard = await receive_until(
                            ws, "conversation.item.input_audio_transcription.completed", seen
                        )
                        assert heard["text"] == "ok"
                        assert signal.getsignal(signal.SIGINT) is host_sigint  # uvicorn's
                    # The client left: its conversation (and its trio side) ends with it:
                    # the handler's task finishes and the server sees the socket close.
                    record = sim.simulator.sessions[0]
                    await poll_until(
                        lambda: (
                            record.closed
                            and not asyncio.all_tasks() - tasks_before - {asyncio.current_task()}
                        )
                    )
            finally:
                server.should_exit = True
                await serving

        run_on(host, scenario)


async def read_until_closed(ws: Any) -> None:
    """Read (and drop) the app's messages until the connection is closed."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await ws.recv()


async def serve_app(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """``app`` on uvicorn (loopback, port 0); the server, its task and its port."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="error")
    )
    serving = asyncio.create_task(server.serve())
    await poll_until(lambda: server.started)  # uvicorn has no event for it
    return server, serving, server.servers[0].sockets[0].getsockname()[1]


@pytest.mark.parametrize("host", HOSTS, ids=lambda h: h.name)
def test_example_closes_the_clients_socket_with_the_reason_when_the_conversation_ends(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    # The server drops the conversation and reconnection is off: the client gets the
    # conversation.closed event, then a close frame (1011, the reason). Audio it sends
    # meanwhile used to raise ConversationNotRunning out of the handler (an ASGI error, the
    # socket cut without a close frame), and nothing closed the socket otherwise.
    relay = load_example()
    with simulator_thread(SimulatorConfig(faults=FaultConfig(drop_after_events=2))) as sim:
        app = relay.create_app(sim.config(reconnect=ReconnectPolicy.disabled()))

        async def scenario(host: Host) -> None:
            async with asyncio.timeout(TIMEOUT_S):
                server, serving, port = await serve_app(app)
                try:
                    async with connect(f"ws://127.0.0.1:{port}/talk") as ws:
                        closed = await receive_until(ws, "conversation.closed", [])
                        assert closed["reason"] == "error"
                        with contextlib.suppress(ConnectionClosed):
                            await ws.send(b"\x00\x00" * 480)  # too late: ended
                        await read_until_closed(ws)
                        assert ws.close_code == 1011
                        assert (ws.close_reason or "").startswith("error")
                finally:
                    server.should_exit = True
                    await serving
            assert "Exception in ASGI application" not in caplog.text

        run_on(host, scenario)


@pytest.mark.parametrize("host", HOSTS, ids=lambda h: h.name)
def test_example_closes_the_clients_socket_with_the_start_error(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    # start() raised ConversationStartError out of the handler: the client's socket was cut
    # without a close frame.
    relay = load_example()
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
        port = unused.getsockname()[1]
        config = EngineConfig(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test")
        app = relay.create_app(config)

        async def scenario(host: Host) -> None:
            async with asyncio.timeout(TIMEOUT_S):
                server, serving, app_port = await serve_app(app)
                try:
                    async with connect(f"ws://127.0.0.1:{app_port}/talk") as ws:
                        await read_until_closed(ws)
                        assert ws.close_code == 1011
                        assert (ws.close_reason or "").startswith("could not start")
                finally:
                    server.should_exit = True
                    await serving
            assert "Exception in ASGI application" not in caplog.text

        run_on(host, scenario)
