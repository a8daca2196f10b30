"""``Engine.events()``: cancel safety of the host iterator."""

from __future__ import annotations

import trio

from duplex.engine import ConversationStarted, SessionUpdated, open_engine
from duplex.simulator import open_simulator

from ._engine_helpers import sim_config


async def test_cancelled_wait_on_events_loses_nothing() -> None:
    async with open_simulator() as sim:
        with trio.fail_after(15):
            async with open_engine(sim_config(sim)) as engine:
                stream = engine.events()
                # Nothing has happened yet: this wait is cancelled by its timeout.
                with trio.move_on_after(0.05):
                    await stream.__anext__()
                await engine.start()
                seen: list[object] = []
                # The same iterator keeps working after the cancelled wait ...
                async for event in stream:
                    seen.append(event)
                    if isinstance(event, ConversationStarted):
                        break
                # ... and so does a new one, from exactly where the first stopped.
                async for event in engine.events():
                    seen.append(event)
                    if isinstance(event, SessionUpdated):
                        break
                kinds = [type(e).__name__ for e in seen]
                assert kinds[0] == "ConversationStarted"
                assert kinds.count("ConversationStarted") == 1
                assert kinds[-1] == "SessionUpdated"
                assert "SessionCreated" in kinds
