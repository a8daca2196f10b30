"""``LoopReads``: a conversation's reader, driven by the host's event loop instead of trio.

Why (SPEC §3.6, §7; docs/aio.md): under ``duplex.aio`` trio runs as a guest on the asyncio
loop, and every time trio wakes from idle it costs a round trip through trio's I/O thread
(the blocking poll handed to the thread, its ``call_soon_threadsafe`` back, the loop's
wake-up, the GIL passing between the threads). At a realtime pace that is one round trip for
most server events. Here the asyncio loop watches the connection itself and runs the
reader's synchronous part (read, split frames, parse, the state machine, the host queue) in
its readiness callback: no trio wake-up per event. Everything that needs to wait, or trio's
own reading, goes back to the reader task: a control frame to answer, the end of the
connection, a full host queue, an ending step, a check the reader makes at the top of its
loop, a fault. The reader then does exactly what it does without this.

Invariants:
- One reader at a time: while the loop reads, the reader task is parked in ``read`` and does
  nothing else; the loop's callback reads only while it is parked (``parked``) and nothing
  has been handed back yet. Trio code and loop callbacks run on the same thread (guest mode), never
  interleaved inside a synchronous step, so the state machine sees the same sequence of
  batches as it would from the task.
- Hand-back is synchronous on the loop's side (the watch ends before the callback returns,
  so a level-triggered loop does not call again for data left unread) and reaches the task
  through trio's thread-safe entry (``to_trio``). A cancellation of the parked task ends
  the watch at once (in trio's abort callback), before any later loop callback could read
  for a connection that is being ended; if something was already handed back, the task
  takes it first (nothing handed back is lost, an interrupt included) and meets the
  cancellation at its next checkpoint.
- What a batch changes is in effect when the callback returns, as when the task reads it:
  an end of the connection is applied by ``consume`` itself (the conversation is ended or
  reconnecting for every host call from then on); only waiting is left to the task.
- A fault in the loop's callback (a bug, or an interrupt landing before anything was handed
  back) is handed to the task and raised there, where the reader's own handling applies; an
  interrupt landing after the hand-back's result was stored escapes to the host, as in any
  loop callback, and the task still gets the result.
- What a batch wakes in trio (the writer, for a message the state machine answers with) is
  rescheduled from the loop's callback on the run's own thread; trio then ticks through its
  usual guest wake-up, as for any call from the host. Only a batch that needs it pays that.

Scope: transports that can be read without waiting (``Transport.read_on``): the WebSocket
transport over plain TCP. ``wss://`` (trio's ``SSLStream`` reads only by awaiting), WebRTC
and the thread mechanism keep trio's reading.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar, final

import trio

from duplex.transports import Inbound, LoopWatch, Transport

__all__ = ["RECEIVE", "LoopReads"]

T = TypeVar("T")


class _Receive:
    __slots__ = ()

    def __repr__(self) -> str:
        return "RECEIVE"


#: ``LoopReads.read``'s answer when the reader must take the next batch with
#: ``Transport.receive_batch`` (the transport needs trio, or the loop cannot watch it).
RECEIVE: Final = _Receive()
#: Handed back when the reader's own checks no longer pass (``read`` returns None).
_CHECK: Final = object()


@final
class LoopReads:
    """Reading on the host's loop for the conversations of one engine (module docstring).

    ``loop`` watches descriptors; ``to_trio(fn)`` runs ``fn()`` in trio context soon, from
    the loop's callbacks (``TrioToken.run_sync_soon``), and again should an interrupt land
    in it (``fn`` checks that it runs once)."""

    __slots__ = ("_loop", "_to_trio")

    def __init__(self, loop: LoopWatch, to_trio: Callable[[Callable[[], object]], object]) -> None:
        self._loop = loop
        self._to_trio = to_trio

    async def read(
        self,
        transport: Transport,
        consume: Callable[[list[Inbound]], T | None],
        may_go: Callable[[], bool],
    ) -> T | _Receive | None:
        """Let the loop read ``transport`` and ``consume`` each batch until something needs
        the task. Returns what ``consume`` returned when it was not None (a follow-up for
        the task), ``None`` when ``may_go()`` turned false (the reader's own checks decide),
        or ``RECEIVE`` (take the next batch with ``receive_batch``). A fault in the loop's
        callback is raised here."""
        task = trio.lowlevel.current_task()
        outcome: list[object] = []  # what the loop's side hands back (one item)
        parked = True

        def wake() -> None:
            # Submitted to run again if an interrupt lands in it: rescheduled exactly once.
            nonlocal parked
            if parked:
                trio.lowlevel.reschedule(task)
                parked = False

        def ready() -> None:
            if not parked or outcome:
                return  # a call already queued when the watch ended
            try:
                # Until nothing more is there: a loop may call only once for data followed
                # by an error (uvloop closes its poll handle on POLLERR, so a reset behind
                # the last message would never be seen). A result is stored the moment it
                # exists: an interrupt landing after it loses nothing the task needs.
                while True:
                    if not may_go():
                        outcome.append(_CHECK)  # e.g. a batch ended what a rotation waits for
                        break
                    batch = transport.receive_batch_nowait()
                    if batch is None:
                        outcome.append(RECEIVE)
                        break
                    if not batch:
                        break
                    follow = consume(batch)
                    if follow is not None:
                        outcome.append(follow)
                        break
            except BaseException as exc:
                if outcome:
                    raise  # an interrupt after the result: the host's (handed back below)
                outcome.append(_Fault(exc))  # raised in the task instead
            finally:
                if outcome:
                    # Hand back: stop at once (no further callback), then wake the task.
                    try:
                        transport.stop_reading_on()
                    finally:
                        self._to_trio(wake)

        def abort(_: object) -> trio.lowlevel.Abort:
            nonlocal parked
            if outcome:
                # Handed back already, and the wake-up is on its way: the task takes what
                # is waiting for it (a fault, an interrupt, events) and meets the
                # cancellation at its next checkpoint.
                return trio.lowlevel.Abort.FAILED
            parked = False
            transport.stop_reading_on()
            return trio.lowlevel.Abort.SUCCEEDED

        if not transport.read_on(self._loop, ready):
            return RECEIVE
        await trio.lowlevel.wait_task_rescheduled(abort)
        result = outcome[0]
        if type(result) is _Fault:
            raise result.exc
        return None if result is _CHECK else result  # type: ignore[return-value]


@final
class _Fault:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
