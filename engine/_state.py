"""The conversation's small synchronous state machines, shared by its actors.

All methods are synchronous and run on the trio thread, so a check and the update that
follows it cannot be split by another task (no await in between): that is what makes the
response queue and the handoff state race-free without locks.

- ``ResponseQueue``: the single-active-response rule (codex-realtime.md §7.7). ``request()``
  says whether to send ``response.create`` now; a request while a response is active is
  deferred and fired by ``finished()``. The server's ``conversation_already_has_active_response``
  race is recovered by ``rejected_as_active()``.
- ``AudioLedger``: per assistant item, how much audio the server sent and how much the host
  has taken from ``events()``; the barge-in truncation point comes from it.
- ``HandoffState``: the active handoff (v2 steering), the call ids already acted on (each is
  acted on once), and the ids the host may still answer.
"""

from __future__ import annotations

from typing import Final

__all__ = ["AudioLedger", "HandoffState", "ResponseQueue"]

ACTIVE_RESPONSE_CODE: Final = "conversation_already_has_active_response"


class ResponseQueue:
    """At most one ``response.create`` in flight; later requests wait for the active one."""

    __slots__ = ("active", "pending", "sent")

    def __init__(self) -> None:
        self.active = False
        self.pending = False
        self.sent = 0

    def request(self) -> bool:
        """A response is wanted. True: send ``response.create`` now. False: deferred."""
        if self.active:
            self.pending = True
            return False
        # Optimistic: the slot is taken from the moment we send, not from response.created,
        # so two requests in quick succession cannot both go out.
        self.active = True
        self.sent += 1
        return True

    def started(self) -> None:
        """``response.created`` arrived (ours, or one server VAD created)."""
        self.active = True

    def finished(self) -> bool:
        """``response.done``/``cancelled`` arrived. True: send the deferred create now."""
        self.active = False
        if self.pending:
            self.pending = False
            self.active = True
            self.sent += 1
            return True
        return False

    def rejected_as_active(self) -> None:
        """The server refused a create because another response is active: wait for it to
        finish and then send ours (the Rust original's recovery)."""
        self.active = True
        self.pending = True


class AudioLedger:
    """Received vs delivered assistant audio per item, in milliseconds."""

    __slots__ = ("current", "delivered_ms", "received_ms", "truncated")

    def __init__(self) -> None:
        self.current: str | None = None
        self.received_ms: dict[str, float] = {}
        self.delivered_ms: dict[str, float] = {}
        self.truncated: set[str] = set()

    def received(self, item_id: str, ms: float) -> None:
        if item_id != self.current:
            # A new assistant item: forget the previous one (bounded memory on long calls).
            if self.current is not None:
                self._forget(self.current)
            self.current = item_id
        self.received_ms[item_id] = self.received_ms.get(item_id, 0.0) + ms

    def delivered(self, item_id: str, ms: float) -> None:
        if item_id in self.received_ms:
            self.delivered_ms[item_id] = self.delivered_ms.get(item_id, 0.0) + ms

    def barge_in_point(self, *, response_active: bool) -> tuple[str, int] | None:
        """Where to cut the current item when the user starts speaking, or ``None``.

        Only an item that is still arriving (its response is active) or that the host has not
        fully taken counts as playing; truncating a fully delivered, finished item would only
        make the model think it was interrupted (openai-agents-python #2370).
        """
        item = self.current
        if item is None or item in self.truncated:
            return None
        received = self.received_ms.get(item, 0.0)
        delivered = min(self.delivered_ms.get(item, 0.0), received)
        if not response_active and delivered >= received:
            return None
        self.truncated.add(item)
        return item, int(delivered)

    def is_truncated(self, item_id: str | None) -> bool:
        return item_id is not None and item_id in self.truncated

    def _forget(self, item_id: str) -> None:
        self.received_ms.pop(item_id, None)
        self.delivered_ms.pop(item_id, None)
        self.truncated.discard(item_id)


class HandoffState:
    """Which handoff is active and which call ids were already acted on."""

    __slots__ = ("active", "answerable", "seen")

    def __init__(self) -> None:
        self.active: str | None = None
        self.seen: set[str] = set()
        self.answerable: set[str] = set()

    def first_time(self, call_id: str) -> bool:
        """True the first time ``call_id`` is seen; the engine acts on each call once."""
        if call_id in self.seen:
            return False
        self.seen.add(call_id)
        return True

    def finish(self, handoff_id: str) -> None:
        self.answerable.discard(handoff_id)
        if self.active == handoff_id:
            self.active = None
