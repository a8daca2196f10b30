"""The engine's reader with the host's loop taking its batches (``_read_on_loop``), against
the same reader without it: what a batch ends, holds or leaves waiting must look the same to
the host and to its calls (session cap rotation with a full host queue, a resumable end and
a host call or close right behind it). A fake loop, and a memory transport made readable
from it; the batch is taken at the exact point under test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from duplex.engine import (
    ConversationClosed,
    ConversationNotRunning,
    ConversationReconnecting,
    ConversationResumed,
    Engine,
    EngineConfig,
    OutputTranscriptDelta,
    ReconnectPolicy,
    open_engine,
)
from duplex.engine._loop_reads import LoopReads
from duplex.protocol import Error as WireError
from duplex.transports import Inbound, MemoryTransport, TransportEnded

from ._engine_helpers import API_KEY, MemoryServer, PeerHandle, host_events, wire

ROTATE_S = 100.0


class FakeLoop:
    def __init__(self) -> None:
        self.ready: Callable[[], object] | None = None

    def watch(self, fd: int, ready: Callable[[], object]) -> bool:
        self.ready = ready
        return True

    def unwatch(self, fd: int) -> None:
        self.ready = None


def loop_readable(client: MemoryTransport, loop: FakeLoop) -> None:
    """Let ``loop`` read ``client`` as a host loop reads a socket: everything queued, up to
    the end (which only ``receive_batch`` delivers)."""
    inbox = client._inbox

    def read_on(_loop: Any, ready: Callable[[], object]) -> bool:
        return loop.watch(0, ready)

    def stop_reading_on() -> None:
        loop.unwatch(0)

    def receive_batch_nowait() -> list[Inbound] | None:
        items = inbox._items
        if any(isinstance(i, TransportEnded) for i in items):
            return None
        inbox._items = []
        inbox._audio_waiting = 0
        return items

    client.read_on = read_on  # type: ignore[method-assign,assignment]
    client.stop_reading_on = stop_reading_on  # type: ignore[method-assign]
    client.receive_batch_nowait = receive_batch_nowait  # type: ignore[method-assign]


def _quiet(_handle: PeerHandle, _event: dict[str, Any]) -> list[str]:
    return []


@asynccontextmanager
async def engine_over_memory(
    config: EngineConfig, on_loop: bool
) -> AsyncIterator[tuple[Engine, MemoryServer, FakeLoop]]:
    """An engine on a memory server whose connections ``loop`` reads when ``on_loop``."""
    loop = FakeLoop()
    async with trio.open_nursery() as nursery:
        server = MemoryServer(nursery, _quiet)

        async def factory(conversation_nursery: trio.Nursery) -> Any:
            client = await server(conversation_nursery)
            if on_loop:
                loop_readable(client, loop)  # type: ignore[arg-type]
            return client

        async with open_engine(config, transport_factory=factory) as engine:
            if on_loop:
                engine._read_on_loop(
                    LoopReads(loop, trio.lowlevel.current_trio_token().run_sync_soon)
                )
            yield engine, server, loop
        nursery.cancel_scope.cancel()


def server_says(server: MemoryServer, loop: FakeLoop, on_loop: bool, event: Any) -> None:
    """The server sends ``event``; with ``on_loop``, the loop reads it at once."""
    server.peers[0].client._inbox.put_text(wire(event))
    if on_loop:
        assert loop.ready is not None
        loop.ready()


@pytest.mark.parametrize("on_loop", [False, True], ids=["trio-reads", "loop-reads"])
async def test_rotation_does_not_drop_a_batch_waiting_for_host_queue_room(
    on_loop: bool, mock_clock: trio.testing.MockClock
) -> None:
    config = EngineConfig(
        api_key=API_KEY,
        event_queue_size=1,
        reconnect=ReconnectPolicy(max_session_s=ROTATE_S),
    )
    async with engine_over_memory(config, on_loop) as (engine, server, loop):
        await engine.start()  # ConversationStarted fills the 1-batch host queue
        await trio.testing.wait_all_tasks_blocked()
        # Read by the loop (the full queue hands it back to the reader task, which has yet
        # to wake), or by the task (which then waits in host.push).
        server_says(server, loop, on_loop, OutputTranscriptDelta("precious", "it"))
        if not on_loop:
            await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(ROTATE_S)  # the session cap comes due right then
        await trio.testing.wait_all_tasks_blocked()  # the host reads a moment later
        async with host_events(engine) as events:
            taken = await events.until(lambda e: isinstance(e, ConversationResumed))
        assert any(isinstance(e, ConversationReconnecting) for e in taken)
        assert [e.delta for e in taken if isinstance(e, OutputTranscriptDelta)] == ["precious"]


@pytest.mark.parametrize("on_loop", [False, True], ids=["trio-reads", "loop-reads"])
async def test_a_host_call_right_after_a_resumable_end_is_held_not_refused(on_loop: bool) -> None:
    config = EngineConfig(api_key=API_KEY, reconnect=ReconnectPolicy(initial_backoff=0))
    with trio.fail_after(10):
        async with (
            engine_over_memory(config, on_loop) as (engine, server, loop),
            host_events(engine) as events,
        ):
            await engine.start()
            await trio.testing.wait_all_tasks_blocked()
            # The server's session cap: resumable (the conversation reconnects).
            server_says(server, loop, on_loop, WireError("gone", "session_expired"))
            outcome: list[object] = []
            try:
                await engine.send_text("are you there", respond=False)
                outcome.append("accepted")
            except ConversationNotRunning as exc:
                outcome.append(exc)
            await events.until(lambda e: isinstance(e, ConversationResumed))
            assert outcome == ["accepted"]


@pytest.mark.parametrize("on_loop", [False, True], ids=["trio-reads", "loop-reads"])
async def test_close_right_after_a_resumable_end_closes(on_loop: bool) -> None:
    config = EngineConfig(api_key=API_KEY, reconnect=ReconnectPolicy(initial_backoff=0))
    with trio.fail_after(10):
        async with (
            engine_over_memory(config, on_loop) as (engine, server, loop),
            host_events(engine) as events,
        ):
            await engine.start()
            await trio.testing.wait_all_tasks_blocked()
            server_says(server, loop, on_loop, WireError("gone", "session_expired"))
            closed = await engine.close()
            taken = await events.until(
                lambda e: isinstance(e, ConversationResumed | ConversationClosed)
            )
            assert closed is True
            assert isinstance(taken[-1], ConversationClosed)
