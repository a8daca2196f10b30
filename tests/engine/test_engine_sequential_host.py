"""A host that does one thing at a time (no separate reader task): it calls ``close()`` or
``start()`` and only afterwards reads ``events()``. Nothing it is owed may be lost."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from duplex.engine import (
    ConversationClosed,
    ConversationStarted,
    ConversationStartError,
    EngineConfig,
    SessionCreated,
    SessionUpdated,
    open_engine,
)

from ._engine_helpers import (
    API_KEY,
    MemoryServer,
    PeerHandle,
    host_events,
    of_type,
    poll_until,
    wire,
)


def _peer(handle: PeerHandle, event: dict[str, Any]) -> list[str]:
    if event["type"] == "session.update":
        k = handle.index
        return [wire(SessionCreated(f"sess_{k}")), wire(SessionUpdated(f"sess_{k}", None))]
    return []


async def test_closed_of_a_closed_conversation_survives_the_next_start() -> None:
    """Regression: events() dropped every batch of an older generation, so the
    ConversationClosed("requested") of a conversation closed just before the next start()
    (or the Closed of one that ended by itself) never reached a host that read afterwards.
    Only a *replaced* conversation's events may be dropped."""
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            async with open_engine(
                EngineConfig(api_key=API_KEY), transport_factory=server
            ) as engine:
                first = await engine.start()
                assert await engine.close()
                second = await engine.start()
                third = await engine.start()  # replaces the second
                async with host_events(engine) as events:
                    await events.until(
                        lambda e: isinstance(e, SessionUpdated) and e.session_id == "sess_2"
                    )
                    await events.nothing_for(0.1)
                    log = events.log
                    assert log[0] == first
                    closed = [e for e in log if isinstance(e, ConversationClosed)]
                    assert closed == [ConversationClosed("requested")]
                    assert log.index(closed[0]) < log.index(third)
                    assert second not in log
                    starts = [e for e in log if isinstance(e, ConversationStarted)]
                    assert starts == [first, third]
            nursery.cancel_scope.cancel()


async def test_natural_end_closed_survives_the_next_start() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            async with open_engine(
                EngineConfig(api_key=API_KEY), transport_factory=server
            ) as engine:
                first = await engine.start()
                await server.peers[0].peer.close(1000)
                await poll_until(lambda: not engine.statistics().running)
                second = await engine.start()
                async with host_events(engine) as events:
                    await events.until(
                        lambda e: isinstance(e, SessionUpdated) and e.session_id == "sess_1"
                    )
                    log = events.log
                    closed = [e for e in log if isinstance(e, ConversationClosed)]
                    assert [c.reason for c in closed] == ["transport_closed"]
                    assert log.index(first) < log.index(closed[0]) < log.index(second)
            nursery.cancel_scope.cancel()


async def _flood(handle: PeerHandle, count: int) -> None:
    """``count`` events in separate wakeups, so the host channel fills with batches."""
    for i in range(count):
        await handle.peer.send_text(wire(SessionUpdated(f"sess_{handle.index}", f"flood {i}")))
        await trio.testing.wait_all_tasks_blocked()


async def test_close_returns_while_the_host_channel_is_full() -> None:
    """Regression: close() awaited room in the bounded host channel for its
    ConversationClosed, so a host that calls close() before reading blocked forever once the
    channel was full (over WebRTC the media track's silence frames fill it in ~0.3 s). The
    Closed must still arrive, after everything the conversation emitted and before the next
    conversation's Started."""
    config = EngineConfig(api_key=API_KEY, event_queue_size=2)
    returned = False
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            async with open_engine(config, transport_factory=server) as engine:
                await engine.start()
                await _flood(server.peers[0], 20)
                with trio.move_on_after(1.5):
                    returned = await engine.close()
                assert returned, "close() blocked on the full host channel"
                # The next start() (waiting for room for its Started) begins before the host
                # reads anything: the late Closed must still come first.
                nursery.start_soon(engine.start)
                await trio.testing.wait_all_tasks_blocked()  # start() waits for room
                async with host_events(engine) as events:
                    await events.until(of_type(ConversationClosed))
                    await events.until(of_type(ConversationStarted))
                    closed = [e for e in events.log if isinstance(e, ConversationClosed)]
                    assert closed == [ConversationClosed("requested")]
                    flood = [e for e in events.log if isinstance(e, SessionUpdated)]
                    assert events.log.index(closed[0]) > events.log.index(flood[-1])
            nursery.cancel_scope.cancel()


async def test_replacing_start_succeeds_while_the_host_channel_is_full() -> None:
    """Regression: a replacing start() awaited room for its ConversationStarted in the host
    channel still full of the replaced conversation's batches, so a host without a
    concurrent reader got ConversationStartError("connecting timed out") after the connect
    and close timeouts. The new Started must come first, and nothing of the old one."""
    config = EngineConfig(
        api_key=API_KEY, event_queue_size=2, connect_timeout=0.5, close_timeout=0.5
    )
    failure: Exception | None = None
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _peer)
            async with open_engine(config, transport_factory=server) as engine:
                await engine.start()
                await _flood(server.peers[0], 20)
                try:
                    second = await engine.start()
                except ConversationStartError as exc:
                    failure = exc
                assert failure is None, f"replacing start() failed: {failure!r}"
                async with host_events(engine) as events:
                    assert await events.next() == second
                    await events.until(of_type(SessionUpdated))
                    assert all(
                        e.session_id == "sess_1"
                        for e in events.log
                        if isinstance(e, SessionCreated | SessionUpdated)
                    )
            nursery.cancel_scope.cancel()
