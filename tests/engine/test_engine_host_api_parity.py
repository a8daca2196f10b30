"""Parity of the full host API (issue 13) on WebSocket v2, WebRTC data channel and sideband.

One scripted host: registers two function tools and turns turn detection off; asks for both
tools (a parallel pair) and answers both; pushes to talk (``commit_audio``); interrupts a long
answer; runs an out-of-band text response. Every transport must give the host the same
sequence of event types, the same tool calls and the same transcripts.

What is compared: the host-visible event types without ``AudioOut`` (compared elsewhere by
duration), ``UnknownEvent`` and the streamed deltas (``OutputTranscriptDelta``/
``InputTranscriptDelta``: how many deltas an *interrupted* response streamed before the cancel
depends on timing), and without ``ConversationItemTruncated``: on WebSocket the engine's
truncate is acknowledged by that server event, on WebRTC the server truncates by itself when
its playout buffer is cleared and sends none (the transport-neutral signal for the host is
``AudioInterrupted``, which all three emit).
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from duplex.engine import (
    AudioInterrupted,
    AudioOut,
    ConversationClosed,
    ConversationItemTruncated,
    Engine,
    Error,
    FunctionTool,
    InputAudioCommitted,
    InputTranscriptDelta,
    InputTranscriptDone,
    McpApprovalRequested,
    McpListToolsCompleted,
    McpTool,
    OutputAudioDone,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    RateLimitsUpdated,
    ResponseCreated,
    ResponseDone,
    SessionConfig,
    SessionUpdated,
    ToolCallNotActive,
    ToolCallRequested,
    UnknownEvent,
)
from duplex.simulator import Simulator, SimulatorConfig, open_simulator

from ._engine_helpers import HostEvents, engine_with_events, of_type, pcm_frames, sim_config, sine

TOOLS = (
    FunctionTool(
        "get_time",
        "The current time.",
        {"type": "object", "properties": {"zone": {"type": "string"}}},
    ),
    FunctionTool("get_weather", "The weather.", {"type": "object", "properties": {}}),
)
# Its tools run on the server; the simulator's MCP servers offer "search_docs". Declared by a
# session update: one declared at the start is listed when a WebRTC call is created, before
# the handshake's SessionUpdated, but after it on a WebSocket.
DOCS = McpTool(server_label="docs", server_url="https://mcp.example.test/mcp")
# Declared by one response only (create_response(tools=...)), never by the session.
LOOKUP = FunctionTool("lookup_order", "An order's state.", {"type": "object", "properties": {}})
LONG_TEXT = "please tell me a very long story about " + "the sea and the ships " * 60

# OutputAudioDone and RateLimitsUpdated: their place relative to the transcript events follows
# the audio (on WebRTC an item's audio ends when its playout ends, after its transcript); the
# audio contract itself (OutputAudioDone after the item's last AudioOut, ResponseDone after the
# response's) is checked on every transport by test_engine_host_parity.py.
_HIDDEN = (
    AudioOut,
    UnknownEvent,
    OutputTranscriptDelta,
    InputTranscriptDelta,
    OutputAudioDone,
    RateLimitsUpdated,
)


@attrs.define
class Run:
    log: list[Any] = attrs.field(factory=list)
    calls: list[tuple[str, str]] = attrs.field(factory=list)
    client_types: list[str] = attrs.field(factory=list)
    raw_sent: int = 0


def _types(log: list[Any]) -> list[str]:
    return [
        type(e).__name__
        for e in log
        if not isinstance(e, _HIDDEN) and not isinstance(e, ConversationItemTruncated)
    ]


async def _response_finished(events: HostEvents, *, rate_limits: bool = True) -> ResponseDone:
    # Every completed response is followed by rate_limits.updated from the server; on WebRTC
    # the engine holds ResponseDone until the reply's audio is out, so the two may come in
    # either order.
    taken = await events.until(of_type(ResponseDone))
    if rate_limits and not any(isinstance(e, RateLimitsUpdated) for e in taken):
        await events.until(of_type(RateLimitsUpdated))
    done = taken[-1]
    assert isinstance(done, ResponseDone)
    return done


async def _host(engine: Engine, events: HostEvents, run: Run) -> None:
    await engine.start(prompt="parity of the host api")
    await events.until(of_type(SessionUpdated))

    # 1. Two tools called in parallel; both answered: one response speaks both results.
    await engine.send_text("call get_time and get_weather")
    await _response_finished(events)
    calls = [e for e in events.log if isinstance(e, ToolCallRequested)]
    assert len(calls) == 2
    assert calls[0].response_id is not None
    assert calls[0].response_id == calls[1].response_id
    run.calls = [(c.name, c.arguments) for c in calls]
    await engine.send_tool_output(calls[0].call_id, "12:00")
    await engine.send_tool_output(calls[1].call_id, "sunny")
    try:
        await engine.send_tool_output(calls[0].call_id, "twice")
    except ToolCallNotActive:
        pass
    else:
        raise AssertionError("a second answer must be refused")
    await _response_finished(events)

    # 2. Push-to-talk with turn detection off: audio, then commit_audio.
    for frame in pcm_frames(sine(600, amplitude=9000)):
        engine.send_audio(frame)
        await trio.sleep(0.02)  # a live microphone; WebRTC's outbound track is real time
    await engine.commit_audio()
    await events.until(of_type(InputAudioCommitted))
    await _response_finished(events)

    # 3. A long answer, interrupted once its audio is flowing.
    await engine.send_text(LONG_TEXT)
    delta = (await events.until(of_type(OutputTranscriptDelta)))[-1]
    await events.until(lambda e: isinstance(e, AudioOut) and e.item_id == delta.item_id)
    await engine.interrupt()
    await events.until(of_type(AudioInterrupted))
    done = await _response_finished(events, rate_limits=False)
    assert done.status == "cancelled"

    # 4. An out-of-band text response beside the conversation.
    await engine.create_response(
        conversation="none",
        instructions="summarize",
        metadata={"purpose": "summary"},
        output_modalities=("text",),
    )
    created = (await events.until(of_type(ResponseCreated)))[-1]
    assert created.metadata == {"purpose": "summary"}  # how a host tells it apart
    done = await _response_finished(events)
    assert done.response_id == created.response_id
    assert done.metadata == {"purpose": "summary"}

    # 5. A response limited to one token stops short, and says why.
    await engine.create_response(
        max_output_tokens=1, tool_choice="none", output_modalities=("text",)
    )
    done = await _response_finished(events)
    assert (done.status, done.reason) == ("incomplete", "max_output_tokens")

    # 6. A response with a tool of its own (the session does not declare it) and its own
    # voice: the call is a ToolCallRequested like any other, answered the same way.
    await engine.create_response(tools=[LOOKUP], tool_choice="lookup_order", voice="cedar")
    await _response_finished(events)
    lookup = [e for e in events.log if isinstance(e, ToolCallRequested)][-1]
    assert lookup.name == "lookup_order"
    await engine.send_tool_output(lookup.call_id, "shipped")
    await _response_finished(events)

    # 7. An MCP server's call waits for the host's approval, then runs on the server.
    await engine.update_session(tools=[*TOOLS, DOCS])
    await events.until(of_type(McpListToolsCompleted))
    await engine.send_text("call search_docs")
    request = (await events.until(of_type(McpApprovalRequested)))[-1]
    assert (request.server_label, request.name) == ("docs", "search_docs")
    await _response_finished(events)
    await engine.send_mcp_approval(request.item_id, True)
    try:
        await engine.send_mcp_approval(request.item_id, True)
    except ToolCallNotActive:
        pass
    else:
        raise AssertionError("a second answer must be refused")
    await _response_finished(events)

    stats = engine.statistics()
    assert stats.usage.responses >= 5
    assert stats.usage.input_tokens > 0
    assert stats.latency.responses >= 2
    assert await engine.close()
    await events.until(of_type(ConversationClosed))
    run.log = list(events.log)


async def _run(sim: Simulator, transport: str, control: str, run: Run) -> None:
    config = sim_config(
        sim,
        transport=transport,
        webrtc_control=control,
        tools=TOOLS,
        session=SessionConfig(turn_detection=None),
    )
    async with engine_with_events(config) as (engine, events):
        try:
            await _host(engine, events, run)
        finally:
            run.log = list(events.log)


async def test_tools_push_to_talk_interrupt_and_out_of_band_look_the_same_everywhere() -> None:
    runs = {name: Run() for name in ("websocket", "datachannel", "sideband")}
    async with open_simulator(SimulatorConfig(speech_transcript="ok")) as sim:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_run, sim, "websocket", "datachannel", runs["websocket"])
                nursery.start_soon(_run, sim, "webrtc", "datachannel", runs["datachannel"])
                nursery.start_soon(_run, sim, "webrtc", "sideband", runs["sideband"])
        records = {r.transport: r for r in sim.sessions}
        assert set(records) == {"websocket", "webrtc"}
        voices = [
            e.raw["response"].get("audio")
            for r in sim.sessions
            for e in r.of_type("response.create")
            if e.raw is not None and isinstance(e.raw.get("response"), dict)
        ]
        assert voices.count({"output": {"voice": "cedar"}}) == 3  # one per run

    reference = runs["websocket"]
    texts = [e.text for e in reference.log if isinstance(e, OutputTranscriptDone)]
    assert texts[0] == "get_time returned 12:00. get_weather returned sunny."
    assert texts[1] == "You said: ok."
    assert [e.text for e in reference.log if isinstance(e, InputTranscriptDone)] == ["ok"]
    assert reference.calls == [("get_time", "{}"), ("get_weather", "{}")]
    assert texts[-2:] == [
        "lookup_order returned shipped.",
        "search_docs returned 3 pages about trio.",
    ]
    assert not [e for e in reference.log if isinstance(e, Error)]
    for name, run in runs.items():
        assert _types(run.log) == _types(reference.log), name
        assert run.calls == reference.calls, name
        got = [e.text for e in run.log if isinstance(e, OutputTranscriptDone)]
        # The interrupted answer's text depends on when the cancel landed: compare the rest.
        assert got[:2] == texts[:2], name
        assert got[3:] == texts[3:], name
