"""Lifecycle invariants under generated operation sequences (hypothesis), over the memory
transport with a tiny scripted peer that tags every event with its connection number:

- exactly one ``ConversationClosed`` per conversation that started and was not replaced
  (and ended before the engine exited), none for a replaced one;
- no event of a replaced conversation reaches the host after the replacing ``start()``;
- ``send_*`` with nothing running raises ``ConversationNotRunning`` (also when racing the
  server's close: never a trio exception); ``close()`` says whether something was running;
- a ``start()`` cancelled at any point raises only the cancellation, to the scope that
  cancelled it, and leaves no ``ConversationStarted`` behind;
- no engine task survives ``open_engine``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import attrs
import pytest
import trio
from hypothesis import HealthCheck, given, settings, strategies as st

from duplex.engine import (
    AudioFrame,
    ConversationClosed,
    ConversationNotRunning,
    ConversationStarted,
    EngineConfig,
    OutputTranscriptDelta,
    ReconnectPolicy,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
    open_engine,
)
from duplex.protocol import Error as WireError

from ._engine_helpers import API_KEY, MemoryServer, PeerHandle, host_events, wire

OPS = (
    "start",
    "close",
    "text",
    "audio",
    "server_close",
    "server_error",
    "drop",
    "tick",
    # start() cancelled by its caller after 0, 2 or 5 scheduler checkpoints
    "cancel_start_0",
    "cancel_start_2",
    "cancel_start_5",
    # send_text racing the server's close
    "text_race_close",
)
FRAME = AudioFrame(b"\x00\x00" * 480, 24000, 1)


def _peer(handle: PeerHandle, event: dict[str, Any]) -> list[str]:
    k = handle.index
    kind = event["type"]
    if kind == "session.update":
        return [wire(SessionCreated(f"sess_{k}")), wire(SessionUpdated(f"sess_{k}", None))]
    if kind == "conversation.item.create":
        return [wire(OutputTranscriptDelta(f"conv{k}", f"item_{k}", None))]
    if kind == "response.create":
        rid = f"resp_{k}_{len(handle.received)}"
        return [wire(ResponseCreated(rid)), wire(ResponseDone(rid, "completed"))]
    return []


def _tag(event: Any) -> int | None:
    if isinstance(event, SessionCreated | SessionUpdated):
        return int(str(event.session_id).removeprefix("sess_"))
    if isinstance(event, OutputTranscriptDelta):
        return int(event.delta.removeprefix("conv"))
    if isinstance(event, ResponseCreated | ResponseDone):
        return int(str(event.response_id).split("_")[1])
    return None


def _all_tasks() -> set[trio.lowlevel.Task]:
    tasks: set[trio.lowlevel.Task] = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        tasks.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return tasks


@attrs.define
class Model:
    running: int | None = None  # connection index of the running conversation
    replaced: set[int] = attrs.field(factory=set)
    ended: dict[int, str] = attrs.field(factory=dict)  # connection → expected close reason


async def _wait_closed(log: list[Any], k_started: ConversationStarted) -> None:
    while True:
        if k_started in log:
            after = log[log.index(k_started) :]
            if any(isinstance(e, ConversationClosed) for e in after):
                return
        await trio.sleep(0.002)


async def _cancelled_start(engine: Any, checkpoints: int) -> ConversationStarted | None:
    """``start()`` in a nursery cancelled after ``checkpoints`` scheduler checkpoints: its
    result, or ``None`` if the cancellation won (anything else escapes and fails the test)."""
    result: list[ConversationStarted] = []

    async def attempt() -> None:
        result.append(await engine.start())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(attempt)
        for _ in range(checkpoints):
            await trio.lowlevel.checkpoint()
        nursery.cancel_scope.cancel()
    return result[0] if result else None


async def _run_ops(ops: list[str]) -> None:
    before = _all_tasks()
    model = Model()
    started_events: dict[int, ConversationStarted] = {}  # by connection index
    with trio.fail_after(15):
        async with trio.open_nursery() as peers:
            server = MemoryServer(peers, _peer)
            # Peer closes end the conversation here; test_resume_properties covers reconnects.
            config = EngineConfig(
                api_key=API_KEY, audio_queue_size=4, reconnect=ReconnectPolicy.disabled()
            )
            async with (
                open_engine(config, transport_factory=server) as engine,
                host_events(engine) as events,
            ):
                log = events.log

                async def reader() -> None:
                    while True:
                        try:
                            await events.next()
                        except StopAsyncIteration:
                            return

                async with trio.open_nursery() as readers:
                    readers.start_soon(reader)
                    for op in ops:
                        k = model.running
                        if op == "start":
                            if k is not None:
                                model.replaced.add(k)
                            started = await engine.start()
                            model.running = len(server.peers) - 1
                            started_events[model.running] = started
                        elif op.startswith("cancel_start_"):
                            checkpoints = int(op.rsplit("_", 1)[1])
                            started_or_none = await _cancelled_start(engine, checkpoints)
                            if started_or_none is not None:
                                if k is not None:
                                    model.replaced.add(k)
                                model.running = len(server.peers) - 1
                                started_events[model.running] = started_or_none
                            elif k is not None and not engine.statistics().running:
                                model.replaced.add(k)  # replaced before the connect was cut
                                model.running = None
                        elif op == "text_race_close":
                            if k is None:
                                with pytest.raises(ConversationNotRunning):
                                    await engine.send_text("hi")
                                continue
                            async with trio.open_nursery() as race:
                                race.start_soon(server.peers[k].peer.close, 1000)
                                for _ in range(3):
                                    with contextlib.suppress(ConversationNotRunning):
                                        await engine.send_text("hi")
                            model.ended[k] = "transport_closed"
                            await _wait_closed(log, started_events[k])
                            model.running = None
                        elif op == "close":
                            assert await engine.close() is (k is not None)
                            if k is not None:
                                model.ended[k] = "requested"
                                model.running = None
                        elif op == "text":
                            if k is None:
                                with pytest.raises(ConversationNotRunning):
                                    await engine.send_text("hi")
                            else:
                                await engine.send_text("hi")
                        elif op == "audio":
                            if k is None:
                                with pytest.raises(ConversationNotRunning):
                                    engine.send_audio(FRAME)
                            else:
                                assert isinstance(engine.send_audio(FRAME), bool)
                        elif op in ("server_close", "server_error", "drop") and k is not None:
                            peer = server.peers[k].peer
                            if op == "server_close":
                                await peer.close(1000)
                                model.ended[k] = "transport_closed"
                            elif op == "drop":
                                await peer.drop()
                                model.ended[k] = "error"
                            else:
                                await peer.send_text(wire(WireError("gone", "session_expired")))
                                model.ended[k] = "error"
                            await _wait_closed(log, started_events[k])
                            model.running = None
                        else:
                            await trio.sleep(0.001)
                    # Let in-flight events arrive before the engine exits.
                    await trio.sleep(0.02)
                    readers.cancel_scope.cancel()
            # Every peer connection ends once the engine is gone.
        assert all(handle.ended is not None for handle in server.peers)

    after = _all_tasks()
    assert after <= before, f"leaked tasks: {[t.name for t in after - before]}"

    starts = [e for e in log if isinstance(e, ConversationStarted)]
    # Every start is seen, in order — except that a replaced conversation's Started goes
    # with the rest of its unread events when the host had not taken it before the
    # replacing start() (nothing of a replaced conversation arrives after that start).
    index_of = {started: k for k, started in started_events.items()}
    assert all(s in index_of for s in starts), "a Started that no start() returned"
    seen = [index_of[s] for s in starts]
    assert seen == sorted(set(seen))
    assert set(started_events) - set(seen) <= model.replaced
    bounds = [log.index(s) for s in starts] + [len(log)]
    assert not any(isinstance(e, ConversationClosed) for e in log[: bounds[0]])
    assert all(_tag(e) is None for e in log[: bounds[0]])
    for i, k in enumerate(seen):
        segment = log[bounds[i] : bounds[i + 1]]
        for event in segment:
            tag = _tag(event)
            assert tag is None or tag == k, f"event of conversation {tag} in {k}: {event!r}"
        closed = [e for e in segment if isinstance(e, ConversationClosed)]
        if k in model.replaced and k not in model.ended:
            assert closed == [], f"replaced conversation {k} emitted {closed}"
        elif k in model.ended:
            assert [c.reason for c in closed] == [model.ended[k]], (k, closed)
            assert segment[-1] is closed[0], "ConversationClosed must be the last event"
        else:
            assert closed == []  # still running when the engine exited: cancelled silently


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(st.lists(st.sampled_from(OPS), max_size=14))
def test_lifecycle_invariants_hold_for_any_operation_sequence(ops: list[str]) -> None:
    trio.run(_run_ops, ops)


@pytest.mark.parametrize(
    "ops",
    [
        ["start", "text", "start", "text", "close", "text"],
        ["start", "server_close", "start", "server_error", "start", "drop", "close"],
        ["close", "start", "start", "start", "audio", "text"],
        ["start", "text", "text", "text", "start", "close", "close"],
    ],
)
def test_lifecycle_invariants_examples(ops: list[str]) -> None:
    trio.run(_run_ops, ops)
