"""Headless Chromium through OpenAI's documented browser WebRTC flow, against the simulator.

The page is served from another origin (so every request to the simulator is cross-origin and
preflighted), uses an ``ek_`` key minted by ``POST /v1/realtime/client_secrets``, posts its
SDP offer with ``fetch``, reads ``Location``, runs a text turn on the ``oai-events`` channel,
checks that model audio arrived on the remote track, then hangs up.

Skipped when no ``chromium`` is installed (Debian's ``chromium`` package).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from duplex.simulator import SimulatorConfig, open_simulator
from duplex.simulator._http import HttpConnection

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGE = Path(__file__).with_name("_browser_page.html")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


async def _serve_page(
    html: str, results: trio.MemorySendChannel[dict[str, Any]], *, task_status: Any
) -> None:
    """The page's own origin: ``GET /`` is the page, ``POST /result`` its report."""

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            conn = HttpConnection(stream, max_body=1024 * 1024)
            while (request := await conn.next_request()) is not None:
                if request.method == "POST" and request.path == "/result":
                    await conn.respond(204)
                    await results.send(json.loads(request.body))
                elif request.path == "/":
                    await conn.respond(200, html.encode(), [("content-type", "text/html")])
                else:
                    await conn.respond(404)
                if not conn.keep_alive:
                    return

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def test_chromium_browser_flow_with_an_ephemeral_key(tmp_path: Path) -> None:
    assert CHROMIUM is not None
    results_send, results = trio.open_memory_channel[dict[str, Any]](1)
    with trio.fail_after(90):
        async with (
            open_simulator(SimulatorConfig(api_key="sk-backend")) as sim,
            trio.open_nursery() as nursery,
        ):
            assert sim.base_url is not None
            async with httpx.AsyncClient() as http:  # the host's backend
                minted = await http.post(
                    f"{sim.base_url}/realtime/client_secrets",
                    json={"session": {"type": "realtime", "instructions": "Be a pirate."}},
                    headers={"Authorization": "Bearer sk-backend"},
                )
            key = minted.json()["value"]
            html = PAGE.read_text().replace("__SIM__", sim.base_url).replace("__KEY__", key)
            port = await nursery.start(_serve_page, html, results_send)
            browser = await trio.lowlevel.open_process(
                [
                    CHROMIUM,
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--autoplay-policy=no-user-gesture-required",
                    # Host candidates as plain addresses (aiortc resolves no mDNS names).
                    "--disable-features=WebRtcHideLocalIpsWithMdns",
                    f"--user-data-dir={tmp_path / 'profile'}",
                    f"http://127.0.0.1:{port}/",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                result = await results.receive()
            finally:
                browser.kill()
                with trio.CancelScope(shield=True):
                    await browser.wait()
            nursery.cancel_scope.cancel()
    assert "error" not in result, result
    assert result["status"] == 201
    assert result["location"].startswith("/v1/realtime/calls/rtc_")  # exposed to the page
    assert result["opened"] is True
    assert result["session"]["instructions"] == "Be a pirate."  # inherited from the ek_ key
    types = [e["type"] for e in result["events"]]
    assert "response.done" in types
    assert result["peak"] > 0.05, result  # model audio was heard on the remote track
    # output_audio_buffer.stopped means the audio has played out: nothing loud is heard after
    # it beyond the receiver's jitter buffer (~100 ms here), and it comes after response.done,
    # which the server sends when generation ends, long before a reply of a few seconds plays.
    assert result["lastLoudAt"] <= result["stoppedAt"] + 300, result
    assert result["stoppedAt"] > result["responseDoneAt"] + 500, result
    assert result["hangupStatus"] == 200
    # The hangup ends the peer connection, not just the data channel: the browser's ICE stops
    # getting answers (a remote hangup never makes a browser's own state "closed").
    assert result["channelAfterHangup"] == "closed"
    assert result["afterHangup"] in ("disconnected", "failed"), result
