"""Scenarios (scripted steps for tests) and the per-session record of client events.

A ``Scenario`` is queued on the ``Simulator`` and claimed by the next session that opens
(FIFO; WebRTC calls claim one when the call is created). Its ``steps`` are matched in order
against the session's client events: when the current step's ``expect`` type (and optional
``predicate``) matches, the step fires — its ``emit`` events are sent (an ``event_id`` is
added when missing) and, if ``close_code`` is set, the connection is then closed with it.
With ``replace_model`` the scripted model never sees client events (only steps answer);
otherwise a matched step's event is handled by the model too unless ``step.consume``.

``SessionRecord`` keeps every client frame of a session — typed and parsed, or the
``Rejection`` the server answered — and the types of the server events sent, and lets a test
``await record.wait_for("response.create")``. For history checks (e.g. what a reconnecting
client replayed) it shows the items the client sent with ``conversation.item.create``
(``received_items``) and the conversation the model holds (``conversation``, ``history``).

Invariants:
- records are appended in arrival order and never rewritten;
- ``wait_for`` returns as soon as the condition holds, including if it already held.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio

from duplex.protocol import ClientEvent, ProtocolVersion, SessionMode

from ._config import FaultConfig
from ._wire import Rejection

__all__ = ["RecordedEvent", "Scenario", "ScenarioStep", "SessionRecord"]


@attrs.frozen(kw_only=True)
class RecordedEvent:
    """One client frame as the simulator saw it.

    ``event`` is the typed client event (``None`` when rejected); ``raw`` the decoded JSON
    object when there was one; ``rejection`` the ``error`` the server answered with;
    ``source`` is ``"websocket"``, ``"datachannel"`` or ``"sideband"``.
    """

    type: str | None
    event: ClientEvent | None
    raw: dict[str, Any] | None = attrs.field(repr=False)
    rejection: Rejection | None
    source: str
    time: float


@attrs.frozen(kw_only=True)
class ScenarioStep:
    """Expect a client event, then emit server events and/or close."""

    expect: str
    predicate: Callable[[RecordedEvent], bool] | None = None
    emit: tuple[dict[str, Any], ...] = ()
    close_code: int | None = None
    close_reason: str = ""
    #: when true the scripted model does not see the matched event
    consume: bool = False

    def matches(self, record: RecordedEvent) -> bool:
        if self.expect != "*" and record.type != self.expect:
            return False
        return self.predicate is None or bool(self.predicate(record))


@attrs.frozen(kw_only=True)
class Scenario:
    """A script for one session. See the module docstring.

    Attributes:
        steps: the expected client events, in order.
        replace_model: the scripted model answers nothing; only steps do.
        send_session_created: send ``session.created`` on connect even with ``replace_model``.
        faults: fault knobs for this session (default: the server's).
        speech_transcript: transcript of this session's committed speech turns.
        on_connect: events sent right after ``session.created``.
    """

    steps: tuple[ScenarioStep, ...] = ()
    replace_model: bool = False
    send_session_created: bool = True
    faults: FaultConfig | None = None
    speech_transcript: str | None = None
    on_connect: tuple[dict[str, Any], ...] = ()


class SessionRecord:
    """What one session received and sent. Created by the server, read by tests."""

    def __init__(
        self,
        *,
        index: int,
        version: ProtocolVersion | None,
        mode: SessionMode,
        transport: str,
        call_id: str | None = None,
        limit: int = 10_000,
    ) -> None:
        self.index = index
        self.version = version
        self.mode = mode
        self.transport = transport
        self.call_id = call_id
        self.session_id: str | None = None
        self.events: deque[RecordedEvent] = deque(maxlen=limit)
        self.server_event_types: deque[str] = deque(maxlen=limit)
        self.closed = False
        self.close_code: int | None = None
        # time.monotonic_ns() when voiced media audio (WebRTC RTP) resumed after silence: the
        # arrival side of the one-way audio latency benchmark (the same clock in every process
        # on one host).
        self.audio_onsets_ns: deque[int] = deque(maxlen=1000)
        #: set by the session once its model exists: the model's conversation items
        self.conversation_source: Callable[[], list[dict[str, Any]]] | None = None
        self._changed = trio.Event()

    def __repr__(self) -> str:
        return (
            f"<SessionRecord #{self.index} {self.transport} {self.version} {self.mode} "
            f"{len(self.events)} client events>"
        )

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def record(self, event: RecordedEvent) -> None:
        self.events.append(event)
        self._notify()

    def record_sent(self, type_: str) -> None:
        self.server_event_types.append(type_)
        self._notify()

    def mark_closed(self, code: int | None) -> None:
        self.closed = True
        self.close_code = code
        self._notify()

    def of_type(self, type_: str) -> list[RecordedEvent]:
        """Recorded client frames of ``type_``."""
        return [e for e in self.events if e.type == type_]

    def received_items(self) -> list[dict[str, Any]]:
        """The ``item`` of every ``conversation.item.create`` the client sent, in order."""
        return [
            dict(e.raw["item"])
            for e in self.events
            if e.type == "conversation.item.create"
            and e.raw is not None
            and isinstance(e.raw.get("item"), dict)
        ]

    def conversation(self) -> list[dict[str, Any]]:
        """The conversation the model holds now (items in order; empty before it exists)."""
        return [] if self.conversation_source is None else self.conversation_source()

    def history(self) -> list[tuple[str, str]]:
        """``(role, text)`` of every message in ``conversation()`` that has text (typed text
        or a transcript); function call outputs appear as ``("tool", output)``."""
        out: list[tuple[str, str]] = []
        for item in self.conversation():
            if item.get("type") == "function_call_output":
                out.append(("tool", str(item.get("output") or "")))
                continue
            if item.get("type") != "message":
                continue
            pieces = [
                str(part.get("text") or part.get("transcript") or "")
                for part in item.get("content") or []
                if isinstance(part, dict)
            ]
            text = " ".join(p for p in pieces if p)
            if text:
                out.append((str(item.get("role")), text))
        return out

    def types(self) -> list[str | None]:
        """Types of every recorded client frame, in order."""
        return [e.type for e in self.events]

    async def wait_for(
        self,
        type_: str,
        count: int = 1,
        *,
        sent: bool = False,
    ) -> None:
        """Wait until ``count`` client frames (or, with ``sent``, server events) of ``type_``."""
        while True:
            source: Sequence[str | None] = list(self.server_event_types) if sent else self.types()
            if sum(1 for t in source if t == type_) >= count:
                return
            await self._changed.wait()

    async def wait_closed(self) -> None:
        while not self.closed:
            await self._changed.wait()
