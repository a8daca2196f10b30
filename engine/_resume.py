"""Reconnect and rotation decisions: which endings a conversation survives, and what a new
session is given. Synchronous and trio-free; ``_conversation.py`` applies the results.

What happens on a resumable ending (SPEC §3.5; ``docs/long-conversations.md`` for hosts):

1. The state machine ended the connection (a transport end or a fatal error). ``classify``
   asks ``ReconnectPolicy.resumable``; if yes, the synthetic fatal ``Error`` the state machine
   added is dropped (the host sees ``ConversationReconnecting`` instead) and everything else
   of the old connection is delivered first.
2. Per attempt: ``ConversationReconnecting(attempt, reason)``, the policy's backoff, a new
   connection with the same configuration and session id.
3. On the new connection, in order: the handshake, ``replay_events`` (the ledger's replay
   and the re-anchoring note), the host's frames the old connection never sent
   (``Unsent``), the response the state machine asks for
   (``ConversationState.take_over_responses``), then ``ConversationResumed``. Only then do
   the new connection's tasks run, so nothing of the old connection can follow
   ``ConversationResumed``.
4. When attempts are spent: ``Error`` + ``ConversationClosed("error")``, once.

The in-flight rule:
- a function call or handoff waiting for the host's output stays answerable: its call item
  is replayed, the engine keeps the handoff as active, and the host's later output goes to
  the new session with the same ``call_id``;
- a response cut short by the drop is not resumed part-way: its unfinished assistant item has
  no final transcript, so it is not replayed, and the engine requests a new response
  (``response.create``) after the replay so the user still gets an answer;
- rotation waits until no response is active, so nothing is cut.

The unsent rule: what the host asked for is not lost to a drop or a rotation. The host's
frames still queued for the old connection's writer (text, images, tool outputs, raw events,
responses it requested, audio appends, commits) go to the new session after the replay, in
order and as sent; the replay leaves their items out. A frame that names an item the new
session will not hold (a delete of an item the host forgot meanwhile) is dropped. One
``response.create`` holds the slot: a carried one, else a new one for a response the drop
cut short, else the host's oldest deferred request; the other deferred requests wait their
turn as before. A frame is carried only when it is known not to have been sent: one whose
send failed (the transport had ended) is carried, one the writer was still sending when the
connection was ended may have reached the server and is not repeated (at most once); a
rotation lets the writer finish it first (within ``close_timeout``). Frames of the
connection itself (the handshake, a barge-in's cancel and truncate, answers to the old
session's events) are not carried.

Invariants: replay events carry the ledger's item ids (the new session's echoes update the
ledger in place rather than duplicating items); audio is never replayed (host audio that
was never sent is carried, not replayed).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Final, final

import attrs

from duplex.protocol import (
    AudioFrame,
    ClientEvent,
    ConversationItem,
    ConversationItemCreate,
    Error,
    ProtocolVersion,
    dialect,
    message_item_event,
    tool_output_event,
)

from ._errors import ConversationClosed
from ._history import ConversationHistory, HistoryItem, Role
from ._reconnect import ReconnectPolicy

__all__ = [
    "ROTATION",
    "SESSION_EXPIRED",
    "Ending",
    "Unsent",
    "classify",
    "created_ids",
    "item_event",
    "new_item_id",
    "replay_events",
    "seed_events",
    "stamp_items",
    "trim_backlog",
]

ROTATION: Final = "rotation"
SESSION_EXPIRED: Final = "session_expired"
_ROLES: Final[dict[str, Role]] = {"user": "user", "assistant": "assistant", "system": "system"}


@final
@attrs.frozen
class Ending:
    """A connection ended and the conversation goes on.

    ``reason`` is what ``ConversationReconnecting`` says; ``closed`` is the end the host gets
    if every attempt fails; ``error`` is the ``Error`` sent with it.
    """

    reason: str
    closed: ConversationClosed
    error: Error | None = None


def rotation() -> Ending:
    """The session reached ``ReconnectPolicy.max_session_s`` with no response active."""
    message = "the session could not be rotated to a new one"
    return Ending(ROTATION, ConversationClosed("error", None, message), Error(message, None))


def classify(
    policy: ReconnectPolicy, forward: list[Any], closed: ConversationClosed
) -> Ending | None:
    """The state machine ended a connection with ``closed`` (after ``forward``): an ``Ending``
    if the conversation should resume, else ``None``. Removes the fatal ``Error`` the state
    machine put last in ``forward`` when it resumes."""
    if closed.reason == "requested":
        return None
    if closed.reason == "transport_closed" and closed.code is None:
        # The peer hung up in order without a close code: a WebRTC call whose data channel
        # or peer connection closed in order. It chose to end, like a WebSocket close 1000;
        # the policy reads a missing code as a drop (a network error), which would re-dial.
        return None
    fatal = forward[-1] if forward and type(forward[-1]) is Error else None
    if fatal is not None and not fatal.fatal:
        fatal = None
    error_code = fatal.code if fatal is not None else None
    if not policy.resumable(requested=False, close_code=closed.code, error_code=error_code):
        return None
    if fatal is not None:
        forward.pop()
    if error_code == SESSION_EXPIRED:
        reason = SESSION_EXPIRED
    elif closed.error:
        reason = closed.error
    else:
        reason = f"connection closed with code {closed.code}"
    message = closed.error or reason
    return Ending(
        reason,
        ConversationClosed("error", closed.code, message),
        fatal or Error(f"transport failed: {message}", None, None, True),
    )


def new_item_id() -> str:
    """A client-chosen item id (the API accepts ids up to 32 characters)."""
    return f"dx_{uuid.uuid4().hex[:24]}"


def item_event(item: HistoryItem) -> ClientEvent | None:
    """``conversation.item.create`` for one history item (GA shape), or ``None`` for a
    message with no text (nothing the model could use)."""
    if item.kind == "message":
        if not item.text or item.role is None:
            return None
        return message_item_event(item.role, item.text, item_id=item.id)
    if item.kind == "function_call":
        assert item.call_id is not None
        assert item.name is not None
        wire = ConversationItem(
            type="function_call",
            id=item.id,
            call_id=item.call_id,
            name=item.name,
            arguments=item.arguments or "{}",
        )
        return ConversationItemCreate(item=wire)
    assert item.call_id is not None
    event = tool_output_event(item.call_id, item.output or "")
    return attrs.evolve(event, item=attrs.evolve(event.item, id=item.id))


def seed_events(history: ConversationHistory, items: Iterable[HistoryItem]) -> list[ClientEvent]:
    """Record ``items`` (seeded by ``start(history=…)``; each gets an id) and return their
    ``conversation.item.create`` events."""
    events: list[ClientEvent] = []
    for item in items:
        if item.id is None:
            item = attrs.evolve(item, id=new_item_id())
        history.record(item)
        event = item_event(item)
        if event is not None:
            events.append(event)
    return events


def replay_events(
    history: ConversationHistory,
    policy: ReconnectPolicy,
    version: ProtocolVersion,
    *,
    leave_out: Collection[str] = (),
) -> tuple[list[ClientEvent], int]:
    """What a new session is sent after its handshake, and how many items were replayed;
    ``leave_out``: items the host's unsent frames carry (``Unsent.created``).

    v1 sessions get nothing: the dialect has no client-side history items (a v1 host that
    passed ``conversation_id`` continues the backend's own conversation).
    """
    if not dialect(version).client_items:
        return [], 0
    items, _skipped = history.replay(policy.replay_items, leave_out=leave_out)
    events = [e for e in (item_event(i) for i in items) if e is not None]
    replayed = len(events)
    if events and policy.reanchor_note:
        note_id = new_item_id()
        history.exclude(note_id)
        events.append(message_item_event("system", policy.reanchor_note, item_id=note_id))
    return events, replayed


@final
@attrs.frozen
class Unsent:
    """The host's frames a connection that ended never sent (``Outbox.take_unsent``), read
    once for the resume: what the new session is given, and what the replay leaves out."""

    frames: tuple[str, ...]
    #: Ids of the items the frames create: the replay leaves them out, the frames carry them
    #: as the host sent them (an image with its text, not the ledger's text-only record).
    created: frozenset[str]
    #: A ``response.create`` in the conversation (not out of band) is among them: it holds
    #: the new connection's response slot (``ConversationState.take_over_responses``).
    requests_response: bool

    @classmethod
    def of(cls, frames: Sequence[str]) -> Unsent:
        created: set[str] = set()
        requests = False
        for frame in frames:
            # Most unsent frames are audio appends: only frames that may matter are decoded.
            if '"conversation.item.create"' in frame:
                item = _peek(frame).get("item")
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    created.add(item["id"])
            elif '"response.create"' in frame and not requests:
                event = _peek(frame)
                if event.get("type") == "response.create":
                    response = event.get("response")
                    requests = (
                        not isinstance(response, dict) or response.get("conversation") != "none"
                    )
        return cls(tuple(frames), frozenset(created), requests)

    def carried(self, replay: Sequence[ClientEvent] | None) -> list[str]:
        """The frames for the new session, in order, after ``replay`` (``None``: a dialect
        whose items live on the server, which keeps them all). A frame naming an item the
        new session will not hold (``item_id``: a delete of an item the host forgot, so
        never replayed) is dropped: the server could only answer it with an error. So is an
        answer to an MCP approval request: MCP items are not replayed, so the new session
        never asked (as for an answer given after the drop, which ``ToolCallNotActive``
        refuses)."""
        if replay is None:
            return list(self.frames)
        known = created_ids(replay) | self.created
        carried: list[str] = []
        for frame in self.frames:
            if '"item_id"' in frame:
                item_id = _peek(frame).get("item_id")
                if isinstance(item_id, str) and item_id not in known:
                    continue
            if '"mcp_approval_response"' in frame:
                item = _peek(frame).get("item")
                if isinstance(item, dict) and item.get("type") == "mcp_approval_response":
                    continue
            carried.append(frame)
        return carried


def created_ids(events: Iterable[ClientEvent]) -> set[str]:
    """The ids of the items ``events`` create."""
    return {
        event.item.id
        for event in events
        if type(event) is ConversationItemCreate and event.item is not None and event.item.id
    }


def _peek(frame: str) -> dict[str, Any]:
    """The decoded frame (the engine encoded it; a raw host event is any JSON object)."""
    try:
        value = json.loads(frame)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def stamp_items(
    events: list[ClientEvent], history: ConversationHistory, version: ProtocolVersion
) -> None:
    """Give every item the engine creates (host text, tool and handoff outputs) an id and
    record it, so ``history()`` and the replay hold it (v2; v1 items come back from the
    server's events)."""
    if not dialect(version).client_items:
        return
    for index, event in enumerate(events):
        stamped = _stamped(event)
        if stamped is None:
            continue
        events[index] = stamped
        assert stamped.item is not None
        item = _recorded(stamped.item)
        if item is not None:
            history.record(item)


def as_sent(events: Iterable[ClientEvent], version: ProtocolVersion) -> list[ClientEvent]:
    """``events`` as ``stamp_items`` will send them (ids on the engine's items), with
    nothing recorded: what a size check must measure."""
    if not dialect(version).client_items:
        return list(events)
    return [_stamped(event) or event for event in events]


def _stamped(event: ClientEvent) -> ConversationItemCreate | None:
    """An item the engine creates, with its id (a new one when it has none); ``None`` for
    any other event."""
    if type(event) is not ConversationItemCreate or event.item is None:
        return None
    wire = event.item
    if wire.type not in ("message", "function_call_output"):
        return None
    if wire.id is None:
        return attrs.evolve(event, item=attrs.evolve(wire, id=new_item_id()))
    return event


def _recorded(wire: ConversationItem) -> HistoryItem | None:
    if wire.type == "function_call_output":
        if not wire.call_id:
            return None
        return HistoryItem.tool_output(wire.call_id, wire.output or "", id=wire.id)
    text = "".join(
        (p.text if p.text is not None else p.transcript) or "" for p in wire.content or ()
    )
    role = _ROLES.get(wire.role or "")
    if role is None:
        return None
    return HistoryItem(kind="message", role=role, text=text, id=wire.id)


def trim_backlog(frames: list[AudioFrame], max_ms: int) -> tuple[list[AudioFrame], int]:
    """Keep the newest ``max_ms`` of host audio queued while reconnecting; (kept, dropped)."""
    kept: list[AudioFrame] = []
    total = 0.0
    for frame in reversed(frames):
        total += frame.duration_ms
        if total > max_ms:
            break
        kept.append(frame)
    kept.reverse()
    return kept, len(frames) - len(kept)
