"""The conversation as the engine knows it: an ordered, bounded ledger of items.

``ConversationHistory`` is synchronous and trio-free. It is fed the server events that
create, transcribe, truncate and delete items and that request tool calls (``HISTORY_EVENTS``;
the reader hands it only those), plus the items the engine itself sends (host text, tool and
handoff outputs, ``add_item``, seeded history — ``_resume.stamp_items``/``seed_events``), and
answers two questions:

- ``items()``: the conversation in server order, each item with its text — typed text, or
  the transcript of an audio turn — for ``Engine.history()``;
- ``replay()``: what a *new* session must be given so the model has the same context after a
  reconnect or a session rotation.

Replay rules (the README's "Long conversations" section repeats them for hosts):
- Messages are replayed as text: an audio turn becomes a text item holding its transcript
  (audio itself is never replayed: it is large and the transcript is what the model needs).
  A message with no text and no transcript (audio never transcribed) is skipped and counted.
- An assistant item cut by barge-in is replayed with no text: the server deletes the
  transcript of truncated audio so the model does not think the user heard it, and replay
  keeps that meaning.
- Function calls are replayed with their outputs. A call still waiting for its output stays
  answerable: its call item is replayed, so the host's later output refers to a call the new
  session knows.
- Only the newest ``limit`` items are replayed (the server truncates long contexts anyway).

Invariants: items keep server order; an id appears once; the ledger holds at most
``max_items`` items (the oldest are forgotten first), so memory stays flat in a long call.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from typing import Final, Literal, final

import attrs

from duplex.protocol import (
    ConversationItem,
    ConversationItemAdded,
    ConversationItemDeleted,
    ConversationItemTruncated,
    HandoffRequested,
    InputTranscriptDone,
    OutputTranscriptDone,
    ServerEvent,
    ToolCallRequested,
)

__all__ = ["DEFAULT_MAX_ITEMS", "HISTORY_EVENTS", "ConversationHistory", "HistoryItem"]

Role = Literal["user", "assistant", "system"]
ItemKind = Literal["message", "function_call", "function_call_output"]

DEFAULT_MAX_ITEMS: Final = 1000
_AUDIO_PARTS: Final = frozenset({"input_audio", "output_audio", "audio"})
_ROLES: Final[dict[str, Role]] = {"user": "user", "assistant": "assistant", "system": "system"}

# The server events ``ConversationHistory.apply`` reads (the reader skips the others).
HISTORY_EVENTS: Final = frozenset(
    {
        ConversationItemAdded,
        ConversationItemDeleted,
        ConversationItemTruncated,
        HandoffRequested,
        InputTranscriptDone,
        OutputTranscriptDone,
        ToolCallRequested,
    }
)


@final
@attrs.frozen(kw_only=True)
class HistoryItem:
    """One item of the conversation, as a host seeds it or reads it back.

    Attributes:
        kind: ``"message"``, ``"function_call"`` or ``"function_call_output"``.
        id: the item id (the server's, or the one the engine gave an item it sent).
        role: ``"user"``, ``"assistant"`` or ``"system"`` for messages.
        text: typed text, or the transcript of an audio turn (``""`` while unknown).
        audio: the message was spoken; ``text`` is its transcript.
        truncated: an assistant item cut by barge-in (its transcript is not replayed).
        call_id / name / arguments: a function call; ``call_id`` / ``output``: its output.
    """

    kind: ItemKind
    id: str | None = None
    role: Role | None = None
    text: str = ""
    audio: bool = False
    truncated: bool = False
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.kind == "message" and self.role not in ("user", "assistant", "system"):
            raise ValueError(f"a message needs role user, assistant or system, not {self.role!r}")
        if self.kind != "message" and not self.call_id:
            raise ValueError(f"a {self.kind} item needs a call_id")
        if self.kind == "function_call" and not self.name:
            raise ValueError("a function_call item needs the function name")

    @classmethod
    def user(cls, text: str, *, id: str | None = None) -> HistoryItem:
        return cls(kind="message", role="user", text=text, id=id)

    @classmethod
    def assistant(cls, text: str, *, id: str | None = None) -> HistoryItem:
        return cls(kind="message", role="assistant", text=text, id=id)

    @classmethod
    def system(cls, text: str, *, id: str | None = None) -> HistoryItem:
        return cls(kind="message", role="system", text=text, id=id)

    @classmethod
    def tool_call(
        cls, call_id: str, name: str, arguments: str = "{}", *, id: str | None = None
    ) -> HistoryItem:
        return cls(kind="function_call", call_id=call_id, name=name, arguments=arguments, id=id)

    @classmethod
    def tool_output(cls, call_id: str, output: str, *, id: str | None = None) -> HistoryItem:
        return cls(kind="function_call_output", call_id=call_id, output=output, id=id)


def _item_text(item: ConversationItem) -> tuple[str, bool]:
    """(text or transcript, spoken?) of a wire item's content parts."""
    texts: list[str] = []
    audio = False
    for part in item.content or ():
        if part.type in _AUDIO_PARTS:
            audio = True
        value = part.text if part.text is not None else part.transcript
        if value:
            texts.append(value)
    return "".join(texts), audio


def _from_wire(item: ConversationItem) -> HistoryItem | None:
    if item.id is None:
        return None
    role = _ROLES.get(item.role or "")
    if item.type == "message" and role is not None:
        text, audio = _item_text(item)
        return HistoryItem(kind="message", id=item.id, role=role, text=text, audio=audio)
    if item.type == "function_call" and item.call_id and item.name:
        return HistoryItem(
            kind="function_call",
            id=item.id,
            call_id=item.call_id,
            name=item.name,
            arguments=item.arguments or "",
        )
    if item.type == "function_call_output" and item.call_id:
        return HistoryItem(
            kind="function_call_output", id=item.id, call_id=item.call_id, output=item.output
        )
    return None  # kinds the ledger does not replay (MCP calls, …)


class ConversationHistory:
    """The ordered, bounded item ledger of one conversation (across its reconnects)."""

    def __init__(self, *, max_items: int = DEFAULT_MAX_ITEMS, handoff_tool_name: str = "") -> None:
        if max_items <= 0:
            raise ValueError(f"max_items must be positive, got {max_items}")
        self.max_items = max_items
        self.handoff_tool_name = handoff_tool_name
        self._items: dict[str, HistoryItem] = {}  # insertion order is conversation order
        self.forgotten = 0  # items dropped from the front to stay within max_items
        # Items the engine adds for the model only (the re-anchor note after a replay): not
        # the conversation, so never recorded (one id per reconnect).
        self._notes: set[str] = set()

    # ---- reading --------------------------------------------------------------------

    def items(self) -> tuple[HistoryItem, ...]:
        return tuple(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def pending_calls(self) -> tuple[HistoryItem, ...]:
        """Function calls whose output has not been recorded."""
        answered = {i.call_id for i in self._items.values() if i.kind == "function_call_output"}
        return tuple(
            i
            for i in self._items.values()
            if i.kind == "function_call" and i.call_id not in answered
        )

    def replay(
        self, limit: int, *, leave_out: Collection[str] = ()
    ) -> tuple[tuple[HistoryItem, ...], int]:
        """(items a new session should be given, in order; messages skipped for lack of text).

        ``leave_out``: ids of items that reach the new session another way (the host's
        unsent frames, ``_resume.Unsent``), as sent, after the replay.
        See the module docstring for the rules.
        """
        chosen: list[HistoryItem] = []
        skipped = 0
        for item in self._items.values():
            if leave_out and item.id in leave_out:
                continue
            if item.kind == "message":
                text = "" if item.truncated and item.role == "assistant" else item.text
                if not text:
                    skipped += 1
                    continue
                chosen.append(attrs.evolve(item, text=text))
            else:
                chosen.append(item)
        if limit >= 0 and len(chosen) > limit:
            chosen = chosen[len(chosen) - limit :]
            # An output whose call fell off the front would refer to an unknown call_id.
            calls = {i.call_id for i in chosen if i.kind == "function_call"}
            chosen = [i for i in chosen if i.kind != "function_call_output" or i.call_id in calls]
        return tuple(chosen), skipped

    # ---- writing --------------------------------------------------------------------

    def record(self, item: HistoryItem) -> None:
        """An item the engine sent (seeded history, host text, a tool output). It needs an id:
        the engine sends it with that id, so the server's echo updates it in place."""
        if item.id is None:
            raise ValueError("a recorded item needs an id")
        self._put(item)

    def record_all(self, items: Iterable[HistoryItem]) -> None:
        for item in items:
            self.record(item)

    def record_call(self, item_id: str, call_id: str, name: str, arguments: str) -> None:
        """A function call the engine parsed (the item's arguments are final only at done)."""
        self._put(
            HistoryItem(
                kind="function_call", id=item_id, call_id=call_id, name=name, arguments=arguments
            )
        )

    def apply(self, event: ServerEvent) -> None:
        """Update the ledger from one server event (others are ignored)."""
        match event:
            case ConversationItemAdded(item=wire):
                item = _from_wire(wire)
                if item is None or item.id in self._notes:
                    return
                known = self._items.get(item.id or "")
                if known is not None and not item.text and not item.arguments:
                    return  # the server's echo of an item we already hold, with less in it
                self._put(item)
            case ToolCallRequested(call_id=call_id, name=name, arguments=arguments, item_id=iid):
                self.record_call(iid, call_id, name, arguments)
            case InputTranscriptDone(text=text, item_id=item_id):
                self._set_text(item_id, text, role="user", audio=True)
            case OutputTranscriptDone(text=text, item_id=item_id):
                # Audio and text responses both end in this event; only the item's content
                # parts (seen in conversation.item.added) say whether it was spoken.
                self._set_text(item_id, text, role="assistant", audio=False)
            case ConversationItemTruncated(item_id=item_id):
                known = self._items.get(item_id)
                if known is not None:
                    self._items[item_id] = attrs.evolve(known, truncated=True)
            case ConversationItemDeleted(item_id=item_id):
                self._items.pop(item_id, None)
            case HandoffRequested(handoff_id=call_id, item_id=item_id, input_transcript=prompt):
                if self.handoff_tool_name:
                    arguments = json.dumps({"prompt": prompt})
                    self.record_call(item_id, call_id, self.handoff_tool_name, arguments)
            case _:
                pass

    def exclude(self, item_id: str) -> None:
        """``item_id`` is the engine's note to the model, not conversation: never record it
        (else every replay would carry every earlier note again)."""
        self._notes.add(item_id)

    def forget(self, item_id: str) -> None:
        """The host deleted ``item_id`` (the server's ``conversation.item.deleted`` agrees)."""
        self._items.pop(item_id, None)

    # ---- internals ------------------------------------------------------------------

    def _set_text(self, item_id: str | None, text: str, *, role: Role, audio: bool) -> None:
        if item_id is None:
            return
        known = self._items.get(item_id)
        if known is None:
            self._put(HistoryItem(kind="message", id=item_id, role=role, text=text, audio=audio))
        elif known.kind == "message":
            self._items[item_id] = attrs.evolve(known, text=text, audio=known.audio or audio)

    def _put(self, item: HistoryItem) -> None:
        assert item.id is not None
        self._items[item.id] = item  # an existing id keeps its place
        while len(self._items) > self.max_items:
            del self._items[next(iter(self._items))]
            self.forgotten += 1
