"""Handoffs (v1 and v2), steering, the ``remain_silent`` no-op and the single-active-response
queue (codex-realtime.md §7.6–§7.7, §11.2–§11.3)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection

from duplex.engine import (
    ConversationClosed,
    EngineConfig,
    Error,
    HandoffNotActive,
    HandoffRequested,
    NoopRequested,
    OutputTranscriptDone,
    ResponseDone,
    SessionUpdated,
    TranscriptEntry,
)
from duplex.protocol import (
    STEERING_ACK_TEXT,
    HandoffRequested as WireHandoff,
    InputTranscriptDelta,
    OutputTranscriptDelta,
    SessionCreated,
    SessionUpdated as WireSessionUpdated,
)
from duplex.simulator import Scenario, ScenarioStep, open_simulator

from ._engine_helpers import (
    API_KEY,
    Handshake,
    MockServer,
    engine_with_events,
    mock_server,
    of_type,
    raw_of,
    recv_json,
    sim_config,
    wire,
)

FINAL_PREFIX = '"Agent Final Message":\n\n'


def _function_outputs(record: Any) -> list[dict[str, Any]]:
    return [
        raw["item"]
        for raw in raw_of(record, "conversation.item.create")
        if raw["item"]["type"] == "function_call_output"
    ]


async def test_v1_handoff_carries_active_transcript_and_append_reply() -> None:
    """realtime_ws_e2e (v1): input deltas "delegate " + "now", output "working", then a
    handoff → active_transcript [user "delegate now", assistant "working"]; the reply is a
    conversation.handoff.append with the final prefix."""
    server_ref: list[MockServer] = []

    async def handler(ws: WebSocketConnection, shake: Handshake) -> None:
        server = server_ref[0]
        await recv_json(ws, shake, server)
        await ws.send_message(wire(WireSessionUpdated("sess_1", "p"), "v1"))
        for text in (
            wire(InputTranscriptDelta("delegate ", "item_u"), "v1"),
            wire(InputTranscriptDelta("now", "item_u"), "v1"),
            wire(OutputTranscriptDelta("working", "item_a", "resp_1"), "v1"),
            wire(WireHandoff("handoff_1", "item_h", "delegate now"), "v1"),
        ):
            await ws.send_message(text)
        while True:
            await recv_json(ws, shake, server)

    with trio.fail_after(10):
        async with mock_server(handler) as server:
            server_ref.append(server)
            config = EngineConfig(base_url=server.base_url, api_key=API_KEY, version="v1")
            async with engine_with_events(config) as (engine, events):
                await engine.start(prompt="p")
                handoff = (await events.until(of_type(HandoffRequested)))[-1]
                assert handoff.handoff_id == "handoff_1"
                assert handoff.item_id == "item_h"
                assert handoff.input_transcript == "delegate now"
                assert handoff.active_transcript == (
                    TranscriptEntry("user", "delegate now"),
                    TranscriptEntry("assistant", "working"),
                )
                await engine.send_handoff_output("handoff_1", "progress", final=False)
                await engine.send_handoff_output("handoff_1", "all done", final=True)
                with pytest.raises(HandoffNotActive):
                    await engine.send_handoff_output("handoff_1", "again")
                await server.wait(lambda s: len(s.connections[0].messages) >= 3)
            appends = [
                m
                for m in server.connections[0].messages
                if m["type"] == "conversation.handoff.append"
            ]
            assert [a["handoff_id"] for a in appends] == ["handoff_1", "handoff_1"]
            assert appends[0]["output_text"] == "progress"
            assert appends[1]["output_text"] == FINAL_PREFIX + "all done"
            # v1 never asks for a response: the backend takes its own turns.
            assert not any(m["type"] == "response.create" for m in server.connections[0].messages)


async def test_v1_handoff_round_trip_with_simulator() -> None:
    async with open_simulator() as sim:
        with trio.fail_after(10):
            async with engine_with_events(sim_config(sim, version="v1")) as (engine, events):
                await engine.start()
                await engine.send_text("please delegate the build")
                handoff = (await events.until(of_type(HandoffRequested)))[-1]
                assert handoff.input_transcript == "please delegate the build"
                await engine.send_handoff_output(handoff.handoff_id, "build is green")
                done = await events.until(of_type(OutputTranscriptDone))
                assert done[-1].text == "build is green"
            appends = raw_of(sim.sessions[0], "conversation.handoff.append")
            assert [(a["handoff_id"], a["output_text"]) for a in appends] == [
                (handoff.handoff_id, FINAL_PREFIX + "build is green")
            ]


async def test_v2_handoff_progress_final_and_active_transcript() -> None:
    async with open_simulator() as sim:
        with trio.fail_after(15):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                await engine.start()
                await engine.send_text("hello")
                await events.until(of_type(ResponseDone))
                await engine.send_text("please delegate the build")
                handoff = (await events.until(of_type(HandoffRequested)))[-1]
                assert handoff.input_transcript == "please delegate the build"
                assert TranscriptEntry("assistant", "You said: hello.") in handoff.active_transcript
                assert handoff.active_transcript[-1] == TranscriptEntry(
                    "user", "please delegate the build"
                )
                await events.until(of_type(ResponseDone))  # the function-call response
                await engine.send_handoff_output(handoff.handoff_id, "compiling", final=False)
                await engine.send_handoff_output(handoff.handoff_id, "build is green", final=True)
                with pytest.raises(HandoffNotActive):
                    await engine.send_handoff_output(handoff.handoff_id, "again")
                spoken = await events.until(
                    lambda e: isinstance(e, OutputTranscriptDone) and "green" in e.text
                )
                assert spoken[-1].text == "build is green"
                assert not [e for e in events.log if isinstance(e, Error)]
            record = sim.sessions[0]
            items = [raw["item"] for raw in raw_of(record, "conversation.item.create")]
            progress = [i for i in items if i["type"] == "message" and "[BACKEND]" in str(i)]
            assert progress
            assert "compiling" in str(progress[0])
            outputs = _function_outputs(record)
            assert [(o["call_id"], o["output"]) for o in outputs] == [
                (handoff.handoff_id, "build is green")
            ]
            # progress item, final output, then the response.create that speaks it
            types = record.types()
            assert types[-1] == "response.create"
            # two typed turns and the final output ask for a response; progress does not
            assert types.count("response.create") == 3
            tools = raw_of(record, "session.update")[0]["session"]["tools"]
            assert "codex" in [t["name"] for t in tools]


async def test_v2_second_handoff_while_active_gets_steering_ack() -> None:
    async with open_simulator() as sim:
        with trio.fail_after(15):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                await engine.start()
                await engine.send_text("delegate task one")
                first = (await events.until(of_type(HandoffRequested)))[-1]
                await events.until(of_type(ResponseDone))
                await engine.send_text("delegate task two")
                second = (await events.until(of_type(HandoffRequested)))[-1]
                assert second.handoff_id != first.handoff_id
                record = sim.sessions[0]
                await record.wait_for("response.create", 3)
                steer = [o for o in _function_outputs(record) if o["call_id"] == second.handoff_id]
                assert [o["output"] for o in steer] == [STEERING_ACK_TEXT]
                # The steering request is answered by the engine, not the host.
                with pytest.raises(HandoffNotActive):
                    await engine.send_handoff_output(second.handoff_id, "nope")
                # The first handoff is still the active one.
                await engine.send_handoff_output(first.handoff_id, "task one done")
                await events.until(
                    lambda e: isinstance(e, OutputTranscriptDone) and e.text == "task one done"
                )
                assert not [e for e in events.log if isinstance(e, Error)]


async def test_v2_remain_silent_gets_empty_output_and_no_response_create() -> None:
    """realtime_v2_noop_tool_call_returns_empty_function_output_without_response."""
    server_ref: list[MockServer] = []
    call_item = {
        "type": "conversation.item.done",
        "item": {
            "id": "item_silent",
            "type": "function_call",
            "status": "completed",
            "name": "remain_silent",
            "call_id": "call_silent",
            "arguments": "{}",
        },
    }

    async def handler(ws: WebSocketConnection, shake: Handshake) -> None:
        import json

        await ws.send_message(wire(SessionCreated("sess_1")))
        await recv_json(ws, shake, server_ref[0])
        await ws.send_message(json.dumps(call_item))
        await ws.send_message(json.dumps(call_item))  # a duplicate is acted on once
        while True:
            await recv_json(ws, shake, server_ref[0])

    with trio.fail_after(10):
        async with mock_server(handler) as server:
            server_ref.append(server)
            config = EngineConfig(base_url=server.base_url, api_key=API_KEY)
            async with engine_with_events(config) as (engine, events):
                await engine.start()
                noop = (await events.until(of_type(NoopRequested)))[-1]
                assert noop.call_id == "call_silent"
                await server.wait(lambda s: len(s.connections[0].messages) >= 2)
                await events.nothing_for(0.3)
            messages = server.connections[0].messages
            assert [m["type"] for m in messages] == ["session.update", "conversation.item.create"]
            item = messages[1]["item"]
            assert item["type"] == "function_call_output"
            assert (item["call_id"], item["output"]) == ("call_silent", "")
            assert sum(isinstance(e, NoopRequested) for e in events.log) == 1


async def test_response_queue_defers_second_create_until_first_done() -> None:
    async with open_simulator() as sim:
        with trio.fail_after(10):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                await engine.start()
                await engine.send_text("first")
                await engine.send_text("second")
                taken = await events.until(
                    lambda e: isinstance(e, OutputTranscriptDone) and e.text == "You said: second."
                )
                texts = [e.text for e in taken if isinstance(e, OutputTranscriptDone)]
                assert texts == ["You said: first.", "You said: second."]
                assert not [e for e in events.log if isinstance(e, Error)]
            record = sim.sessions[0]
            assert len(record.of_type("response.create")) == 2
            types = record.types()
            # The second response.create went out only after the first response was done.
            assert types.index("response.create") < types.index("conversation.item.create", 2)


async def test_response_queue_recovers_from_active_response_race() -> None:
    """conversation_already_has_active_response: the create is retried after the response
    the server says is active finishes, instead of being lost or killing the session."""
    race = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "code": "conversation_already_has_active_response",
            "message": "Conversation already has an active response in progress: resp_x.",
        },
    }
    response = {"id": "resp_x", "object": "realtime.response", "status": "in_progress"}
    scenario = Scenario(
        steps=(
            ScenarioStep(
                expect="response.create",
                consume=True,
                emit=(
                    race,
                    {"type": "response.created", "response": response},
                    {"type": "response.done", "response": dict(response, status="completed")},
                ),
            ),
        )
    )
    async with open_simulator() as sim:
        sim.add_scenario(scenario)
        with trio.fail_after(10):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                await engine.start()
                await engine.send_text("hi")
                taken = await events.until(of_type(OutputTranscriptDone))
                assert taken[-1].text == "You said: hi."
                errors = [e for e in taken if isinstance(e, Error)]
                assert [e.code for e in errors] == ["conversation_already_has_active_response"]
                assert not errors[0].fatal
                assert engine.statistics().running
            assert len(sim.sessions[0].of_type("response.create")) == 2
            assert not [e for e in events.log if isinstance(e, ConversationClosed)]


async def test_update_prompt_sends_session_update() -> None:
    async with open_simulator() as sim:
        with trio.fail_after(10):
            async with engine_with_events(sim_config(sim, version="v1")) as (engine, events):
                await engine.start(prompt="one")
                await engine.update_prompt("two")
                await events.until(
                    lambda e: isinstance(e, SessionUpdated) and e.instructions == "two"
                )
            updates = raw_of(sim.sessions[0], "session.update")
            assert updates[-1]["session"]["instructions"] == "two"
