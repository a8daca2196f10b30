"""The hand-over window between the trio side and the asyncio consumer, driven directly
(no simulator): the interleavings that ``mechanism="thread"`` allows at any bytecode are made
to happen at the exact point under test."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from duplex.aio import EVENT_WINDOW, EngineConfig
from duplex.aio._engine import AsyncioEngine
from duplex.protocol import OutputTranscriptDelta


class _Engine:
    """The trio engine's side of the hand-over: a queue of (generation, event)."""

    def __init__(self, count: int) -> None:
        self.queued = deque(
            (1, OutputTranscriptDelta(delta=str(i), item_id="i", response_id="r"))
            for i in range(count)
        )

    def _take_event_nowait(self) -> tuple[int, Any] | None:
        return self.queued.popleft() if self.queued else None

    def _events_finished(self) -> bool:
        return False

    def _on_events(self, listener: object) -> None:
        pass


class _Run:
    """``TrioRun``'s two doors, recorded (submit) or called at once (deliver)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.submitted: list[Callable[[], object]] = []

    def submit(self, fn: Callable[[], object]) -> None:
        self.submitted.append(fn)

    def deliver(self, fn: Callable[..., object], *args: Any) -> None:
        fn(*args)


@contextmanager
def _engine_over(queued: int) -> Iterator[tuple[AsyncioEngine, _Engine, _Run]]:
    loop = asyncio.new_event_loop()
    try:
        run = _Run(loop)
        aio = AsyncioEngine(run, EngineConfig(api_key="sk-test"), None)  # type: ignore[arg-type]
        trio_side = _Engine(queued)
        aio._engine = trio_side  # type: ignore[assignment]
        yield aio, trio_side, run
    finally:
        loop.close()


def _consume_all(aio: AsyncioEngine) -> int:
    """What the consumer does on its thread: take every handed-over event."""
    taken = 0
    while aio._events:
        aio._events.popleft()
        aio._taken += 1
        taken += 1
    return taken


def test_a_full_window_moves_the_rest_when_the_consumer_emptied_it_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The trio side finds the window full; before it asks to be resumed, the consumer (on
    # its own thread) takes everything and parks. The trio side must notice the room itself:
    # nobody else will call it (its queue is full, so no new event arrives to do so).
    with _engine_over(EVENT_WINDOW + 10) as (aio, trio_side, _run):
        full = AsyncioEngine._ahead
        raced: list[int] = []

        def consumer_runs_right_after_the_check(self: AsyncioEngine) -> bool:
            ahead = full(self)
            if ahead and not raced:
                raced.append(_consume_all(self))
            return ahead

        monkeypatch.setattr(AsyncioEngine, "_ahead", consumer_runs_right_after_the_check)
        aio._fill()
        assert raced == [EVENT_WINDOW]
        assert len(aio._events) == 10  # the rest moved; the consumer's next read finds it
        assert not trio_side.queued


def test_a_consumer_with_nothing_to_read_resumes_a_waiting_trio_side() -> None:
    with _engine_over(EVENT_WINDOW + 10) as (aio, _trio_side, run):
        aio._fill()
        assert aio._resume is not None  # the window is full: the rest waits
        _consume_all(aio)
        aio._resume_if_room()
        assert run.submitted == [aio._fill]
        assert aio._resume is None
