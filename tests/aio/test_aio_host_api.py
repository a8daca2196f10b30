"""The issue-13 host API under every asyncio host (``duplex.aio``): the same method names
and the same event-type sequence as the trio host for tools, push-to-talk, interrupt and an
out-of-band response."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from duplex.aio import open_engine as open_aio_engine
from duplex.engine import (
    AudioFrame,
    AudioInterrupted,
    AudioOut,
    ConversationClosed,
    EngineConfig,
    FunctionTool,
    InputAudioCleared,
    InputAudioCommitted,
    McpApprovalRequested,
    McpListToolsCompleted,
    McpTool,
    OutputTranscriptDone,
    ResponseDone,
    SessionConfig,
    SessionUpdated,
    ToolCallNotActive,
    ToolCallRequested,
)
from duplex.simulator import SimulatorConfig

from ._hosts import ALL_HOSTS, Host, SimulatorThread, run_on, simulator_thread, until

TIMEOUT_S = 20
TOOLS = (FunctionTool("get_time"), FunctionTool("get_weather"))
DOCS = McpTool(server_label="docs", server_url="https://mcp.example.test/mcp")
Scenario = Callable[[Host], Awaitable[list[Any]]]


def _types(log: list[Any]) -> list[str]:
    """Without audio and deltas (their count depends on timing), unknown events, rate limits
    (they race the next request) and the truncate acknowledgement (WebSocket only)."""
    hidden = {"AudioOut", "OutputTranscriptDelta", "UnknownEvent", "RateLimitsUpdated"}
    hidden.add("ConversationItemTruncated")
    return [type(e).__name__ for e in log if type(e).__name__ not in hidden]


def _make(server: SimulatorThread) -> Scenario:
    async def scenario(host: Host) -> list[Any]:
        log: list[Any] = []
        config = server.config(tools=TOOLS, session=SessionConfig(turn_detection=None))
        async with host.open_engine(config) as engine:
            events = engine.events()
            await host.within(TIMEOUT_S, engine.start())
            await host.within(TIMEOUT_S, until(events, log, SessionUpdated))
            await engine.send_text("call get_time and get_weather")
            first = await host.within(TIMEOUT_S, until(events, log, ToolCallRequested))
            second = await host.within(TIMEOUT_S, until(events, log, ToolCallRequested))
            await host.within(TIMEOUT_S, until(events, log, ResponseDone))
            await engine.send_tool_output(first.call_id, "12:00")
            await engine.send_tool_output(second.call_id, "sunny")
            with pytest.raises(ToolCallNotActive):
                await engine.send_tool_output(first.call_id, "again")
            done = await host.within(TIMEOUT_S, until(events, log, OutputTranscriptDone))
            assert done.text == "get_time returned 12:00. get_weather returned sunny."
            await host.within(TIMEOUT_S, until(events, log, ResponseDone))

            for _ in range(20):
                engine.send_audio(AudioFrame(b"\x10\x00" * 480, 24000, 1))
            await engine.commit_audio()
            await host.within(TIMEOUT_S, until(events, log, InputAudioCommitted))
            await host.within(TIMEOUT_S, until(events, log, ResponseDone))

            await engine.send_text("tell me a long story " * 40)
            await host.within(TIMEOUT_S, until(events, log, AudioOut))
            await engine.interrupt()
            await host.within(TIMEOUT_S, until(events, log, AudioInterrupted))
            await host.within(TIMEOUT_S, until(events, log, ResponseDone))

            await engine.create_response(conversation="none", output_modalities=("text",))
            await host.within(TIMEOUT_S, until(events, log, ResponseDone))
            # A tool of one response only (given as a generator: read once, in the caller).
            await engine.create_response(
                tools=(t for t in [FunctionTool("lookup_order")]), tool_choice="lookup_order"
            )
            lookup = await host.within(TIMEOUT_S, until(events, log, ToolCallRequested))
            assert lookup.name == "lookup_order"
            await host.within(TIMEOUT_S, until(events, log, ResponseDone))
            await engine.send_tool_output(lookup.call_id, "shipped", respond=False)
            # An MCP server's call, refused.
            await engine.update_session(tools=[*TOOLS, DOCS])
            await host.within(TIMEOUT_S, until(events, log, McpListToolsCompleted))
            await engine.send_text("call search_docs")
            request = await host.within(TIMEOUT_S, until(events, log, McpApprovalRequested))
            await host.within(TIMEOUT_S, until(events, log, ResponseDone))
            await engine.send_mcp_approval(request.item_id, False, reason="not now")
            refused = await host.within(TIMEOUT_S, until(events, log, OutputTranscriptDone))
            assert refused.text == "search_docs was not approved."
            await host.within(TIMEOUT_S, until(events, log, ResponseDone))
            await engine.send_event({"type": "input_audio_buffer.clear"})
            await host.within(TIMEOUT_S, until(events, log, InputAudioCleared))
            assert engine.statistics().raw_events_sent == 1
            await engine.close()
            await host.within(TIMEOUT_S, until(events, log, ConversationClosed))
        return log

    return scenario


def test_host_api_same_events_on_trio_and_asyncio() -> None:
    with simulator_thread(SimulatorConfig(speech_transcript="ok")) as server:
        logs = {host.name: run_on(host, _make(server)) for host in ALL_HOSTS}
    reference = _types(logs["trio"])
    assert "AudioInterrupted" in reference
    for name, log in logs.items():
        assert _types(log) == reference, name


def test_duplex_aio_re_exports_the_engine_names_an_asyncio_host_matches_on() -> None:
    import typing

    import duplex.aio
    import duplex.engine

    for name in (
        "HostEvent",
        "ToolCallRequested",
        "ToolCallNotActive",
        "UnsupportedByDialect",
        "InvalidRequest",
        "FunctionTool",
        "SessionConfig",
    ):
        assert name in duplex.aio.__all__
        assert getattr(duplex.aio, name) is getattr(duplex.engine, name)
    # The stream's items are typed as the engine's event union, so a host's `match` over
    # them is checked by a type checker as it is under trio.
    hints = typing.get_type_hints(duplex.aio.AsyncioEventStream.__anext__)
    assert hints["return"] == duplex.engine.HostEvent


def test_an_unknown_mechanism_is_refused_naming_the_allowed_ones() -> None:
    # "Guest" (any value but "guest") used to run the thread mechanism silently.
    async def scenario() -> None:
        async with asyncio.timeout(TIMEOUT_S):
            with pytest.raises(ValueError, match="'guest' or 'thread', not 'Guest'"):
                async with open_aio_engine(EngineConfig(api_key="sk-test"), mechanism="Guest"):  # type: ignore[arg-type]
                    pass
            assert [t for t in threading.enumerate() if t.name == "duplex-aio-trio"] == []

    asyncio.run(scenario())
