"""Fault injection and scenarios over WebSocket."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, DisconnectionTimeout, open_websocket_url

from duplex.simulator import FaultConfig, Scenario, ScenarioStep, SimulatorConfig, open_simulator

from ._simhelpers import close_code, connect, recv, recv_until, send, user_text, ws_url


def _cfg(**faults: Any) -> SimulatorConfig:
    return SimulatorConfig(faults=FaultConfig(**faults))


@pytest.mark.parametrize("code", [1001, 1011, 4000])
async def test_close_after_n_events(code: int) -> None:
    with trio.fail_after(10):
        async with open_simulator(_cfg(close_after_events=3, close_code=code)) as sim:
            async with connect(sim) as ws:
                await recv(ws)
                await send(ws, user_text("hello"))
                got = [await recv(ws), await recv(ws)]
                assert [e["type"] for e in got] == [
                    "conversation.item.added",
                    "conversation.item.done",
                ]
                with pytest.raises(ConnectionClosed) as info:
                    await recv(ws)
                assert close_code(info.value) == code
            await sim.sessions[0].wait_closed()
            assert sim.sessions[0].close_code == code


async def test_tcp_drop_mid_response() -> None:
    with trio.fail_after(10):
        async with open_simulator(_cfg(drop_after_events=10)) as sim, connect(sim) as ws:
            await recv(ws)
            await send(ws, user_text("hello"))
            await send(ws, {"type": "response.create"})
            seen: list[dict[str, Any]] = []
            with pytest.raises(ConnectionClosed) as info:
                await _read_all(ws, seen)
            # No close frame: the connection was reset mid-response.
            assert close_code(info.value) == 1006
            types = [e["type"] for e in seen]
            assert "response.created" in types
            assert "response.done" not in types


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("text", lambda m: isinstance(m, str) and m.startswith("}{")),
        ("binary", lambda m: isinstance(m, bytes)),
        ("non_object", lambda m: json.loads(m) == [1, 2, 3]),
        ("no_type", lambda m: "type" not in json.loads(m)),
    ],
)
async def test_garbage_frames(kind: str, check: Any) -> None:
    with trio.fail_after(10):
        async with open_simulator(_cfg(garbage_after_created=(kind,))) as sim, connect(sim) as ws:
            assert (await recv_raw(ws))[:30].startswith('{"type":"session.created"')
            assert check(await ws.get_message())
            # The session keeps working after the garbage.
            await send(ws, user_text("x"))
            assert (await recv(ws))["type"] == "conversation.item.added"


async def _read_all(ws: Any, into: list[dict[str, Any]]) -> None:
    while True:
        into.append(await recv(ws))


async def recv_raw(ws: Any) -> str:
    message = await ws.get_message()
    assert isinstance(message, str)
    return message


async def test_oversized_frame_trips_client_limit() -> None:
    with trio.fail_after(20):
        async with (
            open_simulator(_cfg(garbage_after_created=("oversized",))) as sim,
            connect(sim, max_message_size=16 * 1024 * 1024) as ws,
        ):
            await recv(ws)
            with pytest.raises(ConnectionClosed) as info:
                await ws.get_message()
            assert close_code(info.value) == 1009


async def test_event_delays() -> None:
    cfg = _cfg(event_delays={"conversation.item.done": 0.3})
    with trio.fail_after(10):
        async with open_simulator(cfg) as sim, connect(sim) as ws:
            await recv(ws)
            await send(ws, user_text("x"))
            await recv(ws)
            start = trio.current_time()
            assert (await recv(ws))["type"] == "conversation.item.done"
            assert trio.current_time() - start >= 0.25


async def test_session_expiry() -> None:
    with trio.fail_after(10):
        async with open_simulator(_cfg(session_max_duration_s=0.3)) as sim, connect(sim) as ws:
            await recv(ws)
            error = await recv(ws)
            assert error["error"]["code"] == "session_expired"
            assert "maximum duration" in error["error"]["message"]
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
            assert close_code(info.value) == 1001


async def test_scenario_overlay_emit_and_close() -> None:
    step = ScenarioStep(
        expect="response.create",
        predicate=lambda rec: rec.raw is not None and rec.raw.get("event_id") == "go",
        emit=({"type": "error", "error": {"type": "server_error", "message": "boom"}},),
        close_code=4000,
        close_reason="scripted",
        consume=True,
    )
    with trio.fail_after(10):
        async with open_simulator() as sim:
            sim.add_scenario(Scenario(steps=(step,), faults=FaultConfig()))
            async with connect(sim) as ws:
                await recv(ws)
                await send(ws, user_text("x"))
                await recv_until(ws, "conversation.item.done")
                await send(ws, {"type": "response.create", "event_id": "go"})
                error = await recv(ws)
                assert error["type"] == "error"
                assert error["event_id"].startswith("event_")
                with pytest.raises(ConnectionClosed) as info:
                    await recv(ws)
                assert close_code(info.value) == 4000
            rec = sim.sessions[0]
            assert rec.types() == ["conversation.item.create", "response.create"]
            create = rec.of_type("response.create")[0]
            assert create.event is not None
            assert create.source == "websocket"


async def test_scenario_replaces_model() -> None:
    scenario = Scenario(
        replace_model=True,
        send_session_created=False,
        steps=(
            ScenarioStep(
                expect="session.update", emit=({"type": "session.updated", "session": {}},)
            ),
        ),
    )
    with trio.fail_after(10):
        async with open_simulator() as sim:
            sim.add_scenario(scenario)
            async with connect(sim) as ws:
                await send(ws, {"type": "session.update", "session": {"type": "realtime"}})
                assert (await recv(ws))["type"] == "session.updated"
                await send(ws, {"type": "bogus"})  # recorded as rejected, not answered
                await sim.sessions[0].wait_for("bogus")
                with trio.move_on_after(0.2):
                    await recv(ws)
                    raise AssertionError("the model should be silent")
            rejected = sim.sessions[0].of_type("bogus")[0]
            assert rejected.rejection is not None
            assert rejected.rejection.code == "invalid_value"


async def test_faults_knob_is_live_and_sessions_are_isolated() -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim, connect(sim) as healthy:
            await recv(healthy)
            sim.faults = FaultConfig(close_after_events=1, close_code=1011)
            async with connect(sim) as doomed:
                await recv(doomed)
                with pytest.raises(ConnectionClosed):
                    await recv(doomed)
            await send(healthy, user_text("still here"))
            assert (await recv(healthy))["type"] == "conversation.item.added"


async def test_v1_garbage_follows_session_created() -> None:
    with trio.fail_after(10):
        async with (
            open_simulator(_cfg(garbage_after_created=("binary",))) as sim,
            connect(sim, "intent=quicksilver") as ws,
        ):
            await send(ws, {"type": "session.create", "session": {"type": "quicksilver"}})
            assert (await recv(ws))["type"] == "session.created"
            assert isinstance(await ws.get_message(), bytes)
            assert (await recv(ws))["type"] == "session.updated"


async def test_silent_peer_stops_sending_and_answering_but_keeps_tcp_open() -> None:
    """The hung-server fault: after N frames nothing more is sent, pings go unanswered, and the
    connection stays up until the client gives up (then the session is closed, 1006)."""
    ping_answered: list[bool] = []
    with trio.fail_after(10):
        async with open_simulator(_cfg(silent_after_frames=1)) as sim:
            try:
                async with open_websocket_url(
                    ws_url(sim),
                    extra_headers=[(b"Authorization", b"Bearer k")],
                    # The close handshake gets no reply either: give up on it quickly.
                    disconnect_timeout=0.2,
                ) as ws:
                    assert (await recv(ws))["type"] == "session.created"
                    await send(ws, user_text("hello"))
                    record = await sim.wait_for_session()
                    with trio.move_on_after(0.5):
                        await ws.ping(b"are you there")
                        ping_answered.append(True)
                    assert not record.closed
            except* DisconnectionTimeout:
                pass
            await record.wait_closed()
    assert not ping_answered, "a silent peer must not answer a ping"
    # Nothing the client sent after the peer went silent reached the model.
    assert record.types() == []
    assert record.close_code == 1006
