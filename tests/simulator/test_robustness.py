"""Nothing a client sends crashes the simulator or another session (hypothesis)."""

from __future__ import annotations

import json
from typing import Any

import trio
from hypothesis import HealthCheck, given, settings, strategies as st

from duplex.protocol import ProtocolVersion, SessionMode
from duplex.simulator import IdGenerator, ScriptedModel, SimulatorConfig, open_simulator
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
