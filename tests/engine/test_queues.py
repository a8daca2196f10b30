"""The host event queue: order across batches, the bound on pushing producers, and the
synchronous handoff (``take_nowait`` + ``listener``) that ``duplex.aio`` uses in place of a
pump task."""

from __future__ import annotations

from collections.abc import Sequence

import trio
import trio.testing

from duplex.engine._queues import HostQueue
from duplex.protocol import OutputTranscriptDelta


def delta(n: int) -> OutputTranscriptDelta:
    return OutputTranscriptDelta(delta=str(n), item_id="i", response_id="r")


def texts(items: Sequence[tuple[int, object]]) -> list[str]:
    return [event.delta for _, event in items if isinstance(event, OutputTranscriptDelta)]


def test_take_nowait_hands_out_batches_in_order_and_none_when_empty() -> None:
    queue = HostQueue(4)
    assert queue.take_nowait() is None
    queue.push_nowait(1, [delta(1), delta(2)])
    queue.push_nowait(1, [])  # an empty batch is skipped, not an error
    queue.push_nowait(2, [delta(3)])
    taken = []
    while (item := queue.take_nowait()) is not None:
        taken.append(item)
    assert texts(taken) == ["1", "2", "3"]
    assert [generation for generation, _ in taken] == [1, 1, 2]


async def test_next_skips_an_empty_batch() -> None:
    queue = HostQueue(4)
    queue.push_nowait(1, [])
    queue.push_nowait(1, [delta(1)])
    with trio.fail_after(5):
        generation, event = await queue.next()
    assert (generation, event) == (1, delta(1))


async def test_taking_a_batch_without_waiting_lets_a_blocked_producer_push() -> None:
    queue = HostQueue(1)
    queue.push_nowait(1, [delta(1)])
    pushed = trio.Event()

    async def producer() -> None:
        await queue.push(1, [delta(2)])  # the queue is full: it waits
        pushed.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(producer)
            await trio.testing.wait_all_tasks_blocked()
            assert not pushed.is_set()
            assert queue.take_nowait() == (1, delta(1))
            await pushed.wait()
    assert queue.take_nowait() == (1, delta(2))


def test_the_listener_hears_every_push_and_the_close() -> None:
    queue = HostQueue(4)
    heard: list[tuple[int, bool]] = []
    queue.listener = lambda: heard.append((queue.depth(), queue.finished))
    queue.push_nowait(1, [delta(1)])
    queue.push_nowait(1, [delta(2)])
    queue.close()
    assert heard == [(1, False), (2, False), (2, False)]  # closed, but not yet drained
    assert queue.take_nowait() is not None
    assert not queue.finished
    assert queue.take_nowait() is not None
    assert queue.finished


def test_a_listener_can_take_what_was_just_pushed() -> None:
    """The aio handoff takes events from inside the listener, in the pushing task."""
    queue = HostQueue(4)
    moved: list[tuple[int, object]] = []

    def listener() -> None:
        while (item := queue.take_nowait()) is not None:
            moved.append(item)

    queue.listener = listener
    queue.push_nowait(3, [delta(1), delta(2)])
    assert texts(moved) == ["1", "2"]
    assert queue.depth() == 0


def test_a_replaced_generation_is_neither_queued_nor_heard() -> None:
    queue = HostQueue(4)
    heard: list[int] = []
    queue.listener = lambda: heard.append(queue.depth())
    queue.push_nowait(1, [delta(1)])
    queue.purge(1)
    queue.push_nowait(1, [delta(2)])  # the replaced conversation's task, on its way out
    assert heard == [1]
    assert queue.take_nowait() is None


def test_purge_tells_the_purge_listener_which_generation_was_dropped() -> None:
    queue = HostQueue(4)
    purged: list[int] = []
    queue.purge_listener = purged.append
    queue.push_nowait(1, [delta(1)])
    queue.push_nowait(2, [delta(2)])
    queue.purge(1)
    assert purged == [1]
    assert texts([queue.take_nowait() or (0, None)]) == ["2"]
