"""The engine's two FIFOs: host events out (``HostQueue``) and client frames to the wire
(``Outbox``). Both are bounded for producers that may wait and open to structural items that
must never wait nor be dropped.

Why not trio memory channels: a channel's sender either waits (the reading task would then wait
on the writer or on the host) or fails when full (a structural event would be lost). Here the
bound applies to the producers that *may* wait — the reader's event batches, the host's calls,
the audio mux — while lifecycle events and the state machine's control messages are appended
at once; their count is bounded by the protocol, not by the queue (see each class).

Invariants:
- FIFO: items leave in the order they were appended, whichever way they were appended.
- Closing wakes every waiter: ``HostQueue`` readers drain what is left and then stop;
  ``Outbox`` producers raise ``ConversationNotRunning``, the writer stops (after what was
  queued, when closed with ``drain``).
- Cancel-safe: a cancelled wait takes nothing and loses nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable
from typing import Final

import trio

from ._errors import ConversationNotRunning
from ._host_events import HostEvent

__all__ = ["CONTROL_BACKLOG", "OUTBOUND_FRAMES", "HostQueue", "Outbox"]

# The writer's bound for producers that wait (host text, handoff output, prompt updates,
# WebSocket audio appends): the Rust original's text and handoff-out bound, enough for a burst
# of typed input, small enough that a stalled socket shows up as backpressure within ~1 s of
# audio (64 frames of 20 ms).
OUTBOUND_FRAMES: Final = 64

# Control messages (response.create, truncate, steering acks, no-op replies) are appended by
# the reading task without waiting. Each answers a server event that itself needed a server
# turn (≤ 1–2 per response or tool call), so even a long-stalled socket accumulates few; this
# many queued beyond the producers' bound means the peer has not taken a write for hundreds
# of turns, and the conversation ends with an error rather than grow without limit.
CONTROL_BACKLOG: Final = 256


class HostQueue:
    """Batches of host events, tagged with their conversation's generation.

    ``push`` (the reader) waits while ``size`` batches are queued: a host that stops reading
    slows the network reading instead (backpressure, SPEC §3.1). ``push_nowait`` (lifecycle:
    ``ConversationStarted``, the batch ending in ``ConversationClosed``) never waits; at most
    two per conversation, so the queue stays bounded by ``size`` + 2 per start.

    A consumer that lives in trio context but not in a task of its own (``duplex.aio`` in guest
    mode) takes events with ``take_nowait`` and sets ``listener``, which is called, in the
    pushing task, after every push and on close: a handoff without a task switch.
    """

    __slots__ = (
        "_batches",
        "_closed",
        "_events",
        "_events_generation",
        "_purged",
        "_readers",
        "_size",
        "_writable",
        "listener",
        "purge_listener",
    )

    def __init__(self, size: int) -> None:
        self._size = size
        self._batches: deque[tuple[int, list[HostEvent]]] = deque()
        # The batch being handed out, one event at a time.
        self._events: deque[HostEvent] = deque()
        self._events_generation = 0
        self._purged = 0  # the newest replaced generation
        # Tasks waiting in ``next``, oldest first. Not a ParkingLot: every event of a paced
        # conversation wakes the host through here, and a lot's unpark (a generator and a
        # list per call) cost more than the rest of the handoff.
        self._readers: deque[trio.lowlevel.Task] = deque()
        self._writable = trio.lowlevel.ParkingLot()
        self._closed = False
        self.listener: Callable[[], object] | None = None
        #: Called with a replaced generation when ``purge`` drops it (``duplex.aio`` drops
        #: what it already took of that generation).
        self.purge_listener: Callable[[int], object] | None = None

    async def push(self, generation: int, batch: list[HostEvent]) -> None:
        while not self.offer(generation, batch):
            await self._writable.park()

    def offer(self, generation: int, batch: list[HostEvent]) -> bool:
        """``push`` when it would not wait (no coroutine, the reader's usual case); False
        when the queue is full and the caller must ``await push``."""
        if len(self._batches) >= self._size:
            return self._closed  # closed: dropped, as ``push`` would
        self.push_nowait(generation, batch)
        return True

    def push_nowait(self, generation: int, batch: list[HostEvent]) -> None:
        if generation <= self._purged:
            return  # a replaced conversation's task, still on its way out
        self._batches.append((generation, batch))
        if self._readers:
            trio.lowlevel.reschedule(self._readers.popleft())
        if self.listener is not None:
            self.listener()

    def purge(self, generation: int) -> None:
        """Drop every undelivered event of ``generation`` (a replaced conversation), and
        refuse its later pushes. Generations only grow, and an older conversation that was
        not replaced had stopped before the next ``start()``: nothing legitimate is refused."""
        self._purged = max(self._purged, generation)
        if self._events_generation == generation:
            self._events.clear()
        if any(g == generation for g, _ in self._batches):
            kept = [item for item in self._batches if item[0] != generation]
            self._batches.clear()
            self._batches.extend(kept)
            self._writable.unpark_all()
        if self.purge_listener is not None:
            self.purge_listener(generation)

    def close(self) -> None:
        self._closed = True
        readers = self._readers
        while readers:
            trio.lowlevel.reschedule(readers.popleft())
        self._writable.unpark_all()
        if self.listener is not None:
            self.listener()

    @property
    def finished(self) -> bool:
        """Closed and drained: ``next`` would raise ``StopAsyncIteration``."""
        return self._closed and not self._events and not self._batches

    async def next(self) -> tuple[int, HostEvent]:
        """The next event and its generation. Raises ``StopAsyncIteration`` once closed and
        drained. One checkpoint per batch (the park, or an explicit one when a batch was
        already waiting), none per event."""
        if not self._events and self._batches:
            await trio.lowlevel.checkpoint()  # a cancel point, and fairness
        while True:
            item = self.take_nowait()
            if item is not None:
                return item
            if self._closed:
                raise StopAsyncIteration
            await self._wait_readable()

    async def _wait_readable(self) -> None:
        """Sleep until a push or close wakes this task (a cancelled wait takes nothing)."""
        task = trio.lowlevel.current_task()
        readers = self._readers
        readers.append(task)

        def abort(_: object) -> trio.lowlevel.Abort:
            readers.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def take_nowait(self) -> tuple[int, HostEvent] | None:
        """``next`` without waiting (trio context, no checkpoint): the next event and its
        generation, or None when nothing is queued."""
        events = self._events
        while not events:
            if not self._batches:
                return None
            generation, batch = self._batches.popleft()
            if self._writable:
                self._writable.unpark()
            events.extend(batch)
            self._events_generation = generation
        return self._events_generation, events.popleft()

    def depth(self) -> int:
        return len(self._batches)


class Outbox:
    """Encoded client frames for the writer, the only task that sends on the transport.

    Producers that may wait call ``wait_writable()`` before deciding what to send (so a
    cancelled wait never leaves the state machine believing something was sent), then
    ``push``. The reading task's control messages use ``push_control``, which never waits:
    reading never waits on writing (SPEC §3.1).

    Two kinds of frame share the one FIFO: the host's (``push``: its text, tool outputs, raw
    events, audio appends), which outlive a connection — ``take_unsent`` hands the ones the
    writer never took to the next connection — and the connection's own (``push_connection``,
    ``push_control``: the handshake, the replay, answers to this connection's server events),
    which mean nothing to another session.
    """

    __slots__ = (
        "_closed",
        "_frames",
        "_orphaned",
        "_own",
        "_readable",
        "_stopped",
        "_taken",
        "_writable",
    )

    def __init__(self) -> None:
        self._frames: deque[str] = deque()
        self._taken = 0  # frames the writer has taken so far
        # Positions (in push order, counted from the first frame) of the connection's own
        # frames; only the rare structural frames are recorded, the host's cost nothing.
        self._own: deque[int] = deque()
        self._readable = trio.lowlevel.ParkingLot()
        self._writable = trio.lowlevel.ParkingLot()
        self._closed = False
        self._orphaned = False  # the writer has stopped: nothing will make room any more
        self._stopped = False  # ``stop``: the writer gets nothing more, the queue stays

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def orphaned(self) -> bool:
        """The writer has stopped (``orphan``)."""
        return self._orphaned

    async def wait_writable(self) -> None:
        """Wait until a waiting producer may append. Raises ``ConversationNotRunning`` once
        the outbox is closed (the conversation or its connection has ended), or when it is
        full and its writer has stopped (``orphan``): a producer never waits for room that
        cannot come."""
        if len(self._frames) < OUTBOUND_FRAMES and not self._closed:
            await trio.lowlevel.checkpoint_if_cancelled()
            return
        while True:
            if self._closed or self._orphaned:
                raise ConversationNotRunning("the conversation's connection has ended")
            if len(self._frames) < OUTBOUND_FRAMES:
                return
            await self._writable.park()

    def push(self, frames: Iterable[str]) -> None:
        if self._closed:
            raise ConversationNotRunning("the conversation's connection has ended")
        self._frames.extend(frames)
        self._readable.unpark()

    def push_control(self, frames: list[str], hosts: Collection[int] = ()) -> bool:
        """Append without waiting (``push_connection``). False when the backlog shows a
        writer that has stalled for good (see ``CONTROL_BACKLOG``); nothing is appended
        then."""
        if self._closed:
            return True  # the end is already on its way to the host
        if len(self._frames) + len(frames) > OUTBOUND_FRAMES + CONTROL_BACKLOG:
            return False
        self.push_connection(frames, hosts)
        return True

    def push_connection(self, frames: list[str], hosts: Collection[int] = ()) -> None:
        """Append the connection's own frames (the handshake and replay, the state
        machine's control messages) without waiting or bound: the protocol bounds them.
        ``take_unsent`` leaves them out, but for the indexes in ``hosts``: requests of the
        host's that the state machine sends when their turn comes (a deferred response)."""
        if self._closed:
            return
        own = self._own
        # One frame may be in the writer's hands (``orphan`` can bring it back): keep its mark.
        while own and own[0] < self._taken - 1:
            own.popleft()
        start = self._taken + len(self._frames)
        own.extend(start + i for i in range(len(frames)) if i not in hosts)
        self._frames.extend(frames)
        if self._readable:
            self._readable.unpark()

    async def next(self) -> str | None:
        """The writer's next frame, or ``None`` once closed (and drained, see ``close``) or
        stopped."""
        frames = self._frames
        while not frames or self._stopped:
            if self._closed:
                return None
            await self._readable.park()
        frame = frames.popleft()
        self._taken += 1
        if self._writable and len(frames) < OUTBOUND_FRAMES:
            self._writable.unpark_all()
        return frame

    def orphan(self, unsent: str) -> None:
        """The writer has stopped: its connection ended while it sent ``unsent`` (the last
        frame it took, first again for ``take_unsent``). Producers may still append up to
        the bound, for the next connection if there is one; beyond it they are refused."""
        self._frames.appendleft(unsent)
        self._taken -= 1
        self._orphaned = True
        self._writable.unpark_all()

    def stop(self) -> None:
        """The connection is being ended for a next one: take nothing more and hand the
        writer nothing more (it may finish the frame it holds, or fail it: ``orphan``);
        what is queued stays for ``take_unsent`` once the connection's tasks are done."""
        self._stopped = True
        self._closed = True
        self._readable.unpark_all()
        self._writable.unpark_all()

    def take_unsent(self) -> list[str]:
        """Close (dropping everything queued) and return the host's frames among it, in
        order: what the host asked for that never reached this connection."""
        own = {position for position in self._own if position >= self._taken}
        unsent = [
            frame for position, frame in enumerate(self._frames, self._taken) if position not in own
        ]
        self.close()
        return unsent

    def close(self, *, drain: bool = False) -> None:
        """Take nothing more. With ``drain`` the writer still gets what is queued (the
        conversation's last host calls reach the server); without, it is dropped (the
        connection is gone or being replaced)."""
        self._closed = True
        if not drain:
            self._frames.clear()
            self._own.clear()
        self._readable.unpark_all()
        self._writable.unpark_all()

    def depth(self) -> int:
        """Frames the writer will still send (none once stopped: they wait for the next
        connection)."""
        return 0 if self._stopped else len(self._frames)
