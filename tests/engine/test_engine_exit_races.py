"""Races between leaving ``open_engine`` and a host call that is already inside the engine
(issue 12.3; found by the lifecycle storm in test_engine_storm.py).

A ``start()`` in flight when the block exits ends with ``EngineClosed`` (or the caller's own
cancellation) — never with trio's "Nursery is closed to new arrivals" dressed as a
``ConversationStartError``.
"""

from __future__ import annotations

import trio
import trio.testing

from duplex.engine import EngineClosed, EngineConfig, EngineError, open_engine
from duplex.transports import MemoryPeer, Transport, memory_transport_pair

from ._engine_helpers import API_KEY


async def test_a_start_replacing_a_conversation_when_the_block_exits_raises_engine_closed() -> None:
    # The second start() waits (in _replace_current) for the first conversation's transport
    # to close; the block exits meanwhile; the close then completes and the start resumes
    # against an engine whose nursery is closed.
    release = trio.Event()
    peers: list[MemoryPeer] = []

    async def factory(_nursery: trio.Nursery) -> Transport:
        client, peer = memory_transport_pair()
        peers.append(peer)
        if len(peers) == 1:
            close = client.aclose

            async def slow_aclose() -> None:
                await release.wait()  # a server slow to finish the close handshake
                await close()

            client.aclose = slow_aclose  # type: ignore[method-assign]
        return client

    async def release_once_all_wait() -> None:
        await trio.testing.wait_all_tasks_blocked()
        release.set()

    outcome: list[object] = []
    config = EngineConfig(api_key=API_KEY, close_timeout=5)
    with trio.fail_after(5):
        async with (
            trio.open_nursery() as outer,
            open_engine(config, transport_factory=factory) as engine,
        ):
            await engine.start()

            async def second_start() -> None:
                try:
                    outcome.append(await engine.start())
                except EngineError as exc:
                    outcome.append(exc)

            outer.start_soon(second_start)
            # second_start now waits for the first conversation's slow close.
            await trio.testing.wait_all_tasks_blocked()
            outer.start_soon(release_once_all_wait)
    assert len(outcome) == 1
    assert isinstance(outcome[0], EngineClosed), repr(outcome[0])
    assert len(peers) == 1  # the second start never connected
