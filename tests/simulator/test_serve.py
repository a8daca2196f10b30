"""Serving entry points: ``serve_simulator`` under ``nursery.start`` and ``run_server``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, open_websocket_url

from duplex.simulator import Simulator, SimulatorConfig, run_server, serve_simulator

from .._netguard import NetworkGuard
from .._support import SelfSignedCert
from ._simhelpers import close_code


async def test_serve_simulator_returns_base_url() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            sim = Simulator(SimulatorConfig(seed=3))
            url = await nursery.start(
                lambda task_status: serve_simulator(simulator=sim, task_status=task_status)
            )
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", url)
            assert url == sim.base_url
            ws_url = url.replace("http://", "ws://") + "/realtime?model=m"
            async with open_websocket_url(
                ws_url, extra_headers=[(b"Authorization", b"Bearer k")]
            ) as ws:
                created = json.loads(await ws.get_message())
                assert created["type"] == "session.created"
            # Plain form: nursery.start(serve_simulator, cfg).
            url2 = await nursery.start(serve_simulator, SimulatorConfig())
            assert url2 != url
            nursery.cancel_scope.cancel()


async def test_run_server_prints_listening_line(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_server, "127.0.0.1", 0)
            while True:
                await trio.testing.wait_all_tasks_blocked()
                out = capsys.readouterr().out
                if out:
                    break
            match = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)\n", out)
            assert match is not None, out
            port = int(match.group(1))
            assert port > 0
            url = f"ws://127.0.0.1:{port}/v1/realtime?intent=quicksilver"
            async with open_websocket_url(
                url, extra_headers=[(b"Authorization", b"Bearer k")]
            ) as ws:
                await ws.send_message(
                    json.dumps({"type": "session.create", "session": {"type": "quicksilver"}})
                )
                assert json.loads(await ws.get_message())["type"] == "session.created"
            nursery.cancel_scope.cancel()


class _StepCounter(trio.abc.Instrument):
    def __init__(self) -> None:
        self.steps: dict[str, int] = {}

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task.name] = self.steps.get(task.name, 0) + 1


async def test_idle_session_does_not_spin() -> None:
    """An idle session's tasks sleep: a regression test for a self-waking clock loop."""
    from duplex.simulator import open_simulator

    counter = _StepCounter()
    with trio.fail_after(10):
        async with open_simulator() as sim:
            assert sim.base_url is not None
            url = sim.base_url.replace("http://", "ws://") + "/realtime?model=m"
            async with open_websocket_url(
                url, extra_headers=[(b"Authorization", b"Bearer k")]
            ) as ws:
                await ws.get_message()
                # The greeting's tasks settle (everything parks), then the count starts.
                await trio.testing.wait_all_tasks_blocked()
                trio.lowlevel.add_instrument(counter)
                try:
                    await trio.sleep(0.5)  # the behaviour: half a second of an idle session
                finally:
                    trio.lowlevel.remove_instrument(counter)
    busiest = max(counter.steps.values(), default=0)
    assert busiest < 20, counter.steps


# ---------------------------------------------------------------------- owned sockets


async def _raw_upgrade(port: int, query: str = "model=m") -> trio.SocketStream:
    """A WebSocket upgrade by hand: the client then never reads another byte."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(
        (
            f"GET /v1/realtime?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "Authorization: Bearer k\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += await stream.receive_some(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return stream


def _port(sim: Simulator) -> int:
    assert sim.base_url is not None
    return int(sim.base_url.rsplit(":", 1)[1].split("/")[0])


async def test_shutdown_does_not_wait_for_a_client_that_stopped_reading() -> None:
    from duplex.simulator import FaultConfig, open_simulator

    # A 17 MiB frame right after session.created fills every socket buffer: the server's
    # write blocks until the client reads, which it never does.
    cfg = SimulatorConfig(faults=FaultConfig(garbage_after_created=("oversized",)))
    with trio.fail_after(10):
        async with open_simulator(cfg) as sim:
            stream = await _raw_upgrade(_port(sim))
            record = await sim.wait_for_session()
            await record.wait_for("session.created", sent=True)
            await trio.testing.wait_all_tasks_blocked()  # the big write is now stuck
        await stream.aclose()


async def test_malformed_http_request_gets_400_and_the_server_lives_on() -> None:
    from duplex.simulator import open_simulator

    with trio.fail_after(10):
        async with open_simulator() as sim:
            stream = await trio.open_tcp_stream("127.0.0.1", _port(sim))
            await stream.send_all(b"THIS IS NOT HTTP\r\n\r\n")
            reply = b""
            while chunk := await stream.receive_some(1024):
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 400")
            await stream.aclose()
            async with httpx.AsyncClient() as client:
                # Keep-alive: both requests on one connection.
                for _ in range(2):
                    r = await client.post(
                        f"{sim.base_url}/realtime/calls",
                        content=b"nope",
                        headers={"Authorization": "Bearer k", "Content-Type": "text/plain"},
                    )
                    assert r.status_code == 400
                    assert r.json()["error"]["message"].startswith("Unsupported content type")


async def test_busy_port_is_a_one_line_bind_error() -> None:
    from duplex.simulator import SimulatorBindError, open_simulator

    with trio.fail_after(10):
        async with open_simulator() as sim:
            port = _port(sim)
            with pytest.raises(SimulatorBindError) as info:
                async with open_simulator(SimulatorConfig(port=port)):
                    pass
            message = str(info.value)
            assert f"127.0.0.1:{port}" in message
            assert "\n" not in message


async def _open_on(host: str) -> None:
    from duplex.simulator import open_simulator

    async with open_simulator(SimulatorConfig(host=host)):
        pass


async def test_unknown_host_is_a_bind_error(network_guard: NetworkGuard) -> None:
    from duplex.simulator import SimulatorBindError

    # The lookup would leave this machine; the suite's guard fails it as a resolver would.
    with (
        network_guard.expect_blocked(),
        trio.fail_after(10),
        pytest.raises(SimulatorBindError) as info,
    ):
        await _open_on("no-such-host.invalid")
    assert "no-such-host.invalid" in str(info.value)


def test_the_simulator_does_not_import_hypercorn() -> None:
    code = (
        "import sys, duplex.simulator, duplex.simulator._server\n"
        "assert not any(m.split('.')[0] == 'hypercorn' for m in sys.modules), 'hypercorn'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_tls_serves_https_and_wss(self_signed: SelfSignedCert) -> None:
    from duplex.simulator import FaultConfig, open_simulator

    cert, key = self_signed
    trust = self_signed.client_context()
    config = SimulatorConfig(
        tls_certfile=str(cert),
        tls_keyfile=str(key),
        faults=FaultConfig(drop_after_events=2),
    )
    with trio.fail_after(10):
        async with open_simulator(config) as sim:
            assert sim.base_url is not None
            assert sim.base_url.startswith("https://127.0.0.1:")
            async with httpx.AsyncClient(verify=trust) as http:
                r = await http.post(
                    f"{sim.base_url}/realtime/client_secrets",
                    json={},
                    headers={"Authorization": "Bearer k"},
                )
                assert r.status_code == 200
            url = sim.base_url.replace("https://", "wss://") + "/realtime?model=m"
            async with open_websocket_url(
                url, ssl_context=trust, extra_headers=[(b"Authorization", b"Bearer k")]
            ) as ws:
                assert json.loads(await ws.get_message())["type"] == "session.created"
                await ws.send_message(json.dumps({"type": "response.create"}))
                # The TCP reset fault works under TLS too (no close frame: 1006).
                assert await _close_code_after_reading(ws) == 1006


async def _close_code_after_reading(ws: Any) -> int | None:
    try:
        while True:
            await ws.get_message()
    except ConnectionClosed as closed:
        return close_code(closed)


async def test_a_bad_tls_certificate_is_a_bind_error(tmp_path: Path) -> None:
    from duplex.simulator import SimulatorBindError, open_simulator

    missing = str(tmp_path / "nope.pem")
    with trio.fail_after(10), pytest.raises(SimulatorBindError) as info:
        async with open_simulator(SimulatorConfig(tls_certfile=missing, tls_keyfile=missing)):
            pass
    assert "nope.pem" in str(info.value)


async def test_expect_100_continue_is_answered_before_the_body() -> None:
    from duplex.simulator import open_simulator

    body = b'{"session": {"type": "realtime"}}'
    with trio.fail_after(10):
        async with open_simulator() as sim:
            stream = await trio.open_tcp_stream("127.0.0.1", _port(sim))
            await stream.send_all(
                b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer k\r\nContent-Type: application/json\r\n"
                b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
            )
            first = b""
            while b"\r\n\r\n" not in first:
                first += await stream.receive_some(1)
            assert first.startswith(b"HTTP/1.1 100 ")
            await stream.send_all(body)
            reply = await stream.receive_some(65536)
            assert reply.startswith(b"HTTP/1.1 200 ")
            await stream.aclose()
