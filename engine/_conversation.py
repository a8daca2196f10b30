"""One conversation's trio side: its connection and the tasks that move bytes and events.

The tasks, as they run (one nursery per conversation; the transport's own tasks, if any, in a
nursery outside it so a close handshake can still complete)::

                       ┌──────────────────── reader task ─────────────────────┐
    socket/data channel│ transport.receive_batch() → parse → ConversationState │
                       │              .receive() → Step                       │
                       └──────┬──────────────────────┬────────────────────┬───┘
                    forward   │           send (control, never waits)     │ end
                              ▼                      ▼                    ▼
                     HostQueue ──► Engine.events()  Outbox ──► writer task ──► transport.send_text
                              ▲                      ▲
      Engine.close() ─ end ───┘   host calls ─ Step ─┤ (wait for space, then decide)
                                                     │
      host audio ─► audio channel ─► audio-mux task ─┴─► (WebSocket: JSON appends)
                                                  └────► transport.send_audio (WebRTC: RTP)

- reader: pulls whole batches from the transport (over WebSocket the socket read happens
  inside ``receive_batch()``), parses each text frame once, hands the batch to the state
  machine and applies its ``Step``: control messages into the outbox without waiting, events
  into the host queue (waiting there is the backpressure on a slow host), the end last.
- writer: the only task that sends text on the transport; drains the outbox in order.
- audio-mux: host frames → whole samples (an odd byte is carried to the next frame) → 24 kHz
  mono → JSON appends through the outbox (WebSocket) or RTP (WebRTC, sent directly: the media
  track is not the text writer's socket).

Every decision (what to forward, what to send, when the conversation ends) is the state
machine's (``_state_machine.py``); this module holds none. The ``ConversationClosed`` the
state machine returns is queued for the host here and only here (``_emit_end``).

Channel sizes: the audio channel holds ``EngineConfig.audio_queue_size`` frames, dropped and
counted when full so ``send_audio`` never blocks the host; the outbox and host queue bounds are
in ``_queues.py``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import trio

from duplex.protocol import (
    AudioFrame,
    AudioOut,
    ClientEvent,
    Resampler,
    ServerEvent,
    ServerEventParser,
    audio_append_text,
    encode_client_event,
)
from duplex.transports import Transport, TransportClosed, TransportEnded

from ._config import EngineConfig
from ._errors import ConversationNotRunning, ConversationStarted, InvalidRequest
from ._queues import HostQueue, Outbox
from ._session import SessionSettings
from ._state_machine import ConversationState, Step

__all__ = ["Conversation"]

logger = logging.getLogger(__name__)
wire_logger = logging.getLogger("duplex.wire")

Connect = Callable[[trio.Nursery], Awaitable[Transport]]

BYTES_PER_SAMPLE: Final = 2


class Conversation:
    """A conversation; created by the engine and run with ``nursery.start(conv.run)``.

    The engine talks to it through ``run``/``go``, ``close``, ``replace``, ``running``, the
    host calls (``send_text``, ``send_handoff_output``, ``update_prompt``, ``submit_audio``),
    ``delivered``, ``counters`` and ``queue_depths`` — nothing else.
    """

    def __init__(
        self,
        *,
        config: EngineConfig,
        generation: int,
        session_id: str,
        connect: Connect,
        start_event: ClientEvent,
        host: HostQueue,
        session: SessionSettings | None = None,
    ) -> None:
        self.config = config
        self.generation = generation
        self.session_id = session_id
        self.state = ConversationState(
            version=config.version,
            mode=config.mode,
            forward_unknown_events=config.forward_unknown_events,
            user_text_prefix=config.user_text_prefix,
            secrets=(config.api_key,),
            session=session,
        )
        self.counters = self.state.counters
        self.done = trio.Event()
        self.transport: Transport | None = None
        self._version = config.version
        self._connect = connect
        self._start_event = start_event
        self._host = host
        self._outbox = Outbox()
        self._cancel_scope = trio.CancelScope()
        self._go = trio.Event()  # the engine has announced ConversationStarted
        self._resampler = Resampler()
        self._audio_send, audio_recv = trio.open_memory_channel[AudioFrame](config.audio_queue_size)
        self._audio_recv = AudioInbox(audio_recv)

    # ---- lifecycle ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[ConversationStarted]) -> None:
        """Connect, queue the handshake, then (once the engine called ``go()``) run the tasks
        until the conversation ends.

        Raises (before ``task_status.started``): the connect error or the cancellation, for
        ``start()`` to translate. After it has started nothing escapes: a fault ends the
        conversation with ``Error`` + ``ConversationClosed("error")``.
        """
        try:
            async with trio.open_nursery() as transport_nursery:
                try:
                    with self._cancel_scope:
                        transport = await self._connect(transport_nursery)
                        self.transport = transport
                        step = self.state.connected(
                            session_id=self.session_id,
                            transport=transport.kind,
                            audio_native=transport.audio_native,
                            start_event=self._start_event,
                        )
                        self._outbox.push(self._encode(step.send))
                        started = step.forward[0]
                        assert type(started) is ConversationStarted
                        task_status.started(started)
                        # start() queues ConversationStarted and then calls go(): nothing of
                        # this conversation may reach the host before it.
                        await self._go.wait()
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._writer, transport)
                            nursery.start_soon(self._reader, transport)
                            nursery.start_soon(self._audio_mux, transport)
                finally:
                    self._outbox.close()
                    self._audio_recv.release()  # a commit waiting for the mux goes on
                    if self.transport is not None:
                        with (
                            trio.CancelScope(shield=True),
                            trio.move_on_after(self.config.close_timeout),
                        ):
                            await self.transport.aclose()
                    transport_nursery.cancel_scope.cancel()
        except Exception as exc:
            if not self._go.is_set():
                raise  # a connect failure: start() translates it
            # A bug or an unexpected transport fault after start: never take the engine down.
            logger.exception("conversation %s failed", self.session_id)
            leaf: BaseException = exc
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]  # name the fault, not the nursery's group
            self._emit_end(self.state.fail(f"internal error: {type(leaf).__name__}: {leaf}"))
        finally:
            self.done.set()

    def go(self) -> None:
        """``ConversationStarted`` is queued for the host: let the tasks run."""
        self._go.set()

    def close(self) -> bool:
        """The host's ``close()``: queue ``ConversationClosed("requested")`` and stop. False
        (nothing emitted) if it was not running."""
        return self._emit_end(self.state.close())

    def replace(self) -> None:
        """Stop without emitting anything more; drop what the host has not taken yet if it
        was running (a closed or ended conversation keeps its ``ConversationClosed``)."""
        self._cancel_scope.cancel()  # first, so a task parked on the host queue stays parked
        if self.state.replace():
            self._host.purge(self.generation)

    def _emit_end(self, step: Step) -> bool:
        """The one place a ``ConversationClosed`` is queued for the host (without waiting:
        the host may be the caller, and the state machine returns it once)."""
        if step.end is None:
            return False
        step.forward.append(step.end)
        self._host.push_nowait(self.generation, step.forward)
        self._outbox.close()
        self._cancel_scope.cancel()
        return True

    # ---- tasks ----------------------------------------------------------------------

    async def _reader(self, transport: Transport) -> None:
        """Batches of frames → the state machine → its decisions, applied in order."""
        version = self._version
        parse = ServerEventParser(
            version,
            handoff_tool_name=self.config.handoff_tool_name,
            silence_tool_name=self.config.silence_tool_name,
        ).parse
        drop_event_audio = self.state.drop_event_audio
        debug_wire = wire_logger.isEnabledFor(logging.DEBUG)
        receive = self.state.receive
        host = self._host
        generation = self.generation
        while True:
            try:
                batch = await transport.receive_batch()
            except TransportClosed:
                batch = [TransportEnded("error", None, "the transport closed without an end")]
            events: list[ServerEvent] = []
            ended: TransportEnded | None = None
            for item in batch:
                if type(item) is str:
                    event = parse(item)
                    if debug_wire:
                        wire_logger.debug("← %s (%d chars)", event.TYPE, len(item))
                    if drop_event_audio and type(event) is AudioOut:
                        continue  # the state machine's rule: media audio only (WebRTC)
                    events.append(event)
                elif type(item) is AudioFrame:
                    events.append(AudioOut(item))
                else:
                    assert isinstance(item, TransportEnded)
                    ended = item
            step = receive(events, ended)
            if (
                step.send
                and not self._outbox.push_control(self._encode(step.send))
                and step.end is None
            ):
                # Never dropped: a writer this far behind ends the conversation instead.
                stalled = self.state.fail("the connection stopped accepting writes")
                step.forward.extend(stalled.forward)
                step.end = stalled.end
            if step.end is not None:
                self._emit_end(step)
                return
            if step.forward:
                await host.push(generation, step.forward)  # backpressure

    async def _writer(self, transport: Transport) -> None:
        """The only task that sends text on the transport."""
        outbox = self._outbox
        while True:
            text = await outbox.next()
            if text is None:
                return
            if wire_logger.isEnabledFor(logging.DEBUG):
                wire_logger.debug("→ %s (%d chars)", _frame_type(text), len(text))
            try:
                await transport.send_text(text)
            except TransportClosed:
                # The connection is gone: host calls now raise ConversationNotRunning, and
                # the end reaches the host through the transport's TransportEnded.
                outbox.close()
                return

    async def _audio_mux(self, transport: Transport) -> None:
        """Host audio → whole samples → 24 kHz mono → the wire (JSON appends, or RTP)."""
        convert = self._resampler.convert
        align = PcmAligner().align
        outbox = self._outbox
        counters = self.counters
        native = transport.audio_native
        async for frame in self._audio_recv:
            frame = convert(align(frame))
            if not frame.pcm:
                continue
            if native:
                try:
                    await transport.send_audio(frame)
                except TransportClosed:
                    return
            else:
                try:
                    await outbox.wait_writable()
                    outbox.push((audio_append_text(frame.pcm),))
                except ConversationNotRunning:
                    return
                counters.client_events += 1

    # ---- host calls -----------------------------------------------------------------

    async def _host_call(self, decide: Callable[[], Step]) -> None:
        """Wait for room in the outbox, then let the state machine decide and queue what it
        sends, with no checkpoint in between: a cancelled wait changes nothing."""
        await self._outbox.wait_writable()
        step = decide()
        self._outbox.push(self._encode(step.send))

    async def send_text(self, text: str, *, respond: bool) -> None:
        self._precheck()
        await self._host_call(lambda: self.state.send_text(text, respond=respond))

    async def send_handoff_output(self, handoff_id: str, text: str, *, final: bool) -> None:
        self.state.check_handoff(handoff_id)
        await self._host_call(lambda: self.state.handoff_output(handoff_id, text, final=final))

    async def update_prompt(self, prompt: str) -> None:
        self._precheck()
        await self._host_call(lambda: self.state.update_prompt(prompt))

    def submit_audio(self, frame: AudioFrame) -> bool:
        """Queue host audio without blocking; False (and counted) when the queue is full."""
        self.state.check_audio(frame)
        try:
            self._audio_send.send_nowait(frame)
        except trio.WouldBlock:
            self.counters.audio_in_dropped += 1
            return False
        self._audio_recv.busy()
        self.counters.audio_in += 1
        return True

    # ---- the full host API (issue 13) ---------------------------------------------------

    async def send_tool_output(self, call_id: str, output: str, *, respond: bool) -> None:
        self._precheck()
        self.state.check_tool_call(call_id)
        await self._host_call(lambda: self.state.tool_output(call_id, output, respond=respond))

    async def update_session(
        self, session: Any, *, tools: Iterable[Any] | None, instructions: str | None
    ) -> None:
        self._precheck()
        tools = None if tools is None else tuple(tools)
        await self._host_call(
            lambda: self.state.update_session(session, tools=tools, instructions=instructions)
        )

    async def commit_audio(self, *, respond: bool) -> None:
        self._precheck()
        self.state.check_turn_control("commit_audio")
        # Audio the host sent before this call must reach the wire before the commit.
        await self._audio_recv.drained()
        await self._host_call(lambda: self.state.commit_audio(respond=respond))

    async def clear_audio(self) -> None:
        self._precheck()
        self.state.check_turn_control("clear_audio")
        await self._audio_recv.drained()
        await self._host_call(self.state.clear_audio)

    async def interrupt(self) -> None:
        self._precheck()
        await self._outbox.wait_writable()
        step = self.state.interrupt()
        self._outbox.push(self._encode(step.send))
        if step.forward:
            # AudioInterrupted: structural (one per call), never waits on the host — the
            # caller may be the task that reads events().
            self._host.push_nowait(self.generation, step.forward)

    async def create_response(
        self,
        *,
        instructions: str | None,
        conversation: str,
        metadata: Mapping[str, str] | None,
        output_modalities: Sequence[str] | None,
        input: Iterable[Any] | None,
    ) -> None:
        self._precheck()
        items = None if input is None else tuple(input)
        await self._host_call(
            lambda: self.state.create_response(
                instructions=instructions,
                conversation=conversation,
                metadata=metadata,
                output_modalities=output_modalities,
                input=items,
            )
        )

    async def send_image(self, data: bytes, mime_type: str, *, text: str | None) -> None:
        self._precheck()
        await self._host_call(lambda: self.state.image(data, mime_type, text=text))

    async def send_event(self, event: Mapping[str, Any]) -> None:
        """A raw client event, encoded as given, through the one writer."""
        self._precheck()
        if not isinstance(event, Mapping) or type(event.get("type")) is not str:
            raise InvalidRequest("a raw event must be a mapping with a string 'type'")
        try:
            text = json.dumps(dict(event), ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"a raw event must be JSON-serialisable: {exc}") from exc
        await self._outbox.wait_writable()
        self._precheck()
        self._outbox.push((text,))
        self.counters.client_events += 1
        self.counters.raw_events_sent += 1

    @property
    def running(self) -> bool:
        return self.state.running

    def _precheck(self) -> None:
        if not self.state.running or self._outbox.closed:
            raise ConversationNotRunning()

    def delivered(self, event: AudioOut) -> None:
        """The host took ``event`` from ``events()``."""
        self.state.audio_delivered(event)

    def queue_depths(self) -> dict[str, int]:
        return {
            "audio_in": self._audio_send.statistics().current_buffer_used,
            "outbound": self._outbox.depth(),
        }

    def _encode(self, events: list[ClientEvent]) -> list[str]:
        self.counters.client_events += len(events)
        version = self._version
        return [encode_client_event(event, version) for event in events]


class AudioInbox:
    """The audio-mux's end of the host audio channel, which also tells when every frame
    submitted so far has been handed on (``drained``): a commit or clear must follow the
    audio sent before it. ``busy()`` is called with each submitted frame; the mux marks the
    inbox idle whenever it comes back for more and the channel is empty."""

    __slots__ = ("_idle", "_recv", "_stopped")

    def __init__(self, recv: trio.MemoryReceiveChannel[AudioFrame]) -> None:
        self._recv = recv
        self._idle = trio.Event()
        self._idle.set()
        self._stopped = False

    def busy(self) -> None:
        if self._idle.is_set() and not self._stopped:
            self._idle = trio.Event()

    async def drained(self) -> None:
        await self._idle.wait()

    def release(self) -> None:
        """The mux has stopped: nothing more will be handed on; stop every wait."""
        self._stopped = True
        self._idle.set()

    def __aiter__(self) -> AudioInbox:
        return self

    async def __anext__(self) -> AudioFrame:
        if self._recv.statistics().current_buffer_used == 0:
            self._idle.set()
        try:
            return await self._recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None


class PcmAligner:
    """Whole PCM16 sample frames only: a frame whose length is not a multiple of
    ``2 × channels`` keeps its tail for the next frame, so one odd frame cannot shift every
    later sample by a byte (issue 12 item 9). A change of rate or channel count starts over."""

    __slots__ = ("_carry", "_shape")

    def __init__(self) -> None:
        self._carry = b""
        self._shape = (0, 0)

    def align(self, frame: AudioFrame) -> AudioFrame:
        width = BYTES_PER_SAMPLE * frame.channels
        shape = (frame.sample_rate, frame.channels)
        carry = self._carry
        if not carry and len(frame.pcm) % width == 0:
            self._shape = shape
            return frame  # the common case: whole samples, nothing carried
        if shape != self._shape:
            carry = b""
            self._shape = shape
        pcm = carry + frame.pcm
        cut = len(pcm) - len(pcm) % width
        self._carry = pcm[cut:]
        return AudioFrame(pcm[:cut], frame.sample_rate, frame.channels)


def _frame_type(text: str) -> str:
    # Wire logging names the event type without decoding the frame (and never logs audio).
    start = text.find('"type":"')
    if start < 0:
        return "?"
    start += 8
    end = text.find('"', start)
    return text[start:end] if 0 < end - start < 80 else "?"
