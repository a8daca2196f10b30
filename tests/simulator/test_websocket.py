"""The simulator over WebSocket: handshakes, turns, handoffs, VAD, strictness rules."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import trio

from duplex.simulator import SimulatorConfig, open_simulator, synthesize, tone

from .._support import wait_until
from ._simhelpers import (
    close_code,
    connect,
    recv,
    recv_until,
    send,
    send_pcm,
    session_update,
    silence,
    user_text,
)

GA_TEXT_TURN = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
]
GA_AUDIO_TAIL = [
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
    "rate_limits.updated",
]


def _strip_stream(types: list[str]) -> list[str]:
    streamed = {"response.output_audio.delta", "response.output_audio_transcript.delta"}
    return [t for t in types if t not in streamed]


async def test_v2_text_turn_full_sequence() -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim, connect(sim) as ws:
            created = await recv(ws)
            assert created["type"] == "session.created"
            assert created["session"]["type"] == "realtime"
            assert created["event_id"].startswith("event_")
            assert len(created["event_id"]) == 27
            updated = await session_update(ws, instructions="be brief")
            assert updated["session"]["instructions"] == "be brief"
            await send(ws, user_text("hello"))
            await send(ws, {"type": "response.create"})
            events: list[dict[str, Any]] = []
            await recv_until(ws, "rate_limits.updated", into=events)
            types = _strip_stream([e["type"] for e in events])
            assert types == [
                "conversation.item.added",
                "conversation.item.done",
                *GA_TEXT_TURN,
                *GA_AUDIO_TAIL,
            ]
            deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
            pcm = b"".join(base64.b64decode(e["delta"]) for e in deltas)
            assert pcm == synthesize("You said: hello.")
            assert all(len(base64.b64decode(e["delta"])) <= 24 * 2 * 100 for e in deltas)
            transcript = "".join(
                e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"
            )
            assert transcript == "You said: hello."
            done = next(e for e in events if e["type"] == "response.done")
            assert done["response"]["status"] == "completed"
            assert done["response"]["usage"]["total_tokens"] > 0
            rec = sim.sessions[0]
            assert rec.types() == ["session.update", "conversation.item.create", "response.create"]


async def test_v2_text_modality() -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim, connect(sim) as ws:
            await recv(ws)
            await session_update(ws, output_modalities=["text"])
            await send(ws, user_text("hi there"))
            await send(ws, {"type": "response.create"})
            events: list[dict[str, Any]] = []
            await recv_until(ws, "response.done", into=events)
            types = [e["type"] for e in events]
            assert "response.output_audio.delta" not in types
            text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
            assert text == "You said: hi there."
            done = next(e for e in events if e["type"] == "response.output_text.done")
            assert done["text"] == text


async def test_v2_handoff_function_call_and_followup() -> None:
    tool = {
        "type": "function",
        "name": "codex",
        "description": "Delegate.",
        "parameters": {"type": "object", "properties": {"prompt": {"type": "string"}}},
    }
    with trio.fail_after(10):
        async with open_simulator() as sim, connect(sim) as ws:
            await recv(ws)
            await session_update(ws, tools=[tool], tool_choice="auto")
            await send(ws, user_text("please delegate the build"))
            await send(ws, {"type": "response.create"})
            events: list[dict[str, Any]] = []
            await recv_until(ws, "rate_limits.updated", into=events)
            types = [e["type"] for e in events]
            assert types[2:] == [
                "response.created",
                "response.output_item.added",
                "conversation.item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "conversation.item.done",
                "response.done",
                "rate_limits.updated",
            ]
            item = events[-4]["item"]
            assert item["type"] == "function_call"
            assert item["name"] == "codex"
            assert json.loads(item["arguments"]) == {"prompt": "please delegate the build"}
            await send(
                ws,
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "function_call_output",
                        "call_id": item["call_id"],
                        "output": "build is green",
                    },
                },
            )
            await send(ws, {"type": "response.create"})
            done = await recv_until(ws, "response.output_audio_transcript.done")
            assert done["transcript"] == "build is green"
            assert sim.sessions[0].of_type("conversation.item.create")[1].raw is not None


async def test_v2_server_vad_turn_and_interrupt() -> None:
    with trio.fail_after(10):
        async with (
            open_simulator(SimulatorConfig(speech_transcript="hello there")) as sim,
            connect(sim) as ws,
        ):
            await recv(ws)
            await session_update(
                ws, audio={"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}}
            )
            await send_pcm(ws, silence(500) + tone(800) + silence(400))
            events: list[dict[str, Any]] = []
            await recv_until(ws, "response.created", into=events)
            types = [e["type"] for e in events]
            assert types == [
                "input_audio_buffer.speech_started",
                "input_audio_buffer.speech_stopped",
                "input_audio_buffer.committed",
                "conversation.item.added",
                "conversation.item.done",
                "conversation.item.input_audio_transcription.delta",
                "conversation.item.input_audio_transcription.completed",
                "response.created",
            ]
            assert events[0]["audio_start_ms"] == 500 - 300
            assert events[1]["audio_end_ms"] == 1300 + 200
            assert events[0]["item_id"] == events[2]["item_id"] == events[3]["item"]["id"]
            assert events[6]["transcript"] == "hello there"
            # Barge in while the reply streams: the response is cancelled (turn_detected).
            await send_pcm(ws, tone(300))
            cancel: list[dict[str, Any]] = []
            done = await recv_until(ws, "response.done", into=cancel)
            assert "input_audio_buffer.speech_started" in [e["type"] for e in cancel]
            assert done["response"]["status"] == "cancelled"
            assert done["response"]["status_details"]["reason"] == "turn_detected"


async def test_v2_manual_commit_and_clear() -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim, connect(sim) as ws:
            await recv(ws)
            await session_update(ws, audio={"input": {"turn_detection": None}})
            await send_pcm(ws, tone(300))
            await send(ws, {"type": "input_audio_buffer.commit"})
            committed = await recv(ws)
            assert committed["type"] == "input_audio_buffer.committed"
            await send(ws, {"type": "input_audio_buffer.clear"})
            assert (await recv_until(ws, "input_audio_buffer.cleared"))["type"]


async def test_v1_handshake_turn_and_handoff() -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim, connect(sim, "intent=quicksilver&model=m") as ws:
            await send(
                ws,
                {
                    "type": "session.create",
                    "session": {
                        "type": "quicksilver",
                        "instructions": "backend prompt",
                        "conversation_id": "conv_1",
                        "audio": {
                            "input": {"format": {"type": "audio/pcm", "rate": 24000}},
                            "output": {"voice": "cove"},
                        },
                    },
                },
            )
            assert (await recv(ws))["type"] == "session.created"
            updated = await recv(ws)
            assert updated["type"] == "session.updated"
            assert updated["session"]["instructions"] == "backend prompt"
            assert updated["session"]["id"].startswith("sess_")
            await send(ws, user_text("hello"))
            events: list[dict[str, Any]] = []
            await recv_until(ws, "response.done", into=events)
            audio = [e for e in events if e["type"] == "conversation.output_audio.delta"]
            assert audio
            assert all(e["sample_rate"] == 24000 and e["channels"] == 1 for e in audio)
            assert any(e["type"] == "conversation.output_transcript.delta" for e in events)
            assert "response.output_audio.delta" not in [e["type"] for e in events]
            # Handoff
            await send(ws, user_text("delegate this to the agent"))
            handoff = await recv_until(ws, "conversation.handoff.requested")
            assert set(handoff) >= {"handoff_id", "item_id", "input_transcript"}
            assert handoff["input_transcript"] == "delegate this to the agent"
            await recv_until(ws, "response.done")
            await send(
                ws,
                {
                    "type": "conversation.handoff.append",
                    "handoff_id": handoff["handoff_id"],
                    "output_text": '"Agent Final Message":\n\nall done',
                },
            )
            done = await recv_until(ws, "response.output_audio_transcript.done")
            assert done["transcript"] == "all done"


@pytest.mark.parametrize("dialect", ["v1", "v2"])
async def test_transcription_session_dialect_from_first_event(dialect: str) -> None:
    first: dict[str, Any]
    if dialect == "v1":
        first = {"type": "session.create", "session": {"type": "transcription"}}
    else:
        first = {"type": "session.update", "session": {"type": "transcription"}}
    with trio.fail_after(10):
        async with open_simulator() as sim, connect(sim, "intent=transcription") as ws:
            await send(ws, first)
            created = await recv(ws)
            assert created["type"] == "session.created"
            assert created["session"]["type"] == "transcription"
            await recv_until(ws, "session.updated")
            await send_pcm(ws, silence(300) + tone(500) + silence(400))
            events: list[dict[str, Any]] = []
            await recv_until(
                ws, "conversation.item.input_audio_transcription.completed", into=events
            )
            types = [e["type"] for e in events]
            assert "response.created" not in types
            assert sim.sessions[0].version == dialect
            # Nothing else follows: no response in a transcription session.
            with trio.move_on_after(0.3):
                extra = await recv(ws)
                raise AssertionError(f"unexpected {extra['type']}")


async def test_transcription_session_defaults_to_v2_when_client_waits() -> None:
    cfg = SimulatorConfig(transcription_dialect_grace_s=0.1)
    with trio.fail_after(10):
        async with open_simulator(cfg) as sim, connect(sim, "intent=transcription") as ws:
            created = await recv(ws)
            assert created["type"] == "session.created"
            assert sim.sessions[0].version == "v2"


# ---------------------------------------------------------------- strictness


async def _error_for(
    events: list[dict[str, Any]], *, config: SimulatorConfig | None = None, query: str = "model=m"
) -> dict[str, Any]:
    async with open_simulator(config) as sim, connect(sim, query) as ws:
        await recv(ws)
        for event in events:
            await send(ws, event)
        error = await recv_until(ws, "error")
        # The connection stays up after a recoverable error.
        await send(ws, {"type": "input_audio_buffer.clear"})
        assert (await recv_until(ws, "input_audio_buffer.cleared"))["type"]
        return error


async def test_unknown_event_type_is_invalid_value() -> None:
    with trio.fail_after(10):
        error = await _error_for([{"type": "scooby.dooby.doo", "event_id": "evt_1"}])
        assert error["error"]["code"] == "invalid_value"
        assert error["error"]["param"] == "type"
        assert error["error"]["event_id"] == "evt_1"
        assert error["error"]["type"] == "invalid_request_error"
        assert "'scooby.dooby.doo'" in error["error"]["message"]


async def test_missing_type_is_invalid_event() -> None:
    with trio.fail_after(10):
        error = await _error_for([{"event_id": "evt_2"}])
        assert error["error"]["code"] == "invalid_event"
        assert error["error"]["message"] == "The 'type' field is missing."
        assert error["error"]["event_id"] == "evt_2"


async def test_session_create_on_v2_is_unknown() -> None:
    with trio.fail_after(10):
        error = await _error_for([{"type": "session.create", "session": {"type": "realtime"}}])
        assert error["error"]["code"] == "invalid_value"


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"type": "realtime", "input_audio_format": "pcm16"}, "session.input_audio_format"),
        ({"type": "realtime", "voice": "alloy"}, "session.voice"),
        ({"type": "realtime", "bogus": 1}, "session.bogus"),
    ],
)
async def test_unknown_session_parameter(session: dict[str, Any], param: str) -> None:
    with trio.fail_after(10):
        error = await _error_for([{"type": "session.update", "session": session}])
        assert error["error"]["code"] == "unknown_parameter"
        assert error["error"]["param"] == param
        assert error["error"]["message"] == f"Unknown parameter: '{param}'."


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        (
            {
                "type": "realtime",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
            },
            "invalid_value",
            "session.audio.input.format.rate",
        ),
        (
            {"type": "realtime", "audio": {"output": {"speed": 3.0}}},
            "decimal_above_max_value",
            "session.audio.output.speed",
        ),
    ],
)
async def test_a_session_value_the_api_refuses_is_refused(
    session: dict[str, Any], code: str, param: str
) -> None:
    """Regression (review): the simulator echoed any value in session.updated (a 16 kHz
    input format, speed 3.0), so a misconfigured client passed here and failed on the API."""
    with trio.fail_after(10):
        error = await _error_for([{"type": "session.update", "session": session, "event_id": "e1"}])
        assert (error["error"]["code"], error["error"]["param"]) == (code, param)
        assert error["error"]["event_id"] == "e1"


async def test_beta_response_field_is_unknown_parameter() -> None:
    with trio.fail_after(10):
        error = await _error_for(
            [user_text("x"), {"type": "response.create", "response": {"modalities": ["text"]}}]
        )
        assert error["error"]["code"] == "unknown_parameter"
        assert error["error"]["param"] == "response.modalities"


async def test_missing_session_type() -> None:
    with trio.fail_after(10):
        error = await _error_for([{"type": "session.update", "session": {"instructions": "x"}}])
        assert error["error"]["code"] == "missing_required_parameter"
        assert error["error"]["param"] == "session.type"


async def test_commit_under_100ms() -> None:
    with trio.fail_after(10):
        error = await _error_for(
            [
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(tone(50)).decode()},
                {"type": "input_audio_buffer.commit", "event_id": "c1"},
            ]
        )
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"
        assert "buffer only has 50.00ms" in error["error"]["message"]
        assert error["error"]["event_id"] == "c1"


async def test_one_active_response() -> None:
    with trio.fail_after(10):
        async with open_simulator(SimulatorConfig(audio_speedup=2.0)) as sim, connect(sim) as ws:
            await recv(ws)
            await send(ws, user_text("a long enough answer please"))
            await send(ws, {"type": "response.create"})
            created = await recv_until(ws, "response.created")
            rid = created["response"]["id"]
            await send(ws, {"type": "response.create", "event_id": "second"})
            error = await recv_until(ws, "error")
            assert error["error"]["code"] == "conversation_already_has_active_response"
            assert error["error"]["message"] == (
                f"Conversation already has an active response in progress: {rid}. Wait until "
                "the response is finished before creating a new one."
            )
            await send(ws, {"type": "response.cancel"})
            done = await recv_until(ws, "response.done")
            assert done["response"]["status"] == "cancelled"
            assert done["response"]["status_details"]["reason"] == "client_cancelled"


async def test_cancel_with_nothing_active() -> None:
    with trio.fail_after(10):
        error = await _error_for([{"type": "response.cancel"}])
        assert error["error"]["code"] == "response_cancel_not_active"


async def test_truncate_bounds_and_voice_lock() -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim, connect(sim) as ws:
            await recv(ws)
            await send(ws, user_text("hello"))
            await send(ws, {"type": "response.create"})
            events: list[dict[str, Any]] = []
            await recv_until(ws, "response.done", into=events)
            item_id = next(e for e in events if e["type"] == "response.output_item.added")["item"][
                "id"
            ]
            audio_ms = len(synthesize("You said: hello.")) * 1000 // 48000
            await send(
                ws,
                {
                    "type": "conversation.item.truncate",
                    "item_id": item_id,
                    "content_index": 0,
                    "audio_end_ms": audio_ms + 500,
                },
            )
            error = await recv_until(ws, "error")
            assert error["error"]["code"] == "invalid_value"
            assert error["error"]["param"] == "audio_end_ms"
            await send(
                ws,
                {
                    "type": "conversation.item.truncate",
                    "item_id": item_id,
                    "content_index": 0,
                    "audio_end_ms": 100,
                },
            )
            truncated = await recv_until(ws, "conversation.item.truncated")
            assert truncated["audio_end_ms"] == 100
            user_item = events[0]["item"]["id"]
            await send(
                ws,
                {"type": "conversation.item.truncate", "item_id": user_item, "audio_end_ms": 0},
            )
            assert (await recv_until(ws, "error"))["error"]["param"] == "item_id"
            await send(
                ws,
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "audio": {"output": {"voice": "ash"}}},
                },
            )
            error = await recv_until(ws, "error")
            assert error["error"]["code"] == "cannot_update_voice"


async def test_append_over_15_mib() -> None:
    pcm = b"\x01\x00" * (8 * 1024 * 1024)  # 16 MiB of PCM
    with trio.fail_after(20):
        async with open_simulator() as sim, connect(sim) as ws:
            await recv(ws)
            await send(
                ws, {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
            )
            error = await recv_until(ws, "error")
            assert error["error"]["code"] == "string_above_max_length"
            assert error["error"]["param"] == "audio"


async def test_model_change_rejected_and_item_ops() -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim, connect(sim, "model=gpt-realtime") as ws:
            await recv(ws)
            await send(
                ws, {"type": "session.update", "session": {"type": "realtime", "model": "other"}}
            )
            assert (await recv_until(ws, "error"))["error"]["param"] == "session.model"
            await send(ws, user_text("x"))
            added = await recv_until(ws, "conversation.item.added")
            item_id = added["item"]["id"]
            await send(ws, {"type": "conversation.item.retrieve", "item_id": item_id})
            assert (await recv_until(ws, "conversation.item.retrieved"))["item"]["id"] == item_id
            await send(ws, {"type": "conversation.item.delete", "item_id": item_id})
            assert (await recv_until(ws, "conversation.item.deleted"))["item_id"] == item_id
            await send(ws, {"type": "conversation.item.delete", "item_id": item_id})
            assert (await recv_until(ws, "error"))["error"]["code"] == "item_not_found"


async def test_auth_required_and_checked() -> None:
    from trio_websocket import ConnectionRejected

    with trio.fail_after(10):
        async with open_simulator(SimulatorConfig(api_key="sk-right")) as sim:
            with pytest.raises(ConnectionRejected) as info:
                async with connect(sim, headers=[]):
                    pass
            assert info.value.status_code == 401
            with pytest.raises(ConnectionRejected) as info:
                async with connect(sim, headers=[("Authorization", "Bearer sk-wrong")]):
                    pass
            assert info.value.status_code == 401
            assert info.value.body is not None
            assert json.loads(info.value.body)["error"]["code"] == "invalid_api_key"
            async with connect(sim, headers=[("Authorization", "Bearer sk-right")]) as ws:
                assert (await recv(ws))["type"] == "session.created"


async def test_beta_header_is_rejected_as_the_ga_server_does() -> None:
    from trio_websocket import ConnectionClosed

    with trio.fail_after(10):
        async with open_simulator() as sim:
            headers = [("Authorization", "Bearer sk"), ("OpenAI-Beta", "realtime=v1")]
            async with connect(sim, headers=headers) as ws:
                error = await recv(ws)
                assert error["error"]["code"] == "beta_api_shape_disabled"
                with pytest.raises(ConnectionClosed) as info:
                    await recv(ws)
                assert close_code(info.value) == 4000


async def _deflate_answer(url: str) -> str | None:
    import websockets

    async with websockets.connect(url, additional_headers={"Authorization": "Bearer k"}) as ws:
        await ws.recv()
        assert ws.response is not None
        return ws.response.headers.get("sec-websocket-extensions")


@pytest.mark.parametrize("compression", [False, True])
async def test_permessage_deflate_only_when_enabled(compression: bool) -> None:
    import asyncio

    with trio.fail_after(10):
        async with open_simulator(SimulatorConfig(websocket_compression=compression)) as sim:
            assert sim.base_url is not None
            url = sim.base_url.replace("http://", "ws://") + "/realtime?model=m"
            answer = await trio.to_thread.run_sync(asyncio.run, _deflate_answer(url))
            assert (answer is not None) == compression


async def test_browser_subprotocol_auth() -> None:
    from trio_websocket import open_websocket_url

    with trio.fail_after(10):
        async with open_simulator(SimulatorConfig(api_key="sk-server")) as sim:
            assert sim.base_url is not None
            url = sim.base_url.replace("http://", "ws://") + "/realtime?model=m"
            protocols = ["realtime", "openai-insecure-api-key.ek_browser"]
            async with open_websocket_url(url, subprotocols=protocols) as ws:
                assert ws.subprotocol == "realtime"
                assert json.loads(await ws.get_message())["type"] == "session.created"


async def test_inbound_message_above_the_limit_closes_1009() -> None:
    from trio_websocket import ConnectionClosed

    with trio.fail_after(10):
        async with open_simulator(SimulatorConfig(max_message_bytes=4096)) as sim:
            async with connect(sim) as ws:
                await recv(ws)
                await ws.send_message("x" * 5000)
                with pytest.raises(ConnectionClosed) as info:
                    await recv(ws)
                assert close_code(info.value) == 1009
            record = await sim.wait_for_session()
            await record.wait_closed()
            assert record.close_code == 1009


async def test_upgrade_without_a_websocket_key_is_a_400() -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim:
            assert sim.base_url is not None
            port = int(sim.base_url.rsplit(":", 1)[1].split("/")[0])
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(
                b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                b"Authorization: Bearer k\r\n\r\n"
            )
            reply = b""
            while chunk := await stream.receive_some(1024):
                reply += chunk
            await stream.aclose()
            assert reply.startswith(b"HTTP/1.1 400")
            assert sim.sessions == []


async def test_open_connections_counts_the_clients_the_server_holds() -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim:
            assert sim.open_connections == 0
            async with connect(sim) as first, connect(sim) as second:
                assert (await recv(first))["type"] == "session.created"
                assert (await recv(second))["type"] == "session.created"
                assert sim.open_connections == 2
            # The server side ends once it has read the client's close.
            await wait_until(lambda: sim.open_connections == 0)
            assert all(record.closed for record in sim.sessions)
