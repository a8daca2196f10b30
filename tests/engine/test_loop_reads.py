"""``LoopReads``: the reader's batches taken by the host's loop, and every way back to the
reader task (engine/_loop_reads.py). A fake loop (the test calls ``ready()`` as a loop
would) and a scripted transport; trio only, no asyncio."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from duplex.engine import AudioFrame
from duplex.engine._loop_reads import RECEIVE, LoopReads
from duplex.transports import (
    Inbound,
    LoopWatch,
    Transport,
    TransportKind,
    TransportStatistics,
    memory_transport_pair,
)

TIMEOUT_S = 5


class FakeLoop:
    """Records what is watched; ``fire()`` calls the callback as a loop would on
    readability (only while watched: a loop does not call for an unwatched descriptor)."""

    def __init__(self, can_watch: bool = True) -> None:
        self.can_watch = can_watch
        self.ready: Callable[[], object] | None = None
        self.watches = 0
        self.unwatches = 0

    def watch(self, fd: int, ready: Callable[[], object]) -> bool:
        if not self.can_watch:
            return False
        self.ready = ready
        self.watches += 1
        return True

    def unwatch(self, fd: int) -> None:
        self.ready = None
        self.unwatches += 1

    def fire(self) -> None:
        assert self.ready is not None, "not watched"
        self.ready()


class ScriptedTransport(Transport):
    """A transport whose ``receive_batch_nowait`` hands out scripted answers and whose
    ``read_on`` goes through a ``FakeLoop``; ``watched`` says whether the watch is on."""

    def __init__(self, script: list[list[Inbound] | None]) -> None:
        self.script = script
        self.loop: FakeLoop | None = None

    @property
    def kind(self) -> TransportKind:
        return "memory"

    @property
    def audio_native(self) -> bool:
        return False

    async def send_text(self, text: str) -> None:
        raise AssertionError("not used")

    async def send_audio(self, frame: AudioFrame) -> None:
        raise AssertionError("not used")

    async def receive_batch(self) -> list[Inbound]:
        raise AssertionError("the loop reads this transport")

    async def aclose(self) -> None:
        pass

    def statistics(self) -> TransportStatistics:
        raise AssertionError("not used")

    def read_on(self, loop: LoopWatch, ready: Callable[[], object]) -> bool:
        assert isinstance(loop, FakeLoop)
        self.loop = loop
        return loop.watch(0, ready)

    def stop_reading_on(self) -> None:
        if self.loop is not None and self.loop.ready is not None:
            self.loop.unwatch(0)

    def receive_batch_nowait(self) -> list[Inbound] | None:
        return self.script.pop(0) if self.script else []

    def watched(self) -> bool:
        return self.loop is not None and self.loop.ready is not None


def scripted(script: list[list[Inbound] | None]) -> ScriptedTransport:
    return ScriptedTransport(script)


def loop_reads(loop: FakeLoop) -> LoopReads:
    return LoopReads(loop, trio.lowlevel.current_trio_token().run_sync_soon)


async def test_batches_are_consumed_on_the_loop_while_the_reader_stays_parked() -> None:
    loop = FakeLoop()
    transport = scripted([["a"], [], ["b", "c"]])
    consumed: list[list[Inbound]] = []
    result: list[object] = []

    def consume(batch: list[Inbound]) -> str | None:
        consumed.append(batch)
        return "follow" if batch == ["end"] else None

    async def reader() -> None:
        result.append(await loop_reads(loop).read(transport, consume, lambda: True))

    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            for _ in range(3):
                loop.fire()
            await trio.testing.wait_all_tasks_blocked()
            assert consumed == [["a"], ["b", "c"]]
            assert result == []  # the reader task never woke for them
            assert transport.watched()
            transport.script.append(["end"])
            loop.fire()
            assert not transport.watched()  # before the callback returned
    assert result == ["follow"]
    assert consumed[-1] == ["end"]


@pytest.mark.parametrize(
    ("script", "may_go", "expected"),
    [
        ([None], True, RECEIVE),  # the transport needs receive_batch
        ([["a"]], False, None),  # the reader's own checks no longer pass
    ],
)
async def test_the_loop_hands_back_what_only_the_reader_task_can_do(
    script: list[list[Inbound] | None], may_go: bool, expected: object
) -> None:
    loop = FakeLoop()
    transport = scripted(script)
    consumed: list[object] = []
    result: list[object] = []

    async def reader() -> None:
        result.append(await loop_reads(loop).read(transport, consumed.append, lambda: may_go))

    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            loop.fire()
            assert not transport.watched()
    assert result == [expected]
    assert consumed == []
    assert (loop.watches, loop.unwatches) == (1, 1)


async def test_a_batch_that_makes_the_checks_fail_hands_back_after_it_is_consumed() -> None:
    # A batch that ends the response a rotation waits for: the reader must look again.
    loop = FakeLoop()
    transport = scripted([["done"]])
    state = {"go": True}
    consumed: list[list[Inbound]] = []

    def consume(batch: list[Inbound]) -> None:
        consumed.append(batch)
        state["go"] = False

    result: list[object] = []

    async def reader() -> None:
        result.append(await loop_reads(loop).read(transport, consume, lambda: state["go"]))

    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            loop.fire()
    assert consumed == [["done"]]
    assert result == [None]


@pytest.mark.parametrize("cancelled", [False, True], ids=["", "then-cancelled"])
@pytest.mark.parametrize("fault", [ValueError("bug"), KeyboardInterrupt()])
async def test_a_fault_on_the_loop_is_raised_in_the_reader_task_not_in_the_loop(
    fault: BaseException, cancelled: bool
) -> None:
    # Also when the reader is cancelled before it woke for it: an interrupt is the host's.
    loop = FakeLoop()
    transport = scripted([["a"]])

    def consume(batch: list[Inbound]) -> None:
        raise fault

    raised: list[BaseException] = []

    async def reader() -> None:
        try:
            await loop_reads(loop).read(transport, consume, lambda: True)
        except BaseException as exc:
            raised.append(exc)

    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            loop.fire()  # returns: nothing escapes into the loop
            assert not transport.watched()
            if cancelled:
                nursery.cancel_scope.cancel()
    assert raised == [fault]


async def test_cancelling_the_parked_reader_ends_the_watch_at_once() -> None:
    loop = FakeLoop()
    transport = scripted([["late"]])
    consumed: list[object] = []
    ready: list[Callable[[], object]] = []

    async def reader() -> None:
        await loop_reads(loop).read(transport, consumed.append, lambda: True)

    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            assert loop.ready is not None
            ready.append(loop.ready)
            nursery.cancel_scope.cancel()
            # Synchronously, in trio's abort: no loop callback can read for a connection
            # that is being ended, even one the loop had already queued.
            assert not transport.watched()
            ready[0]()
    assert consumed == []
    assert transport.script == [["late"]]


async def test_a_transport_the_loop_cannot_watch_is_read_by_receive_batch() -> None:
    for loop, transport in ((FakeLoop(can_watch=False), scripted([])), (FakeLoop(), None)):
        target = transport or memory_transport_pair()[0]  # MemoryTransport: read_on is False
        with trio.fail_after(TIMEOUT_S):
            assert await loop_reads(loop).read(target, lambda b: None, lambda: True) is RECEIVE
        assert loop.ready is None


async def test_an_interrupt_right_after_the_loop_stored_its_result_loses_nothing() -> None:
    # A SIGINT's KeyboardInterrupt lands where CPython checks for signals: here, the call
    # that starts the hand-back. It is the host's (it escapes the loop's callback), and the
    # reader still gets what the loop read (events waiting for the host queue's room).
    loop = FakeLoop()
    transport = scripted([["fills the host queue"]])
    result: list[object] = []
    consumed: list[list[Inbound]] = []

    def consume(batch: list[Inbound]) -> str:
        consumed.append(batch)
        return "events waiting"

    async def reader() -> None:
        result.append(await loop_reads(loop).read(transport, consume, lambda: True))

    def tracer(frame: Any, event: str, arg: object) -> Any:
        # The first Python call once the batch was consumed: where a pending signal is raised.
        if event == "call" and consumed:
            sys.settrace(None)
            raise KeyboardInterrupt
        return None

    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            sys.settrace(tracer)
            try:
                with pytest.raises(KeyboardInterrupt):
                    loop.fire()
            finally:
                sys.settrace(None)
    assert result == ["events waiting"]
