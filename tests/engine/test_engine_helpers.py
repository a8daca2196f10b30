"""The test kit itself: a helper race made the lifecycle property test flaky (issue 10.8)."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from duplex.engine import SessionCreated

from ._engine_helpers import MemoryServer, PeerHandle, wire


def _reply(_handle: PeerHandle, _event: dict[str, Any]) -> list[str]:
    return [wire(SessionCreated("sess"))]


async def test_memory_server_records_the_end_even_when_its_last_reply_fails() -> None:
    """A server close landing in the same batch as a client frame made the reply raise
    TransportClosed, and ``_serve`` returned before it reached the TransportEnded behind it:
    ``handle.ended`` stayed None and the property test's "every peer connection ends"
    assertion failed about once in a hundred runs. The race is a scheduling order, so it is
    tried many times."""
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _reply)
            for _ in range(300):
                client = await server(nursery)
                handle = server.peers[-1]
                await client.send_text('{"type":"session.update"}')
                await handle.peer.close(1000)
                await trio.testing.wait_all_tasks_blocked()  # _serve has read everything
                assert handle.ended is not None
            nursery.cancel_scope.cancel()
