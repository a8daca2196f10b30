"""``ConnectionReader``: a conversation's reader, the task that applies what the server sends.

A mixin of ``Conversation`` and part of it (``_conversation``'s docstring draws the tasks),
kept in its own module only for size. The reader takes whole batches from the transport,
parses each text frame once, hands the batch to the state machine and applies its ``Step``:
control messages into the outbox without waiting, events into the host queue (waiting there
is the backpressure on a slow host), the end last.

Invariants:
- One batch is applied by one synchronous call (``consume``), with no checkpoint inside:
  the state machine, the outbox, the history and the host queue move together. What may
  wait (room in the host queue; then the end of the connection's tasks) is left to
  ``_follow_up``, and nothing reaches the host out of order meanwhile (the reader takes no
  next batch before it).
- A step that ends the connection is applied in that same call (``_end_step``): from then on
  the conversation is ended or reconnecting for every host call.
- ``_reading`` is True exactly while the reader holds nothing of a batch (the rotation timer
  may end the connection then, and only then).
- Under ``duplex.aio`` in guest mode the host's loop may make the ``consume`` calls itself,
  on readiness, while the task is parked (``_loop_reads``); the task then does what the
  loop hands back, exactly as if it had read the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio

from duplex.protocol import (
    AudioFrame,
    AudioOut,
    ClientEvent,
    ProtocolVersion,
    ResponseCreate,
    ServerEvent,
    ServerEventParser,
)
from duplex.transports import Inbound, Transport, TransportClosed, TransportEnded

from ._config import EngineConfig
from ._g711 import G711Transcoder
from ._history import HISTORY_EVENTS, ConversationHistory
from ._host_audio import to_host_g711
from ._host_events import HostEvent
from ._loop_reads import RECEIVE, LoopReads, _Receive
from ._queues import HostQueue, Outbox
from ._reconnect import ReconnectPolicy
from ._resume import Ending, classify, rotation
from ._state_machine import ConversationState, Step

__all__ = ["ConnectionReader"]

wire_logger = logging.getLogger("duplex.wire")


class ConnectionReader:
    """The reader of ``Conversation`` (see the module docstring), which sets the attributes
    below."""

    config: EngineConfig
    state: ConversationState
    history: ConversationHistory
    policy: ReconnectPolicy
    generation: int
    _version: ProtocolVersion
    _host: HostQueue
    _outbox: Outbox
    _g711: G711Transcoder | None
    _loop_reads: LoopReads | None
    _reading: bool
    _rotate_due: bool
    _respond_after_resume: bool
    _reconnecting: bool
    _ended: bool
    _live: trio.Event

    if TYPE_CHECKING:

        def _encode(self, events: list[ClientEvent]) -> list[str]: ...

        def _emit_end(self, step: Step) -> bool: ...

        def _end_connection(self, ending: Ending) -> None: ...

    async def _reader(self, transport: Transport) -> None:
        """Batches of frames → the state machine → its decisions, applied in order. Under
        ``duplex.aio`` the host's loop may take the batches instead (``_loop_reads``); what
        needs to wait comes back here either way."""
        consume = self._consumer(transport)
        state = self.state
        loop_reads = self._loop_reads
        may_read = self._may_read
        follow: _FollowUp | _Receive | None
        while True:
            if not state.running:
                # Closed or replaced while this task was between reads: nothing it reads can
                # reach anyone now. (A closed transport raises TransportClosed without a
                # checkpoint, so looping here would never yield to the cancellation.)
                return
            if self._rotate_due and not state.replying:
                self._respond_after_resume = False  # nothing was cut
                self._end_connection(rotation())
                return
            self._reading = True
            follow = RECEIVE
            if loop_reads is not None:
                follow = await loop_reads.read(transport, consume, may_read)
            if follow is RECEIVE:
                try:
                    batch = await transport.receive_batch()
                except TransportClosed:
                    batch = [TransportEnded("error", None, "the transport closed without an end")]
                self._reading = False
                follow = consume(batch)
            self._reading = False
            if follow is not None and await self._follow_up(follow):  # type: ignore[arg-type]
                return

    def _may_read(self) -> bool:
        """The reader's checks between batches (the top of its loop) pass."""
        state = self.state
        return state.running and not (self._rotate_due and not state.replying)

    def _consumer(self, transport: Transport) -> Callable[[list[Inbound]], _FollowUp | None]:
        """The synchronous part of reading a batch, for this connection: parse, the state
        machine, its sends, the host queue. Returns what must wait (an end, a full host
        queue) for ``_follow_up``; None when the batch is done."""
        version = self._version
        parse = ServerEventParser(
            version,
            handoff_tool_name=self.config.handoff_tool_name,
            silence_tool_name=self.config.silence_tool_name,
            # Over WebRTC the audio is the track, whatever the session's format.
            audio_format="pcm16" if transport.audio_native else self.config.audio_format,
        ).parse
        g711 = self._g711
        state = self.state
        drop_event_audio = state.drop_event_audio
        debug_wire = wire_logger.isEnabledFor(logging.DEBUG)
        receive = state.receive
        host = self._host
        generation = self.generation
        apply_history = self.history.apply
        history_events = HISTORY_EVENTS

        def consume(batch: list[Inbound]) -> _FollowUp | None:
            events: list[ServerEvent] = []
            ended: TransportEnded | None = None
            for item in batch:
                if type(item) is str:
                    event = parse(item)
                    if debug_wire:
                        wire_logger.debug("← %s (%d chars)", event.TYPE, len(item))
                    if drop_event_audio and type(event) is AudioOut:
                        continue  # the state machine's rule: media audio only (WebRTC)
                    if type(event) in history_events:
                        apply_history(event)
                    events.append(event)
                elif type(item) is AudioFrame:
                    events.append(AudioOut(item))
                else:
                    assert isinstance(item, TransportEnded)
                    ended = item
            was_responding = state.responses.active
            step = receive(events, ended)
            stalled_writer = False
            if (
                step.send
                and not self._outbox.push_control(
                    self._encode(step.send), _host_requests(step.send)
                )
                and step.end is None
            ):
                # Never dropped: a writer this far behind ends the conversation instead.
                stalled = state.fail("the connection stopped accepting writes")
                step.forward.extend(stalled.forward)
                step.end = stalled.end
                stalled_writer = True
            if step.end is not None:
                return self._end_step(step, was_responding, stalled_writer)
            if step.forward:
                if g711 is not None:
                    to_host_g711(g711, step.forward, state.ledger.is_truncated)
                if not host.offer(generation, step.forward):
                    # Backpressure. The reader holds the batch's events until the host takes
                    # them: a rotation due meanwhile must wait for them (``_rotation_timer``
                    # ends only a reader that holds nothing), also when the loop took the
                    # batch and the reader task has yet to wake for them.
                    self._reading = False
                    return _FollowUp(step.forward, None)
            return None

        return consume

    def _end_step(self, step: Step, was_responding: bool, stalled_writer: bool) -> _FollowUp:
        """A step that ends the connection, applied at once, in the step that read it (on the
        loop too): from here on the conversation is ended or reconnecting for everyone
        (host calls wait or are refused, ``running`` says so). Returns what must wait: the
        last events, for the host queue's room, then the connection's end."""
        self._reading = False
        assert step.end is not None
        ending = None
        if not self._ended and not stalled_writer:  # an engine fault is not a drop
            ending = classify(self.policy, step.forward, step.end)
        if ending is None:
            self._emit_end(step)
            return _DONE
        # Resumable: the conversation goes on. Host calls wait from here on; the old
        # connection's last events are delivered before ConversationReconnecting.
        self._reconnecting = True
        self._live = trio.Event()
        self._respond_after_resume = was_responding or self.state.responses.active
        if step.forward:
            if self._g711 is not None:
                to_host_g711(self._g711, step.forward, self.state.ledger.is_truncated)
            if not self._host.offer(self.generation, step.forward):
                return _FollowUp(step.forward, ending)
        self._end_connection(ending)
        return _DONE

    async def _follow_up(self, follow: _FollowUp) -> bool:
        """What a batch left to wait for: the host queue's room for its events, then, if it
        ended the connection, that end. True when the reader is done."""
        if follow.forward:
            await self._host.push(self.generation, follow.forward)
        if follow.ending is None:
            return follow is _DONE
        self._end_connection(follow.ending)
        return True


def _host_requests(events: list[ClientEvent]) -> list[int]:
    # The state machine's control messages answer this connection's events, but for the
    # response requests it sends when their turn comes: those are the host's (or the
    # user's, after a tool output), and a next connection must still get them.
    return [index for index, event in enumerate(events) if type(event) is ResponseCreate]


class _FollowUp:
    """What a batch left for the reader task (``Conversation._follow_up``): host events the
    full queue did not take yet, and the connection's end to apply after them, if any."""

    __slots__ = ("ending", "forward")

    def __init__(self, forward: list[HostEvent], ending: Ending | None) -> None:
        self.forward = forward
        self.ending = ending


#: The reader is done (the conversation ended, or the connection did with nothing waiting).
_DONE: Final = _FollowUp([], None)
