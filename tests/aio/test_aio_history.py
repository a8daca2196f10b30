"""The history API (issue 15) under every asyncio host: seeding, adding, deleting and reading
the conversation give the same results as the trio host."""

from __future__ import annotations

from typing import Any

from duplex.engine import HistoryItem, OutputTranscriptDone, SessionUpdated

from ._hosts import ALL_HOSTS, Host, SimulatorThread, run_on, simulator_thread, until

TIMEOUT_S = 20


def _make(server: SimulatorThread) -> Any:
    async def scenario(host: Host) -> list[tuple[str, str | None, str]]:
        log: list[Any] = []
        async with host.open_engine(server.config()) as engine:
            events = engine.events()
            seeded = [HistoryItem.user("my name is Ada", id="seed_1")]
            await host.within(TIMEOUT_S, engine.start(prompt="hi", history=seeded))
            await host.within(TIMEOUT_S, until(events, log, SessionUpdated))
            added = await engine.add_item(HistoryItem.user("I live by the sea", id="seed_2"))
            assert added == "seed_2"
            await engine.add_item(HistoryItem.user("forget this", id="seed_3"))
            await engine.delete_item("seed_3")
            await engine.send_text("what did I say")
            done = await host.within(TIMEOUT_S, until(events, log, OutputTranscriptDone))
            assert "I live by the sea" in done.text
            items = engine.history()
        return [(item.kind, item.role, item.text) for item in items]

    return scenario


def test_history_is_the_same_on_trio_and_asyncio() -> None:
    with simulator_thread() as server:
        results = {host.name: run_on(host, _make(server)) for host in ALL_HOSTS}
    reference = results["trio"]
    assert reference[:3] == [
        ("message", "user", "my name is Ada"),
        ("message", "user", "I live by the sea"),
        ("message", "user", "what did I say"),
    ]
    for name, items in results.items():
        assert items == reference, name
