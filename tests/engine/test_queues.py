"""The engine's queues. The host event queue: order across batches, the bound on pushing
producers, and the synchronous handoff (``take_nowait`` + ``listener``) that ``duplex.aio``
uses in place of a pump task. The outbox: which frames outlive their connection
(``take_unsent``) and what producers meet once its writer has stopped."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio
import trio.testing

from duplex.engine import ConversationNotRunning
from duplex.engine._queues import OUTBOUND_FRAMES, HostQueue, Outbox
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


# ---- Outbox: the host's frames outlive a connection, the connection's own do not --------


async def _taken(outbox: Outbox) -> str:
    frame = await outbox.next()
    assert frame is not None
    return frame


def test_take_unsent_returns_the_host_frames_the_writer_never_took_in_order() -> None:
    outbox = Outbox()
    outbox.push_connection(["handshake"])
    outbox.push(["text 1"])
    assert outbox.push_control(["control"])
    outbox.push(["text 2", "text 3"])
    assert outbox.take_unsent() == ["text 1", "text 2", "text 3"]
    assert outbox.closed
    assert outbox.take_unsent() == []  # taken once


async def test_take_unsent_leaves_out_what_the_writer_took() -> None:
    outbox = Outbox()
    outbox.push(["text 1"])
    outbox.push_connection(["control 1"])
    outbox.push(["text 2"])
    assert await outbox.next() == "text 1"
    assert await outbox.next() == "control 1"
    outbox.push_connection(["control 2"])  # marks move on as the writer takes frames
    outbox.push(["text 3"])
    assert outbox.take_unsent() == ["text 2", "text 3"]


async def test_a_frame_the_writer_could_not_send_is_unsent_again_with_its_kind() -> None:
    outbox = Outbox()
    outbox.push_connection(["control"])
    outbox.push(["text"])
    control = await outbox.next()
    assert control == "control"
    outbox.push_connection(["control 2"])  # while the writer held "control"
    outbox.orphan(control)
    assert outbox.take_unsent() == ["text"]

    outbox = Outbox()
    outbox.push(["text"])
    outbox.orphan(await _taken(outbox))
    assert outbox.take_unsent() == ["text"]


async def test_an_orphaned_outbox_takes_frames_up_to_its_bound_then_refuses() -> None:
    outbox = Outbox()
    outbox.push(["text"])
    outbox.orphan(await _taken(outbox))
    for n in range(OUTBOUND_FRAMES - 1):
        await outbox.wait_writable()  # room: no wait, no refusal
        outbox.push([f"queued {n}"])
    with pytest.raises(ConversationNotRunning):
        await outbox.wait_writable()  # full, and nothing will make room
    assert len(outbox.take_unsent()) == OUTBOUND_FRAMES


async def test_orphaning_wakes_a_producer_waiting_for_room() -> None:
    outbox = Outbox()
    outbox.push([f"frame {n}" for n in range(OUTBOUND_FRAMES)])
    refused = trio.Event()

    async def producer() -> None:
        with pytest.raises(ConversationNotRunning):
            await outbox.wait_writable()
        refused.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(producer)
            await trio.testing.wait_all_tasks_blocked()
            assert not refused.is_set()
            # The writer takes one and then fails to send it.
            outbox.orphan(await _taken(outbox))
    assert refused.is_set()


async def test_a_stopped_outbox_keeps_its_queue_and_the_frame_the_writer_failed() -> None:
    outbox = Outbox()
    outbox.push(["host frame", "queued"])
    in_hand = await _taken(outbox)
    outbox.stop()  # a rotation: the writer may finish its frame, and gets nothing more
    assert await outbox.next() is None
    assert outbox.depth() == 0  # nothing more goes out on this connection
    outbox.orphan(in_hand)  # its send failed after all
    assert outbox.take_unsent() == ["host frame", "queued"]

    outbox = Outbox()
    outbox.push_connection(["control"])
    outbox.push(["queued"])
    outbox.orphan(await _taken(outbox))
    outbox.stop()
    assert outbox.take_unsent() == ["queued"]  # the connection's own frame is not carried
