"""Long conversations against the simulator: a drop mid-response and the server's session cap
both end in ``ConversationResumed`` on every transport, and the next turn has the context of
the previous ones (SPEC §3.5, issue 15)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from duplex.engine import (
    ConversationClosed,
    ConversationItemAdded,
    ConversationItemDone,
    ConversationNotRunning,
    ConversationReconnecting,
    ConversationResumed,
    HistoryItem,
    OutputTranscriptDone,
    ReconnectPolicy,
    ResponseDone,
    UnsupportedByDialect,
)
from duplex.simulator import FaultConfig, Scenario, SimulatorConfig, open_simulator

from ._engine_helpers import closed_events, engine_with_events, of_type, sim_config

TRANSPORTS = [
    pytest.param({"transport": "websocket"}, 75, id="websocket"),
    pytest.param({"transport": "webrtc", "webrtc_control": "datachannel"}, 30, id="datachannel"),
    pytest.param({"transport": "webrtc", "webrtc_control": "sideband"}, 30, id="sideband"),
]
FAST = ReconnectPolicy(initial_backoff=0.05, max_backoff=0.2)


def _said(events: list[Any]) -> list[str]:
    return [e.text for e in events if isinstance(e, OutputTranscriptDone)]


def _user_texts(items: list[dict[str, Any]]) -> list[str]:
    return [
        part.get("text", "")
        for item in items
        if item.get("role") == "user"
        for part in item.get("content", ())
    ]


@pytest.mark.parametrize(("transport", "drop_at"), TRANSPORTS)
async def test_a_drop_mid_response_resumes_and_the_next_turn_remembers(
    transport: dict[str, Any], drop_at: int
) -> None:
    async with open_simulator(SimulatorConfig()) as sim:
        # Only the first session fails: the scenario is claimed by the first connection.
        if transport.get("webrtc_control") == "datachannel":
            # A data channel carries no close code: a server that closes it hangs the call
            # up, which ends the conversation. A drop is the call going silent (no DTLS
            # close_notify), noticed by the liveness watch.
            faults = FaultConfig(drop_after_events=drop_at)
            config = sim_config(sim, reconnect=FAST, liveness_timeout=0.5, **transport)
        else:
            faults = FaultConfig(close_after_events=drop_at, close_code=1011)
            config = sim_config(sim, reconnect=FAST, **transport)
        sim.add_scenario(Scenario(faults=faults))
        with trio.fail_after(30):
            async with engine_with_events(config) as (engine, events):
                await engine.start()
                await engine.send_text("my name is Ada")
                await events.until(of_type(ResponseDone))
                await engine.send_text("tell me a long story please")
                taken = await events.until(of_type(ConversationResumed, ConversationClosed))
                assert isinstance(taken[-1], ConversationResumed), taken[-5:]
                reconnecting = [e for e in taken if isinstance(e, ConversationReconnecting)]
                assert [e.attempt for e in reconnecting] == [1]
                if transport.get("webrtc_control") != "datachannel":
                    assert "1011" in reconnecting[0].reason
                else:
                    assert "liveness_timeout" in reconnecting[0].reason
                # The cut response is requested again after the replay.
                await events.until(of_type(ResponseDone))
                await engine.send_text("what did I say")
                answer = await events.until(of_type(ResponseDone))
                assert _said(answer)[-1] == "Before that you said: tell me a long story please."
                assert engine.statistics().reconnects == 1
                history = [(i.role, i.text) for i in engine.history() if i.role == "user"]
                assert history[:3] == [
                    ("user", "my name is Ada"),
                    ("user", "tell me a long story please"),
                    ("user", "what did I say"),
                ]
                assert await engine.close()
                await events.until(of_type(ConversationClosed))
            assert len(closed_events(events.log)) == 1
        assert len(sim.sessions) == 2
        replayed = _user_texts(sim.sessions[1].received_items())
        assert replayed[:2] == ["my name is Ada", "tell me a long story please"]


@pytest.mark.parametrize(
    ("transport", "cap"),
    [
        pytest.param({"transport": "websocket"}, 1.0, id="websocket"),
        pytest.param(
            {"transport": "webrtc", "webrtc_control": "datachannel"}, 4.0, id="datachannel"
        ),
        pytest.param({"transport": "webrtc", "webrtc_control": "sideband"}, 4.0, id="sideband"),
    ],
)
async def test_session_expiry_rotates_to_a_new_session_with_the_history(
    transport: dict[str, Any], cap: float
) -> None:
    async with open_simulator(SimulatorConfig()) as sim:
        sim.add_scenario(Scenario(faults=FaultConfig(session_max_duration_s=cap)))
        config = sim_config(sim, reconnect=FAST, **transport)
        with trio.fail_after(30):
            async with engine_with_events(config) as (engine, events):
                await engine.start()
                await engine.send_text("my name is Ada")
                await events.until(of_type(ResponseDone))
                taken = await events.until(of_type(ConversationResumed, ConversationClosed))
                assert isinstance(taken[-1], ConversationResumed), taken[-5:]
                reasons = [e.reason for e in taken if isinstance(e, ConversationReconnecting)]
                assert reasons == ["session_expired"]
                assert taken[-1].replayed >= 2  # the user item and the assistant's answer
                await engine.send_text("what did I say")
                answer = await events.until(of_type(ResponseDone))
                assert _said(answer)[-1] == "Before that you said: my name is Ada."
                assert await engine.close()
                await events.until(of_type(ConversationClosed))
            assert len(closed_events(events.log)) == 1
        replayed = _user_texts(sim.sessions[1].received_items())
        assert replayed[0] == "my name is Ada"


@pytest.mark.parametrize(
    "transport",
    [
        pytest.param({"transport": "websocket"}, id="websocket"),
        pytest.param({"transport": "webrtc", "webrtc_control": "datachannel"}, id="datachannel"),
    ],
)
async def test_rotation_by_age_waits_for_idle_and_replays(transport: dict[str, Any]) -> None:
    # Idle means the reply is over for the host too: over WebRTC its audio plays on after the
    # server's response.done, and its ResponseDone is held until then (SPEC §3.4).
    policy = ReconnectPolicy(max_session_s=0.5)
    async with open_simulator(SimulatorConfig()) as sim:
        with trio.fail_after(20):
            config = sim_config(sim, reconnect=policy, **transport)
            async with engine_with_events(config) as (engine, events):
                await engine.start()
                await engine.send_text("my name is Ada")
                taken = await events.until(of_type(ConversationResumed))
                kinds = [type(e).__name__ for e in taken]
                # The response finished before the rotation started.
                assert kinds.index("ResponseDone") < kinds.index("ConversationReconnecting")
                assert [e.reason for e in taken if isinstance(e, ConversationReconnecting)] == [
                    "rotation"
                ]
                await engine.send_text("what did I say")
                answer = await events.until(of_type(ResponseDone))
                assert _said(answer)[-1] == "Before that you said: my name is Ada."
        assert _user_texts(sim.sessions[1].received_items())[0] == "my name is Ada"


async def test_seeded_history_reaches_the_session_and_the_model() -> None:
    seed = [
        HistoryItem.user("my favourite colour is teal"),
        HistoryItem.assistant("Noted: teal."),
        HistoryItem.tool_call("call_1", "lookup", '{"q": "teal"}'),
        HistoryItem.tool_output("call_1", '{"hex": "#008080"}'),
    ]
    async with open_simulator(SimulatorConfig()) as sim:
        with trio.fail_after(10):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                await engine.start(prompt="be brief", history=seed)
                await engine.send_text("what did I say")
                answer = await events.until(of_type(ResponseDone))
                assert _said(answer)[-1] == "Before that you said: my favourite colour is teal."
                items = engine.history()
                assert [i.kind for i in items[:4]] == [
                    "message",
                    "message",
                    "function_call",
                    "function_call_output",
                ]
                assert all(i.id for i in items)
                added = await engine.add_item(HistoryItem.system("the user is in Lisbon"))
                assert engine.history()[-1].id == added
                await engine.delete_item(added)
                assert added not in [i.id for i in engine.history()]
        sent = sim.sessions[0].received_items()
        assert [i["type"] for i in sent[:4]] == [
            "message",
            "message",
            "function_call",
            "function_call_output",
        ]


async def test_v1_refuses_history_items_clearly() -> None:
    async with open_simulator(SimulatorConfig()) as sim:
        with trio.fail_after(10):
            async with engine_with_events(sim_config(sim, version="v1")) as (engine, _events):
                with pytest.raises(UnsupportedByDialect, match="conversation_id"):
                    await engine.start(history=[HistoryItem.user("hi")])
                await engine.start()
                with pytest.raises(UnsupportedByDialect):
                    await engine.add_item(HistoryItem.user("hi"))
                with pytest.raises(UnsupportedByDialect):
                    await engine.delete_item("item_1")


async def test_giving_up_emits_one_closed_error_after_the_attempts() -> None:
    policy = ReconnectPolicy(max_attempts=2, initial_backoff=0.05)
    # Every session accepts, then fails at once: each reconnect uses up an attempt.
    faults = FaultConfig(close_after_events=2, close_code=1011)
    async with open_simulator(SimulatorConfig(faults=faults)) as sim:
        with trio.fail_after(10):
            async with engine_with_events(sim_config(sim, reconnect=policy)) as (engine, events):
                await engine.start()
                taken = await events.until(of_type(ConversationClosed))
                attempts = [e.attempt for e in taken if isinstance(e, ConversationReconnecting)]
                assert attempts == [1, 2]
                assert taken[-1].reason == "error"
                await events.nothing_for(0.2)
                with pytest.raises(ConversationNotRunning):
                    await engine.send_text("too late")
            assert len(closed_events(events.log)) == 1


async def test_a_dead_peer_is_noticed_and_the_conversation_resumes() -> None:
    """A hung server (TCP open, nothing answered, pings unanswered): the liveness timeout
    ends the connection and the engine resumes on a new one."""
    async with open_simulator(SimulatorConfig()) as sim:
        sim.add_scenario(Scenario(faults=FaultConfig(silent_after_frames=2)))
        config = sim_config(sim, reconnect=FAST, liveness_timeout=0.5)
        with trio.fail_after(15):
            async with engine_with_events(config) as (engine, events):
                await engine.start()
                await engine.send_text("my name is Ada")
                taken = await events.until(of_type(ConversationResumed, ConversationClosed))
                assert isinstance(taken[-1], ConversationResumed), taken[-5:]
                await events.until(of_type(ResponseDone))  # the unanswered turn, answered
                await engine.send_text("what did I say")
                answer = await events.until(of_type(ResponseDone))
                assert _said(answer)[-1] == "Before that you said: my name is Ada."


async def test_replayed_items_reach_the_host_once_and_re_anchor_notes_never_pile_up() -> None:
    # The server's echoes of replayed items were forwarded (a second ConversationItemAdded and
    # ConversationItemDone for ids the host had seen), and each resume's re-anchor note came
    # back as a new item, was recorded, and was replayed again at the next resume.
    async with open_simulator(SimulatorConfig(audio_speedup=0)) as sim:
        for _ in range(2):
            sim.add_scenario(Scenario(faults=FaultConfig(close_after_events=40, close_code=1011)))
        config = sim_config(sim, reconnect=FAST, transport="websocket")
        with trio.fail_after(30):
            async with engine_with_events(config) as (engine, events):
                await engine.start()
                await engine.send_text("my name is Ada")
                for _ in range(2):
                    await events.until(of_type(ConversationResumed))
                await events.until(of_type(ResponseDone))
                added = [e.item.id for e in events.log if isinstance(e, ConversationItemAdded)]
                done = [e.item_id for e in events.log if isinstance(e, ConversationItemDone)]
                assert len(added) == len(set(added))
                assert len(done) == len(set(done))
                assert [i for i in engine.history() if i.role == "system"] == []
                await engine.close()
    notes = [
        text
        for session in sim.sessions
        for item in session.received_items()
        if item.get("role") == "system"
        for text in (p.get("text") for p in item.get("content", ()))
    ]
    assert len(notes) == 2  # one per resume, none replayed again
