"""Conversation lifecycle, mirroring the Rust original's end-to-end tests
(codex-realtime.md §11.2–§11.3): handshake shapes, start/replace/close, natural ends,
connect failures and the error policy."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection

from duplex.engine import (
    AudioFrame,
    AudioOut,
    ConversationClosed,
    ConversationNotRunning,
    ConversationStarted,
    ConversationStartError,
    EngineConfig,
    Error,
    HandoffNotActive,
    InputTranscriptDone,
    OutputTranscriptDone,
    ReconnectPolicy,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
    UnknownEvent,
    open_engine,
)
from duplex.protocol import SessionUpdated as WireSessionUpdated
from duplex.simulator import (
    FaultConfig,
    Scenario,
    ScenarioStep,
    SimulatorConfig,
    open_simulator,
)
from duplex.transports import ConnectError, Transport

from ._engine_helpers import (
    API_KEY,
    Handshake,
    MemoryServer,
    MockServer,
    closed_events,
    engine_with_events,
    host_events,
    mock_server,
    of_type,
    pcm_frames,
    raw_of,
    recv_json,
    silence,
    sim_config,
    sine,
    wire,
)

FRAME = AudioFrame(b"\x01\x00" * 480, 24000, 1)


# ---- handshake shapes (mock server: it records the request target and headers) ---------


async def test_v1_round_trip_handshake_audio_text_audio_out_and_close() -> None:
    """conversation_start_audio_text_close_round_trip: v1 URL, bearer + x-session-id headers,
    session.create (quicksilver, instructions, voice cove), audio → append, text → item,
    model audio forwarded as AudioOut, close → exactly one Closed("requested")."""
    server_ref: list[MockServer] = []

    async def handler(ws: WebSocketConnection, shake: Handshake) -> None:
        server = server_ref[0]
        await recv_json(ws, shake, server)  # session.create
        await ws.send_message(
            '{"type":"session.created","session":{"id":"sess_1","type":"quicksilver"}}'
        )
        await ws.send_message(wire(WireSessionUpdated("sess_1", "backend prompt"), "v1"))
        seen: set[str] = set()
        while seen != {"input_audio_buffer.append", "conversation.item.create"}:
            seen.add((await recv_json(ws, shake, server))["type"])
        await ws.send_message(
            wire(AudioOut(AudioFrame(b"\x05\x00" * 960, 24000, 1), "item_a", "resp_a"), "v1")
        )
        await trio.sleep_forever()

    with trio.fail_after(10):
        async with mock_server(handler) as server:
            server_ref.append(server)
            config = EngineConfig(
                base_url=server.base_url,
                api_key=API_KEY,
                version="v1",
                model="realtime-test-model",
            )
            async with engine_with_events(config) as (engine, events):
                started = await engine.start(prompt="backend prompt")
                assert started.version == "v1"
                assert started.session_id
                assert (await events.next()) == started
                assert isinstance(await events.next(), SessionCreated)
                updated = await events.next()
                assert updated == SessionUpdated("sess_1", "backend prompt")
                assert engine.send_audio(FRAME) is True
                await engine.send_text("hello agent")
                audio = (await events.until(of_type(AudioOut)))[-1]
                assert audio.frame.pcm == b"\x05\x00" * 960
                assert audio.item_id == "item_a"
                assert await engine.close() is True
                assert await events.next() == ConversationClosed("requested")
                await events.nothing_for(0.2)

            shake = server.connections[0]
            assert shake.path == "/v1/realtime?intent=quicksilver&model=realtime-test-model"
            assert shake.headers["authorization"] == f"Bearer {API_KEY}"
            assert shake.headers["x-session-id"] == started.session_id
            assert shake.headers["openai-alpha"] == "quicksilver=v1"
            first = shake.messages[0]
            assert first["type"] == "session.create"
            session = first["session"]
            assert session["type"] == "quicksilver"
            assert session["instructions"] == "backend prompt"
            assert session["audio"]["output"]["voice"] == "cove"
            assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
            assert "tools" not in session
            kinds = [m["type"] for m in shake.messages[1:]]
            assert sorted(kinds) == ["conversation.item.create", "input_audio_buffer.append"]
            item = next(m for m in shake.messages if m["type"] == "conversation.item.create")
            assert "hello agent" in str(item["item"])


async def test_v2_default_uses_gpt_realtime_1_5_voice_marin_and_codex_tool() -> None:
    """conversation_start_defaults_to_v2_and_gpt_realtime_1_5."""
    server_ref: list[MockServer] = []

    async def handler(ws: WebSocketConnection, shake: Handshake) -> None:
        await ws.send_message(wire(SessionCreated("sess_2")))
        await recv_json(ws, shake, server_ref[0])
        await trio.sleep_forever()

    with trio.fail_after(10):
        async with mock_server(handler) as server:
            server_ref.append(server)
            config = EngineConfig(base_url=server.base_url, api_key=API_KEY)
            async with engine_with_events(config) as (engine, events):
                started = await engine.start(prompt="be brief")
                assert started.version == "v2"
                assert started.transport == "websocket"
                await events.until(of_type(SessionCreated))
                await server.wait(lambda s: bool(s.connections and s.connections[0].messages))
            shake = server.connections[0]
            assert shake.path == "/v1/realtime?model=gpt-realtime-1.5"
            assert "openai-alpha" not in shake.headers
            first = shake.messages[0]
            assert first["type"] == "session.update"
            session = first["session"]
            assert session["type"] == "realtime"
            assert session["instructions"] == "be brief"
            assert session["audio"]["output"]["voice"] == "marin"
            tools = {t["name"]: t for t in session["tools"]}
            assert tools["codex"]["parameters"]["properties"]["prompt"]["type"] == "string"
            assert "remain_silent" in tools
            assert session["tool_choice"] == "auto"


# ---- the simulator as the server --------------------------------------------------------


async def test_v1_session_create_and_event_flow() -> None:
    """realtime_ws_e2e_session_create_and_event_flow: session.create with prompt and
    conversation_id, session.created/updated, spoken input → transcript and model audio."""
    async with open_simulator() as sim:
        with trio.fail_after(15):
            async with engine_with_events(sim_config(sim, version="v1")) as (engine, events):
                await engine.start(prompt="backend prompt", conversation_id="conv_123")
                await events.until(of_type(SessionUpdated))
                for frame in pcm_frames(silence(100) + sine(600) + silence(400)):
                    assert engine.send_audio(frame)
                taken = await events.until(of_type(ResponseDone))
                assert any(isinstance(e, InputTranscriptDone) for e in taken)
                assert any(isinstance(e, AudioOut) for e in taken)
                assert any(isinstance(e, OutputTranscriptDone) for e in taken)
            record = sim.sessions[0]
            create = raw_of(record, "session.create")[0]["session"]
            assert create["instructions"] == "backend prompt"
            assert create["conversation_id"] == "conv_123"
            assert record.of_type("input_audio_buffer.append")
            assert all(e.rejection is None for e in record.events)


async def test_second_start_replaces_first_without_stale_events_or_closed() -> None:
    """conversation_second_start_replaces_runtime, plus the stated improvement: nothing of
    the replaced conversation reaches the host after start() returns."""
    async with open_simulator() as sim:
        with trio.fail_after(15):
            async with open_engine(sim_config(sim)) as engine:
                first = await engine.start(prompt="first prompt")
                # Leave the first conversation's events unread and put more in flight.
                await engine.send_text("hello from the first conversation")
                await sim.sessions[0].wait_for("response.create")
                await sim.sessions[0].wait_for("response.output_audio.delta", sent=True)
                second = await engine.start(prompt="second prompt")
                assert second.session_id != first.session_id
                async with host_events(engine) as events:
                    # The first thing the host sees after the replacing start() is its Started.
                    assert await events.next() == second
                    taken = await events.until(of_type(SessionUpdated))
                    record_2 = sim.sessions[1]
                    for event in taken:
                        if isinstance(event, SessionCreated | SessionUpdated):
                            assert event.session_id == record_2.session_id
                    for frame in pcm_frames(silence(200)):
                        engine.send_audio(frame)
                    await record_2.wait_for("input_audio_buffer.append", 10)
                    await sim.sessions[0].wait_closed()
                    await events.nothing_for(0.3)
                    assert await engine.close()
                    assert await events.next() == ConversationClosed("requested")
            record_1 = sim.sessions[0]
            assert (
                raw_of(record_1, "session.update")[0]["session"]["instructions"] == "first prompt"
            )
            assert (
                raw_of(record_2, "session.update")[0]["session"]["instructions"] == "second prompt"
            )
            assert not record_1.of_type("input_audio_buffer.append")
            assert closed_events(events.log) == [ConversationClosed("requested")]
            assert first not in events.log


async def test_server_close_emits_exactly_one_transport_closed() -> None:
    """conversation_transport_close_emits_closed_event."""
    scenario = Scenario(steps=(ScenarioStep(expect="session.update", close_code=1000),))
    async with open_simulator() as sim:
        sim.add_scenario(scenario)
        with trio.fail_after(10):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                await engine.start()
                taken = await events.until(of_type(ConversationClosed))
                assert taken[-1].reason == "transport_closed"
                assert taken[-1].code == 1000
                await events.nothing_for(0.3)
                with pytest.raises(ConversationNotRunning):
                    await engine.send_text("too late")
                with pytest.raises(ConversationNotRunning):
                    engine.send_audio(FRAME)
                assert await engine.close() is False
                await events.nothing_for(0.1)
            assert len(closed_events(events.log)) == 1


async def test_operations_before_start_raise_not_running() -> None:
    """conversation_audio_before_start / text_before_start: refused, nothing emitted."""
    with trio.fail_after(5):
        async with engine_with_events(EngineConfig(api_key=API_KEY)) as (engine, events):
            with pytest.raises(ConversationNotRunning):
                engine.send_audio(FRAME)
            with pytest.raises(ConversationNotRunning):
                await engine.send_text("hello")
            with pytest.raises(ConversationNotRunning):
                await engine.send_handoff_output("h1", "done")
            with pytest.raises(ConversationNotRunning):
                await engine.update_prompt("new")
            assert await engine.close() is False
            assert engine.statistics().running is False
            await events.nothing_for(0.1)


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_connect_failure_raises_and_emits_no_closed() -> None:
    """conversation_start_connect_failure_emits_realtime_error_only (unreachable port)."""
    with trio.fail_after(10):
        bad = EngineConfig(
            base_url=f"http://127.0.0.1:{_unused_port()}/v1", api_key=API_KEY, connect_timeout=3
        )
        async with engine_with_events(bad) as (engine, events):
            with pytest.raises(ConversationStartError) as info:
                await engine.start()
            assert info.value.status is None
            await events.nothing_for(0.2)
            assert engine.statistics().running is False
            with pytest.raises(ConversationNotRunning):
                await engine.send_text("hello")


async def test_failed_replacing_start_ends_the_old_one_silently_and_engine_recovers() -> None:
    """A start() whose connect fails while another conversation runs: the old one was
    replaced (no Closed), nothing runs, and a later start() works on the same engine."""
    attempts: list[int] = []

    async def flaky(nursery: trio.Nursery) -> Transport:
        attempts.append(1)
        if len(attempts) == 2:
            raise ConnectError("refused (simulated)", status=503)
        return await memory(nursery)

    with trio.fail_after(10):
        async with trio.open_nursery() as peers:
            memory = MemoryServer(peers, lambda _h, _e: [])
            config = EngineConfig(api_key=API_KEY)
            async with engine_with_events(config, transport_factory=flaky) as (engine, events):
                first = await engine.start()
                assert await events.next() == first
                with pytest.raises(ConversationStartError) as info:
                    await engine.start()
                assert info.value.status == 503
                assert engine.statistics().running is False
                with pytest.raises(ConversationNotRunning):
                    await engine.send_text("hello")
                third = await engine.start()
                assert await events.next() == third  # no Closed for the replaced first
                assert await engine.close()
                assert await events.next() == ConversationClosed("requested")
                await events.nothing_for(0.1)
            peers.cancel_scope.cancel()


async def test_http_401_raises_start_error_with_status_and_no_closed() -> None:
    async with open_simulator(SimulatorConfig(api_key="sk-the-right-key-0000")) as sim:
        with trio.fail_after(10):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                with pytest.raises(ConversationStartError) as info:
                    await engine.start()
                assert info.value.status == 401
                assert API_KEY not in str(info.value)
                await events.nothing_for(0.2)
            # A good key on the same engine type works.
            ok = sim_config(sim, api_key="sk-the-right-key-0000")
            async with engine_with_events(ok) as (engine, events):
                await engine.start()
                await events.until(of_type(SessionUpdated))


async def test_fatal_server_error_emits_error_then_closed_error() -> None:
    """session_expired with reconnection off: Error (fatal) then exactly one
    ConversationClosed("error")."""
    faults = FaultConfig(session_max_duration_s=0.3)
    async with open_simulator(SimulatorConfig(faults=faults)) as sim:
        with trio.fail_after(10):
            config = sim_config(sim, reconnect=ReconnectPolicy.disabled())
            async with engine_with_events(config) as (engine, events):
                await engine.start()
                taken = await events.until(of_type(ConversationClosed))
                errors = [e for e in taken if isinstance(e, Error)]
                assert errors
                assert errors[0].code == "session_expired"
                assert errors[0].fatal
                assert taken.index(errors[0]) < len(taken) - 1
                assert taken[-1].reason == "error"
                await events.nothing_for(0.3)
                with pytest.raises(ConversationNotRunning):
                    await engine.send_text("hello")
            assert len(closed_events(events.log)) == 1


async def test_close_code_4000_ends_with_error() -> None:
    faults = FaultConfig(close_after_events=2, close_code=4000, close_reason="beta shape")
    async with open_simulator(SimulatorConfig(faults=faults)) as sim:
        with trio.fail_after(10):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                await engine.start()
                taken = await events.until(of_type(ConversationClosed))
                assert taken[-1].reason == "error"
                assert taken[-1].code == 4000
                assert any(isinstance(e, Error) and e.fatal for e in taken[:-1])
                await events.nothing_for(0.2)
            assert len(closed_events(events.log)) == 1


async def test_dropped_connection_ends_with_error() -> None:
    faults = FaultConfig(drop_after_events=2)
    async with open_simulator(SimulatorConfig(faults=faults)) as sim:
        with trio.fail_after(10):
            async with engine_with_events(
                sim_config(sim, reconnect=ReconnectPolicy.disabled())
            ) as (engine, events):
                await engine.start()
                taken = await events.until(of_type(ConversationClosed))
                assert taken[-1].reason == "error"
                await events.nothing_for(0.2)
            assert len(closed_events(events.log)) == 1


@pytest.mark.parametrize("code", ["response_cancel_not_active", "invalid_value"])
async def test_non_fatal_server_error_keeps_conversation_running(code: str) -> None:
    error: dict[str, Any] = {
        "type": "error",
        "error": {"type": "invalid_request_error", "code": code, "message": "nope"},
    }
    async with open_simulator() as sim:
        sim.add_scenario(Scenario(on_connect=(error,)))
        with trio.fail_after(10):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                await engine.start()
                taken = await events.until(of_type(Error))
                assert taken[-1].code == code
                assert not taken[-1].fatal
                await engine.send_text("still there?")
                done = await events.until(of_type(OutputTranscriptDone))
                assert done[-1].text == "You said: still there?."
                assert engine.statistics().running
            assert closed_events(events.log) == []


async def test_unknown_events_are_counted_not_forwarded_by_default() -> None:
    """realtime_ws_e2e_ignores_unknown_text_events; forwarding is opt-in."""
    odd = {"type": "made.up.event", "x": 1}
    for forward in (False, True):
        async with open_simulator() as sim:
            sim.add_scenario(Scenario(on_connect=(odd,)))
            with trio.fail_after(10):
                config = sim_config(sim, forward_unknown_events=forward)
                async with engine_with_events(config) as (engine, events):
                    await engine.start()
                    await events.until(of_type(SessionUpdated))
                    assert engine.statistics().unknown_events >= 1
                    unknown = [e for e in events.log if isinstance(e, UnknownEvent)]
                    assert [u.type for u in unknown] == (["made.up.event"] if forward else [])


async def test_handoff_output_for_unknown_id_raises() -> None:
    async with open_simulator() as sim:
        with trio.fail_after(10):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                await engine.start()
                with pytest.raises(HandoffNotActive):
                    await engine.send_handoff_output("call_never", "x")
                await engine.update_prompt("new instructions")
                updated = await events.until(
                    lambda e: isinstance(e, SessionUpdated) and e.instructions == "new instructions"
                )
                assert updated


async def test_engine_exit_ends_events_iterator_and_emits_nothing_more() -> None:
    async with open_simulator() as sim:
        with trio.fail_after(10):
            async with open_engine(sim_config(sim)) as engine:
                started = await engine.start()
                assert isinstance(started, ConversationStarted)
            # After open_engine exits, the channel is closed: a new iterator ends at once
            # without yielding a ConversationClosed.
            leftovers = [event async for event in engine.events()]
            assert not any(isinstance(e, ConversationClosed) for e in leftovers)


async def test_a_text_sent_just_before_close_reaches_the_server() -> None:
    """Regression: close() dropped the frames the writer had not sent yet, so a host's last
    send_text (returned, so accepted) could silently never leave; 1 in 50 runs of the
    reconnect property test lost a resumed session's replay this way."""
    async with open_simulator() as sim:
        with trio.fail_after(10):
            async with engine_with_events(sim_config(sim)) as (engine, events):
                await engine.start()
                await events.until(of_type(SessionUpdated))
                await engine.send_text("first of the last words", respond=False)
                await engine.send_text("last words", respond=False)
                assert await engine.close()
            await sim.sessions[0].wait_closed()
        items = raw_of(sim.sessions[0], "conversation.item.create")
        texts = [part["text"] for item in items for part in item["item"]["content"]]
        assert texts == ["first of the last words", "last words"]


async def test_close_and_replace_complete_the_close_handshake_promptly() -> None:
    """Regression: the conversation's transport used to be closed after its reader task had
    been cancelled, so every close()/replacing start() waited the whole close timeout
    (the close handshake could never complete). Now both finish well within it."""
    async with open_simulator() as sim:
        config = sim_config(sim, close_timeout=5.0)
        with trio.fail_after(10):
            async with engine_with_events(config) as (engine, events):
                await engine.start()
                await events.until(of_type(SessionUpdated))
                before = trio.current_time()
                await engine.start()
                await events.until(of_type(SessionUpdated))
                assert await engine.close()
                elapsed = trio.current_time() - before
                assert elapsed < 2.0, elapsed
                await sim.sessions[1].wait_closed()
            assert sim.sessions[0].closed
            assert sim.sessions[1].closed
