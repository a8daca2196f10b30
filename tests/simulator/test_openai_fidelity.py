"""Fidelity: the official ``openai`` client drives the simulator, and every v2 event the
simulator sends validates against ``openai.types.realtime.RealtimeServerEvent`` (pydantic
validation, not ``construct``)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pydantic
import trio
from openai import AsyncOpenAI
from openai.types.realtime import RealtimeServerEvent

from duplex.simulator import SimulatorConfig, open_simulator, tone

from ._simhelpers import connect, recv, recv_until, send, send_pcm, silence, user_text

_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RealtimeServerEvent)


def validate(event: dict[str, Any]) -> None:
    parsed = _ADAPTER.validate_python(event)
    assert parsed.type == event["type"]


async def _sdk_conversation(ws_base: str) -> list[dict[str, Any]]:
    """A text turn and an audio turn with the official client; returns every raw event."""
    client = AsyncOpenAI(api_key="sk-test", websocket_base_url=ws_base)
    seen: list[dict[str, Any]] = []
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(
            session={
                "type": "realtime",
                "instructions": "Be brief.",
                "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}},
            }
        )
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hello"}],
            }
        )
        await conn.response.create()
        responses = 0
        sent_audio = False
        async for event in conn:
            seen.append(event.model_dump(mode="json", exclude_unset=True))
            if event.type == "response.done":
                responses += 1
                if responses == 2:
                    break
                if not sent_audio:
                    sent_audio = True
                    pcm = silence(300) + tone(600) + silence(400)
                    for i in range(0, len(pcm), 4800):
                        await conn.input_audio_buffer.append(
                            audio=base64.b64encode(pcm[i : i + 4800]).decode()
                        )
    await client.close()
    return seen


async def test_openai_sdk_text_and_audio_turn() -> None:
    with trio.fail_after(30):
        async with open_simulator() as sim:
            assert sim.base_url is not None
            ws_base = sim.base_url.replace("http://", "ws://")
            seen = await trio.to_thread.run_sync(asyncio.run, _sdk_conversation(ws_base))
            types = [e["type"] for e in seen]
            assert types[0] == "session.created"
            assert "session.updated" in types
            assert types.count("response.done") == 2
            assert "input_audio_buffer.speech_started" in types
            assert "conversation.item.input_audio_transcription.completed" in types
            assert sim.sessions[0].version == "v2"
            for event in seen:
                validate(event)
            recorded = sim.sessions[0].types()
            assert recorded[:3] == ["session.update", "conversation.item.create", "response.create"]
            assert "input_audio_buffer.append" in recorded


async def test_every_v2_event_validates() -> None:
    """Drive every kind of v2 server event over a raw socket and validate each one."""
    events: list[dict[str, Any]] = []
    with trio.fail_after(20):
        async with open_simulator(SimulatorConfig(audio_speedup=0)) as sim:
            await _drive_conversation(sim, events)
            await _drive_transcription(sim, events)
    _check(events)


async def _drive_conversation(sim: Any, events: list[dict[str, Any]]) -> None:
    tool = {
        "type": "function",
        "name": "codex",
        "description": "Delegate.",
        "parameters": {"type": "object", "properties": {"prompt": {"type": "string"}}},
    }
    async with connect(sim) as ws:
        events.append(await recv(ws))
        await send(
            ws,
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "tools": [tool],
                    "audio": {"input": {"transcription": {"model": "whisper-1"}}},
                },
            },
        )
        await recv_until(ws, "session.updated", into=events)
        await send(ws, user_text("hello"))
        await send(ws, {"type": "response.create"})
        await recv_until(ws, "rate_limits.updated", into=events)
        item_id = next(e for e in events if e["type"] == "response.output_item.added")["item"]["id"]
        await send(
            ws,
            {"type": "conversation.item.truncate", "item_id": item_id, "audio_end_ms": 10},
        )
        await recv_until(ws, "conversation.item.truncated", into=events)
        await send(ws, {"type": "conversation.item.retrieve", "item_id": item_id})
        await recv_until(ws, "conversation.item.retrieved", into=events)
        await send(ws, user_text("delegate it"))
        await send(ws, {"type": "response.create"})
        await recv_until(ws, "rate_limits.updated", into=events)
        call = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        await send(
            ws,
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": call["call_id"],
                    "output": "ok",
                },
            },
        )
        await recv_until(ws, "conversation.item.done", into=events)
        await send(
            ws,
            {
                "type": "session.update",
                "session": {"type": "realtime", "output_modalities": ["text"]},
            },
        )
        await recv_until(ws, "session.updated", into=events)
        await send(ws, {"type": "response.create"})
        await recv_until(ws, "rate_limits.updated", into=events)
        await send(
            ws,
            {
                "type": "session.update",
                "session": {"type": "realtime", "output_modalities": ["audio"]},
            },
        )
        await recv_until(ws, "session.updated", into=events)
        await send_pcm(ws, silence(200) + tone(400) + silence(300))
        await recv_until(ws, "response.created", into=events)
        await send(ws, {"type": "response.cancel"})
        await recv_until(ws, "response.done", into=events)
        await send(ws, {"type": "input_audio_buffer.clear"})
        await recv_until(ws, "input_audio_buffer.cleared", into=events)
        await send(ws, {"type": "conversation.item.delete", "item_id": item_id})
        await recv_until(ws, "conversation.item.deleted", into=events)
        await send(ws, {"type": "nope"})
        await recv_until(ws, "error", into=events)


async def _drive_transcription(sim: Any, events: list[dict[str, Any]]) -> None:
    async with connect(sim, "intent=transcription") as ws:
        await send(ws, {"type": "session.update", "session": {"type": "transcription"}})
        await recv_until(ws, "session.updated", into=events)
        await send_pcm(ws, silence(200) + tone(400) + silence(300))
        await recv_until(ws, "conversation.item.input_audio_transcription.completed", into=events)


def _check(events: list[dict[str, Any]]) -> None:
    kinds = {e["type"] for e in events}
    assert {
        "session.created",
        "session.updated",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
        "conversation.item.truncated",
        "conversation.item.retrieved",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_text.delta",
        "response.output_text.done",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.deleted",
        "error",
    } <= kinds
    for event in events:
        validate(event)
    json.dumps(events)  # all plain JSON


async def _sdk_tool_round_trip(ws_base: str) -> list[dict[str, Any]]:
    """The official client declares two tools, gets a parallel call, answers both, and runs an
    out-of-band response; returns every raw event."""
    client = AsyncOpenAI(api_key="sk-test", websocket_base_url=ws_base)
    seen: list[dict[str, Any]] = []
    tools: list[Any] = [
        {"type": "function", "name": n, "description": n, "parameters": {"type": "object"}}
        for n in ("get_weather", "get_time")
    ]
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(
            session={
                "type": "realtime",
                "output_modalities": ["text"],
                "tools": tools,
                "audio": {
                    "input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}
                },
            }
        )
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "call get_weather and get_time"}],
            }
        )
        await conn.response.create()
        stage = 0
        async for event in conn:
            seen.append(event.model_dump(mode="json", exclude_unset=True))
            if event.type != "response.done":
                continue
            stage += 1
            if stage == 1:
                for item in event.response.output or []:
                    assert item.type == "function_call"
                    assert item.call_id is not None
                    await conn.conversation.item.create(
                        item={
                            "type": "function_call_output",
                            "call_id": item.call_id,
                            "output": f"{item.name} ok",
                        }
                    )
                await conn.response.create()
            elif stage == 2:
                await conn.response.create(
                    response={
                        "conversation": "none",
                        "metadata": {"kind": "summary"},
                        "output_modalities": ["text"],
                    }
                )
            else:
                break
    await client.close()
    return seen


async def test_openai_sdk_parallel_tools_and_out_of_band() -> None:
    with trio.fail_after(30):
        async with open_simulator(SimulatorConfig(audio_speedup=0)) as sim:
            assert sim.base_url is not None
            ws_base = sim.base_url.replace("http://", "ws://")
            seen = await trio.to_thread.run_sync(asyncio.run, _sdk_tool_round_trip(ws_base))
    for event in seen:
        validate(event)
    updated = next(e for e in seen if e["type"] == "session.updated")
    td = updated["session"]["audio"]["input"]["turn_detection"]
    assert td["type"] == "semantic_vad"
    assert "threshold" not in td
    calls = [e for e in seen if e["type"] == "response.function_call_arguments.done"]
    assert [c["name"] for c in calls] == ["get_weather", "get_time"]
    texts = [e["text"] for e in seen if e["type"] == "response.output_text.done"]
    assert texts[0] == "get_weather returned get_weather ok. get_time returned get_time ok."
    last_done = [e for e in seen if e["type"] == "response.done"][-1]
    assert last_done["response"]["metadata"] == {"kind": "summary"}
    assert last_done["response"]["conversation_id"] is None


def test_webrtc_and_idle_events_validate() -> None:
    """The events only a WebRTC or idle-timeout session sends, from the sans-IO model."""
    from .test_model_behaviour import _model, advance_until, drain_timed, feed, update, user_text

    events: list[dict[str, Any]] = []
    rtc = _model(webrtc=True)
    update(rtc, audio={"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 500}}})
    events += feed(rtc, user_text("hello"))
    events += feed(rtc, {"type": "response.create"})
    events += [e for _, e in advance_until(rtc, "input_audio_buffer.timeout_triggered")]
    events += feed(rtc, {"type": "response.cancel"}, 100.0)
    events += feed(rtc, {"type": "output_audio_buffer.clear"}, 100.0)
    events += [e for _, e in drain_timed(rtc, 100.0)]
    kinds = {e["type"] for e in events}
    assert {
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "input_audio_buffer.timeout_triggered",
    } <= kinds
    for event in events:
        validate(event)
