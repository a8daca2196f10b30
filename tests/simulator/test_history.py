"""Session cap and history inspection (issue 15.4): ``SimulatorConfig.session_max_duration_s``
expires a session like the real service, the session record shows the items a client sent and
the conversation the model holds, and the model's replies reflect that context."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed

from duplex.simulator import FaultConfig, SimulatorConfig, open_simulator

from ._simhelpers import close_code, connect, recv, recv_until, send, session_update, user_text


async def test_session_cap_from_simulator_config() -> None:
    with trio.fail_after(10):
        cfg = SimulatorConfig(session_max_duration_s=0.3)
        async with open_simulator(cfg) as sim, connect(sim) as ws:
            await recv(ws)
            start = trio.current_time()
            error = await recv(ws)
            assert trio.current_time() - start >= 0.2
            assert error["error"]["code"] == "session_expired"
            assert error["error"]["type"] == "invalid_request_error"
            assert error["error"]["message"].startswith("Your session hit the maximum duration")
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
            assert close_code(info.value) == 1001
            record = await sim.wait_for_session()
            await record.wait_closed()
            assert record.close_code == 1001


async def test_fault_cap_overrides_config_cap() -> None:
    with trio.fail_after(10):
        cfg = SimulatorConfig(
            session_max_duration_s=600, faults=FaultConfig(session_max_duration_s=0.2)
        )
        async with open_simulator(cfg) as sim, connect(sim) as ws:
            await recv(ws)
            assert (await recv(ws))["error"]["code"] == "session_expired"


def _message(role: str, text: str) -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": role, "content": [{"type": kind, "text": text}]},
    }


async def test_record_shows_replayed_history_and_replies_use_it() -> None:
    with trio.fail_after(10):
        async with open_simulator(SimulatorConfig(audio_speedup=0)) as sim, connect(sim) as ws:
            await recv(ws)
            await session_update(ws, output_modalities=["text"])
            # A reconnecting client replays its history.
            for role, text in [
                ("system", "Be brief."),
                ("user", "my name is Ada"),
                ("assistant", "Hello Ada."),
            ]:
                await send(ws, _message(role, text))
                await recv_until(ws, "conversation.item.done")
            await send(ws, user_text("what did I say before?"))
            await send(ws, {"type": "response.create"})
            done = await recv_until(ws, "response.output_text.done")
            assert done["text"] == "Before that you said: my name is Ada."
            await recv_until(ws, "response.done")
            record = sim.sessions[0]
            assert [i["role"] for i in record.received_items()] == [
                "system",
                "user",
                "assistant",
                "user",
            ]
            assert record.history() == [
                ("system", "Be brief."),
                ("user", "my name is Ada"),
                ("assistant", "Hello Ada."),
                ("user", "what did I say before?"),
                ("assistant", "Before that you said: my name is Ada."),
            ]
            assert [i["id"] for i in record.conversation()][-1] == done["item_id"]


async def test_recall_without_history() -> None:
    with trio.fail_after(10):
        async with open_simulator(SimulatorConfig(audio_speedup=0)) as sim, connect(sim) as ws:
            await recv(ws)
            await session_update(ws, output_modalities=["text"])
            await send(ws, user_text("what did I say before?"))
            await send(ws, {"type": "response.create"})
            done = await recv_until(ws, "response.output_text.done")
            assert done["text"] == "You have not said anything before."
            assert sim.sessions[0].history()[0] == ("user", "what did I say before?")
