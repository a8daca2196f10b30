"""Nothing a client sends crashes the simulator or another session (hypothesis)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pydantic
import trio
from hypothesis import HealthCheck, given, settings, strategies as st
from openai.types.realtime import RealtimeServerEvent

from duplex.protocol import ProtocolVersion, ResponseCancel, SessionMode
from duplex.simulator import IdGenerator, ScriptedModel, SimulatorConfig, open_simulator, tone
from duplex.simulator._wire import ClientFrame, decode_client_frame

from ._simhelpers import connect, recv, recv_until, send, user_text

_TYPES = [
    "session.update",
    "session.create",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
    "conversation.handoff.append",
]
_FIELDS = [
    "session",
    "audio",
    "item",
    "item_id",
    "audio_end_ms",
    "content_index",
    "response",
    "response_id",
    "handoff_id",
    "output_text",
    "event_id",
    "previous_item_id",
]

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_event = st.builds(
    lambda t, extra: {"type": t, **extra},
    st.sampled_from(_TYPES) | st.text(max_size=12),
    st.dictionaries(
        st.sampled_from(_FIELDS),
        _json | st.sampled_from(["AAAA", "root", {"type": "realtime"}]),
        max_size=4,
    ),
)
_frame = st.one_of(
    _event.map(json.dumps),
    st.text(max_size=60),
    st.binary(max_size=60),
    _json.map(json.dumps),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_event, max_size=12), st.sampled_from([ProtocolVersion.V1, ProtocolVersion.V2]))
def test_model_survives_any_client_event(
    events: list[dict[str, Any]], version: ProtocolVersion
) -> None:
    model = ScriptedModel(
        version=version,
        mode=SessionMode.CONVERSATIONAL,
        config=SimulatorConfig(),
        ids=IdGenerator(0),
    )
    now = 0.0
    for raw in events:
        now += 0.01
        frame = decode_client_frame(json.dumps(raw), version)
        if isinstance(frame, ClientFrame):
            out = model.receive(frame.event, now, frame.raw)
        else:
            out = [model.error(frame.code, frame.message)]
        out += model.poll(now)
        for event in out:
            json.dumps(event)
            assert isinstance(event["type"], str)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(_frame, min_size=1, max_size=25))
async def test_garbage_to_one_session_does_not_disturb_another(frames: list[str | bytes]) -> None:
    with trio.fail_after(15):
        async with open_simulator(SimulatorConfig(audio_speedup=0)) as sim:
            async with connect(sim) as good, connect(sim) as bad:
                await recv(good)

                async def spray() -> None:
                    for frame in frames:
                        await bad.send_message(frame)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(spray)
                    # Concurrently, the other session completes a whole turn.
                    await send(good, user_text("still fine"))
                    await send(good, {"type": "response.create"})
                    done = await recv_until(good, "response.done")
                    assert done["response"]["status"] == "completed"
                # The garbage session is still answering too, with request errors only.
                await send(bad, {"type": "input_audio_buffer.clear", "event_id": "probe"})
                while True:
                    event = await recv(bad)
                    if event["type"] == "error":
                        assert event["error"]["type"] == "invalid_request_error", event
                    if event["type"] == "input_audio_buffer.cleared":
                        break
            assert len(sim.sessions[1].events) >= len(frames)


# ---------------------------------------------------------------------- realistic v2 sequences

_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RealtimeServerEvent)
_TOOLS = [
    {"type": "function", "name": n, "description": n, "parameters": {"type": "object"}}
    for n in ("a", "b")
]
_STEPS: list[dict[str, Any] | str] = [
    {"type": "session.update", "session": {"type": "realtime", "tools": _TOOLS}},
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 300}}},
        },
    },
    {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
    },
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"input": {"format": {"type": "audio/pcmu"}}},
        },
    },
    {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}},
    user_text("hello"),
    user_text("call a and b"),
    user_text("what did I say before?"),
    user_text("delegate this"),
    {"type": "response.create"},
    {"type": "response.create", "response": {"conversation": "none", "metadata": {"k": "v"}}},
    {"type": "response.create", "response": {"output_modalities": ["text"], "input": []}},
    {"type": "response.cancel"},
    {"type": "output_audio_buffer.clear"},
    {"type": "input_audio_buffer.commit"},
    {"type": "input_audio_buffer.clear"},
    "speech",
    "silence",
    "tool_output",
    "wait",
]


def _check_sequence(events: list[dict[str, Any]]) -> None:
    created: list[str] = []
    done: list[str] = []
    playout: dict[str, list[str]] = {}
    for event in events:
        _ADAPTER.validate_python(event)
        kind = event["type"]
        if kind == "response.created":
            created.append(event["response"]["id"])
        elif kind == "response.done":
            assert event["response"]["id"] in created
            done.append(event["response"]["id"])
        elif kind.startswith("output_audio_buffer."):
            playout.setdefault(event["response_id"], []).append(kind.rsplit(".", 1)[1])
    assert sorted(created) == sorted(done)  # every response ends exactly once
    for edges in playout.values():
        # started once, then at most one of stopped / cleared (clear may repeat on idle)
        assert edges.count("started") <= 1
        assert edges.count("stopped") <= 1
        if "stopped" in edges:
            assert edges.index("started") < edges.index("stopped")
            assert "cleared" not in edges


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.sampled_from(range(len(_STEPS))), max_size=16),
    st.booleans(),
)
def test_realistic_sequences_keep_the_response_invariants(steps: list[int], webrtc: bool) -> None:
    model = ScriptedModel(
        version=ProtocolVersion.V2,
        mode=SessionMode.CONVERSATIONAL,
        config=SimulatorConfig(),
        ids=IdGenerator(0),
        webrtc=webrtc,
    )
    events: list[dict[str, Any]] = []
    now = 0.0
    for index in steps:
        step = _STEPS[index]
        now += 0.05
        raw: dict[str, Any] | None
        if step == "speech":
            raw = {"type": "input_audio_buffer.append", "audio": _b64(tone(400))}
        elif step == "silence":
            raw = {"type": "input_audio_buffer.append", "audio": _b64(bytes(24_000))}
        elif step == "tool_output":
            calls = [e for e in events if e["type"] == "response.function_call_arguments.done"]
            raw = None
            if calls:
                raw = {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "function_call_output",
                        "call_id": calls[-1]["call_id"],
                        "output": "ok",
                    },
                }
        elif step == "wait":
            now += 1.0
            raw = None
        else:
            assert isinstance(step, dict)
            raw = step
        events += model.poll(now)
        if raw is not None:
            frame = decode_client_frame(json.dumps(raw), ProtocolVersion.V2)
            assert isinstance(frame, ClientFrame)
            events += model.receive(frame.event, now, frame.raw)
    # Let everything due finish (an idle timer may re-arm forever: stop after a while).
    for _ in range(500):
        deadline = model.next_deadline()
        if deadline is None:
            break
        now = max(now, deadline)
        events += model.poll(now)
    if model.next_deadline() is not None:
        events += model.receive(ResponseCancel(), now) if model.active_response_id else []
        events += _finish_active(model, now)
    _check_sequence(events)


def _finish_active(model: ScriptedModel, now: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while model.active_response_id is not None:
        deadline = model.next_deadline()
        assert deadline is not None
        now = max(now, deadline)
        out += model.poll(now)
    return out


def _b64(pcm: bytes) -> str:
    return base64.b64encode(pcm).decode()


def test_the_api_key_never_appears_in_the_simulator_configs_repr() -> None:
    config = SimulatorConfig(api_key="sk-simulator-secret-1234")
    assert "sk-simulator-secret-1234" not in repr(config)
    assert "sk-simulator-secret-1234" not in str(config)
    assert config.api_key == "sk-simulator-secret-1234"
