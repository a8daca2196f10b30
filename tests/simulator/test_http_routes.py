"""The HTTP routes as a browser and a backend see them: CORS, client secrets, random ids."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
import trio

from duplex.simulator import Simulator, SimulatorConfig, open_simulator

from ._simhelpers import connect, recv

ORIGIN = "http://page.example:8000"
PATHS = ["/realtime/calls", "/realtime/client_secrets", "/realtime/calls/rtc_u1_x/hangup"]


@pytest.mark.parametrize("path", PATHS)
async def test_cors_preflight_allows_the_requested_method_and_headers(path: str) -> None:
    requested = "authorization, content-type, x-stainless-os, openai-beta"
    with trio.fail_after(10):
        async with (
            open_simulator(SimulatorConfig(api_key="sk-server")) as sim,
            httpx.AsyncClient() as http,
        ):
            r = await http.options(
                f"{sim.base_url}{path}",
                headers={
                    "Origin": ORIGIN,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": requested,
                },
            )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-allow-headers"] == requested


async def test_cors_headers_on_real_responses_expose_location() -> None:
    with trio.fail_after(10):
        async with (
            open_simulator(SimulatorConfig(api_key="sk-server")) as sim,
            httpx.AsyncClient() as http,
        ):
            # An error too: the page must be able to read why it failed.
            denied = await http.post(
                f"{sim.base_url}/realtime/client_secrets",
                json={},
                headers={"Origin": ORIGIN, "Authorization": "Bearer sk-wrong"},
            )
            minted = await http.post(
                f"{sim.base_url}/realtime/client_secrets",
                json={},
                headers={"Origin": ORIGIN, "Authorization": "Bearer sk-server"},
            )
    assert denied.status_code == 401
    for r in (denied, minted):
        assert r.headers["access-control-allow-origin"] == ORIGIN
        assert "location" in r.headers["access-control-expose-headers"].lower()


async def _mint(sim: Simulator, body: object, key: str = "sk-test") -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{sim.base_url}/realtime/client_secrets",
            content=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )


async def test_client_secrets_mints_ek_keys_with_the_session() -> None:
    body = {
        "expires_after": {"anchor": "created_at", "seconds": 120},
        "session": {
            "type": "realtime",
            "model": "gpt-realtime",
            "instructions": "Talk like a pirate.",
            "audio": {"output": {"voice": "marin"}},
        },
    }
    with trio.fail_after(10):
        async with open_simulator() as sim:
            before = time.time()
            r = await _mint(sim, body)
            again = await _mint(sim, body)
    assert r.status_code == 200, r.text
    secret = r.json()
    assert re.fullmatch(r"ek_[0-9a-f]{32}", secret["value"])
    assert secret["value"] != again.json()["value"]
    assert before + 119 <= secret["expires_at"] <= time.time() + 121
    session = secret["session"]
    assert session["type"] == "realtime"
    assert session["object"] == "realtime.session"
    assert session["id"].startswith("sess_")
    assert session["instructions"] == "Talk like a pirate."
    assert session["audio"]["output"]["voice"] == "marin"
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"session": {"instructions": "x"}}, "session.type"),
        ({"session": {"type": "quicksilver"}}, "session.type"),
        ({"session": "realtime"}, "session"),
        ({"expires_after": {"anchor": "created_at", "seconds": 5}}, "expires_after"),
        ({"expires_after": {"anchor": "now", "seconds": 60}}, "expires_after"),
        ([1, 2], None),
    ],
)
async def test_client_secrets_rejects_bad_bodies(body: object, param: str | None) -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim:
            r = await _mint(sim, body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


async def test_client_secrets_needs_a_key() -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim, httpx.AsyncClient() as http:
            r = await http.post(f"{sim.base_url}/realtime/client_secrets", json={})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "missing_api_key"


async def _session_and_event_ids(config: SimulatorConfig) -> tuple[str, str, str]:
    async with open_simulator(config) as sim, connect(sim) as ws:
        created = await recv(ws)
        minted = await _mint(sim, {})
        return created["session"]["id"], created["event_id"], minted.json()["value"]


async def test_ids_are_random_per_run_unless_seeded() -> None:
    with trio.fail_after(10):
        first = await _session_and_event_ids(SimulatorConfig())
        second = await _session_and_event_ids(SimulatorConfig())
        seeded = [await _session_and_event_ids(SimulatorConfig(seed=42)) for _ in range(2)]
    assert all(a != b for a, b in zip(first, second, strict=True))
    assert seeded[0] == seeded[1]
    assert seeded[0][0].startswith("sess_")


async def test_websocket_with_a_minted_key_starts_from_its_session() -> None:
    session = {"type": "realtime", "instructions": "Be a pirate.", "output_modalities": ["text"]}
    with trio.fail_after(10):
        async with open_simulator(SimulatorConfig(api_key="sk-backend")) as sim:
            key = (await _mint(sim, {"session": session}, key="sk-backend")).json()["value"]
            headers = [("Authorization", f"Bearer {key}")]
            async with connect(sim, query="", headers=headers) as ws:
                created = await recv(ws)
    assert created["type"] == "session.created"
    assert created["session"]["instructions"] == "Be a pirate."
    assert created["session"]["output_modalities"] == ["text"]


async def test_websocket_with_a_transcription_key_is_a_transcription_session() -> None:
    session = {"type": "transcription"}
    with trio.fail_after(10):
        async with open_simulator() as sim:
            key = (await _mint(sim, {"session": session})).json()["value"]
            async with connect(sim, query="", headers=[("Authorization", f"Bearer {key}")]) as ws:
                created = await recv(ws)
    assert created["session"]["type"] == "transcription"
