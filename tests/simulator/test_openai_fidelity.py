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
