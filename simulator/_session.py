"""One live simulator session: the scripted model wired to its connections, with faults.

``SimSession`` sits between the transports (a WebSocket, or a WebRTC call's data channel plus
any sideband WebSockets) and the sans-IO ``ScriptedModel``. Inbound frames are handled
synchronously by ``feed`` (so the asyncio side of WebRTC can deliver them with one
``TrioPort.call``); everything the model says goes into one unbounded queue drained by a single
writer task, which applies the fault knobs (delays, close/abort after N events, garbage frames)
and fans every event out to all attached ``Outlet``s.

Invariants:
- one writer: server events leave in exactly the order the model produced them, to every
  outlet; an outlet that fails is detached, never retried;
- ``feed`` never raises for any client input (a model bug becomes a ``server_error`` event);
- the session ends (``run`` returns) after a close/abort fault, a session expiry, or when the
  owner cancels it; the record is then marked closed with the close code used.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

import numpy as np
import orjson
import trio

from duplex.protocol import (
    InputAudioBufferAppend,
    ProtocolVersion,
    SessionMode,
)

from ._config import FaultConfig, GarbageKind, IdGenerator, SimulatorConfig
from ._model import ScriptedModel
from ._scenario import RecordedEvent, Scenario, SessionRecord
from ._wire import ClientFrame, Rejection, decode_client_frame, dump_event

__all__ = ["Outlet", "SimSession"]

log = logging.getLogger(__name__)

_OVERSIZED_BYTES: Final = 17 * 1024 * 1024
# Onset stamping for the latency benchmark: a frame is voiced above this peak (int16), and an
# onset needs this much silence before it (Opus turns digital silence into tiny values).
ONSET_PEAK: Final = 300
ONSET_QUIET_NS: Final = 200_000_000


class Outlet(Protocol):
    """Somewhere server frames go: a WebSocket, a data channel."""

    name: str

    async def send(self, data: str | bytes) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    async def abort(self) -> None: ...


def _garbage(kind: GarbageKind) -> str | bytes:
    if kind == "text":
        return "}{ this is not json"
    if kind == "binary":
        return b"\x00\xffgarbage\x81"
    if kind == "non_object":
        return "[1, 2, 3]"
    if kind == "no_type":
        return '{"event_id": "event_garbage"}'
    return "x" * _OVERSIZED_BYTES


class SimSession:
    """See the module docstring."""

    def __init__(
        self,
        *,
        config: SimulatorConfig,
        record: SessionRecord,
        ids: IdGenerator,
        version: ProtocolVersion | None,
        mode: SessionMode,
        model_name: str | None,
        scenario: Scenario | None,
        faults: FaultConfig,
        webrtc: bool = False,
        audio_sink: Callable[[bytes], None] | None = None,
        audio_clear: Callable[[], None] | None = None,
        initial_session: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.record = record
        self.ids = ids
        self.mode = mode
        self.model_name = model_name
        self.scenario = scenario or Scenario()
        self.faults = faults
        self.webrtc = webrtc
        self._audio_sink = audio_sink
        self._audio_clear = audio_clear
        self._steps = list(self.scenario.steps)
        self.outlets: list[Outlet] = []
        self.model: ScriptedModel | None = None
        self._queue_send, self._queue_recv = trio.open_memory_channel[tuple[Any, ...]](math.inf)
        self._wake = trio.Event()
        self._sent = 0
        self._closed = False
        self._quiet_ns = ONSET_QUIET_NS  # the call starts silent
        self._pending_first: list[tuple[str | bytes, str]] = []
        # Applied silently before session.created (an ek_ key's minted session on a WebSocket).
        self._initial_session: dict[str, Any] | None = initial_session
        # What the initial session caused beyond session.updated (an MCP server's tool
        # listing): sent after the greeting, as the real server lists tools once it is up.
        self._initial_extras: list[dict[str, Any]] = []
        self._greeted = False
        if version is not None:
            self._start_model(version)

    # ------------------------------------------------------------------ setup

    @property
    def version(self) -> ProtocolVersion | None:
        return None if self.model is None else self.model.version

    def _start_model(self, version: ProtocolVersion) -> None:
        self.model = ScriptedModel(
            version=version,
            mode=self.mode,
            config=self.config,
            ids=self.ids,
            model=self.model_name,
            webrtc=self.webrtc,
        )
        if self.scenario.speech_transcript is not None:
            self.model.speech_transcript = self.scenario.speech_transcript
        self.record.version = version
        self.record.session_id = self.model.session_id
        self.record.conversation_source = self.model.conversation
        if self._initial_session is not None:
            self._apply_initial(self._initial_session)
        # v1 answers its own session.create with session.created; v2 greets at once.
        if version is ProtocolVersion.V2 and self.scenario.send_session_created and not self.webrtc:
            self._emit(self.model.session_created())

    def _after_created(self) -> None:
        """Connect-time extras (garbage faults, ``on_connect``), once per session."""
        if self._greeted:
            return
        self._greeted = True
        extras, self._initial_extras = self._initial_extras, []
        if extras:
            self._emit([self._stamp(e) for e in extras])
        for kind in self.faults.garbage_after_created:
            self._queue_send.send_nowait(("raw", _garbage(kind)))
        self._emit([self._stamp(e) for e in self.scenario.on_connect])

    def apply_initial_session(self, session: dict[str, Any]) -> None:
        """The ``session`` part of a WebRTC call creation: applied silently before greeting."""
        self._initial_session = session
        if self.model is not None:
            self._apply_initial(session)

    def _apply_initial(self, session: dict[str, Any]) -> None:
        assert self.model is not None
        # Through the same parser as a client's session.update; the reply is not sent (the
        # greeting's session.created already shows the result).
        frame = decode_client_frame(
            dump_event({"type": "session.update", "session": session}), self.model.version
        )
        if isinstance(frame, ClientFrame):
            reply = self.model.receive(frame.event, trio.current_time(), frame.raw)
            kinds = [e.get("type") for e in reply]
            if "session.updated" in kinds:
                self._initial_extras = reply[kinds.index("session.updated") + 1 :]

    def attach(self, outlet: Outlet, *, greet: bool) -> None:
        """Add an outlet; with ``greet`` it alone receives a ``session.created`` first."""
        self.outlets.append(outlet)
        if greet and self.model is not None and self.scenario.send_session_created:
            self._queue_send.send_nowait(("event_to", outlet, self.model.session_created()[0]))
            self._after_created()

    def detach(self, outlet: Outlet) -> None:
        if outlet in self.outlets:
            self.outlets.remove(outlet)

    # ------------------------------------------------------------------ inbound

    def _stamp(self, event: dict[str, Any]) -> dict[str, Any]:
        if "event_id" in event:
            return dict(event)
        return {"type": event.get("type"), "event_id": self.ids.event(), **event}

    def feed(self, data: str | bytes, source: str) -> None:
        """Handle one client frame. Synchronous; never raises."""
        if self._closed:
            return
        try:
            self._feed(data, source)
        except Exception:
            log.exception("simulator model failed on a client frame")
            if self.model is not None:
                self._emit(
                    [
                        self.model.error(
                            None,
                            "The server had an error while processing your request.",
                            error_type="server_error",
                        )
                    ]
                )

    def _feed(self, data: str | bytes, source: str) -> None:
        if self.model is None:
            # intent=transcription: the first client event picks the dialect.
            self._pending_first.append((data, source))
            self._wake.set()
            return
        model = self.model
        now = trio.current_time()
        frame: ClientFrame | Rejection
        if isinstance(data, bytes):
            frame = Rejection(
                "invalid_event", "Binary messages are not supported; send JSON text messages."
            )
        else:
            frame = decode_client_frame(data, model.version)
        if isinstance(frame, ClientFrame):
            # An append's raw dict holds the base64 audio a second time: keep only the typed
            # event (decoded PCM) so long audio sessions do not hold every chunk twice.
            is_append = isinstance(frame.event, InputAudioBufferAppend)
            rec = RecordedEvent(
                type=frame.event.TYPE,
                event=frame.event,
                raw=None if is_append else frame.raw,
                rejection=None,
                source=source,
                time=now,
            )
        else:
            rec = RecordedEvent(
                type=frame.type, event=None, raw=None, rejection=frame, source=source, time=now
            )
        self.record.record(rec)
        step = self._steps[0] if self._steps else None
        fired = step is not None and step.matches(rec)
        if not self.scenario.replace_model and not (fired and step is not None and step.consume):
            if isinstance(frame, ClientFrame):
                self._emit(model.receive(frame.event, now, frame.raw))
            else:
                self._emit(
                    [
                        model.error(
                            frame.code,
                            frame.message,
                            param=frame.param,
                            client_event_id=frame.client_event_id,
                        )
                    ]
                )
        if fired and step is not None:
            self._steps.pop(0)
            self._emit([self._stamp(e) for e in step.emit])
            if step.close_code is not None:
                self._queue_send.send_nowait(("close", step.close_code, step.close_reason))

    def feed_audio(self, pcm: bytes) -> None:
        """24 kHz mono PCM16 from the WebRTC media track."""
        self._stamp_onset(pcm)
        if self._closed or self.model is None or self.scenario.replace_model:
            return
        try:
            self._emit(self.model.append_audio(pcm, trio.current_time()))
        except Exception:
            log.exception("simulator model failed on input audio")

    def _stamp_onset(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
        voiced = bool(samples.size) and int(np.abs(samples).max()) > ONSET_PEAK
        if voiced and self._quiet_ns >= ONSET_QUIET_NS:
            self.record.audio_onsets_ns.append(time.monotonic_ns())
        if voiced:
            self._quiet_ns = 0
        else:
            self._quiet_ns += samples.size * 1_000_000_000 // 24_000

    def _emit(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            kind = event.get("type")
            if kind == "output_audio_buffer.cleared" and self._audio_clear:
                self._audio_clear()
            self._queue_send.send_nowait(("event", event))
            if kind == "session.created":
                self._after_created()
        if self.model is not None and self._audio_sink is not None:
            for pcm in self.model.take_audio():
                self._audio_sink(pcm)
        self._wake.set()

    # ------------------------------------------------------------------ tasks

    async def run(self) -> None:
        """Serve until a fault or expiry closes the session (or the caller cancels)."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, nursery.cancel_scope)
                nursery.start_soon(self._clock)
        finally:
            self._closed = True
            if not self.record.closed:
                self.record.mark_closed(None)

    async def _clock(self) -> None:
        start = trio.current_time()
        cap = self._session_cap_s()
        expiry = start + cap if cap is not None else math.inf
        grace = start + self.config.transcription_dialect_grace_s
        while True:
            deadline = expiry
            if self.model is None:
                deadline = min(deadline, grace)
            else:
                nd = self.model.next_deadline()
                if nd is not None:
                    deadline = min(deadline, nd)
            with trio.move_on_at(deadline):
                await self._wake.wait()
            now = trio.current_time()
            if self.model is None and (self._pending_first or now >= grace):
                self._pick_dialect()
            if self.model is not None:
                self._emit(self.model.poll(now))
            # Re-arm only now: our own _emit calls above set the old event, and arming before
            # them would wake this loop immediately, forever (a busy loop per session). No
            # feed can run between the wait and here (no checkpoint), so no wake-up is lost.
            self._wake = trio.Event()
            if now >= expiry and self.model is not None:
                minutes = (cap or 0) / 60
                message = f"Your session hit the maximum duration of {minutes:g} minutes."
                self._emit([self.model.error("session_expired", message)])
                self._queue_send.send_nowait(("close", 1001, message[:120]))
                return

    def _session_cap_s(self) -> float | None:
        """The session cap: the fault knob when set, else ``SimulatorConfig``'s."""
        if self.faults.session_max_duration_s is not None:
            return self.faults.session_max_duration_s
        return self.config.session_max_duration_s

    def _pick_dialect(self) -> None:
        first = self._pending_first[0][0] if self._pending_first else None
        is_v1 = False
        if isinstance(first, str):
            try:
                obj = orjson.loads(first)
            except orjson.JSONDecodeError:
                obj = None
            is_v1 = isinstance(obj, dict) and obj.get("type") == "session.create"
        self._start_model(ProtocolVersion.V1 if is_v1 else ProtocolVersion.V2)
        pending, self._pending_first = self._pending_first, []
        for data, source in pending:
            self.feed(data, source)

    async def _writer(self, scope: trio.CancelScope) -> None:
        async for item in self._queue_recv:
            kind = item[0]
            if kind == "close":
                await self._close_all(item[1], item[2])
                scope.cancel()
                return
            if kind == "raw":
                await self._send_all(item[1])
                continue
            event: dict[str, Any] = item[-1]
            delay = self.faults.event_delay_s + self.faults.event_delays.get(
                str(event.get("type")), 0.0
            )
            if delay > 0:
                await trio.sleep(delay)
            text = dump_event(event)
            if kind == "event_to":
                await self._send_one(item[1], text)
            else:
                await self._send_all(text)
            self._sent += 1
            self.record.record_sent(str(event.get("type")))
            f = self.faults
            if f.drop_after_events is not None and self._sent >= f.drop_after_events:
                for outlet in list(self.outlets):
                    await outlet.abort()
                self.record.mark_closed(None)
                scope.cancel()
                return
            if f.close_after_events is not None and self._sent >= f.close_after_events:
                await self._close_all(f.close_code, f.close_reason)
                scope.cancel()
                return

    async def _send_one(self, outlet: Outlet, data: str | bytes) -> None:
        try:
            await outlet.send(data)
        except Exception:
            # The peer went away; the owner notices on its read side.
            self.detach(outlet)

    async def _send_all(self, data: str | bytes) -> None:
        for outlet in list(self.outlets):
            await self._send_one(outlet, data)

    async def _close_all(self, code: int, reason: str) -> None:
        self.record.mark_closed(code)
        for outlet in list(self.outlets):
            with contextlib.suppress(Exception):
                await outlet.close(code, reason)
