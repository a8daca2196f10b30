"""The small rule sets ``ConversationState`` composes, each a synchronous object with one job:

- ``ResponseQueue``: at most one ``response.create`` in flight (codex-realtime.md §7.7);
- ``AudioLedger``: assistant audio received, delivered and reported played, per item, in
  milliseconds — where barge-in cuts (SPEC §3.4);
- ``HandoffState``: the active handoff and the call ids already acted on;
- ``clean_text``: server text made safe for a host-visible message (control characters
  escaped, the API key and anything key-shaped redacted).

They hold no I/O and make no decision about the conversation as a whole: the state machine
(``_state_machine.py``) calls them and owns every transition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = ["AudioLedger", "HandoffState", "ResponseQueue", "clean_text"]


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

    __slots__ = ("current", "delivered_ms", "played_ms", "received_ms", "truncated")

    def __init__(self) -> None:
        self.current: str | None = None
        self.received_ms: dict[str, float] = {}
        self.delivered_ms: dict[str, float] = {}
        self.played_ms: dict[str, float] = {}  # what the host reported with audio_played()
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

    def played(self, item_id: str, ms: float) -> None:
        """The host reports ``ms`` of ``item_id`` played (device, jitter buffer, telephony
        marks): barge-in cuts there instead of at what was taken from ``events()``."""
        if item_id in self.received_ms and ms >= 0:
            self.played_ms[item_id] = max(self.played_ms.get(item_id, 0.0), float(ms))

    def heard_ms(self, item_id: str) -> float:
        """What the user heard of ``item_id``: the host's report if it made one, else what it
        took from ``events()`` — never more than was received."""
        received = self.received_ms.get(item_id, 0.0)
        heard = self.played_ms.get(item_id)
        if heard is None:
            heard = self.delivered_ms.get(item_id, 0.0)
        return min(heard, received)

    def barge_in_point(self, *, response_active: bool) -> tuple[str, int] | None:
        """Where to cut the current item when the user starts speaking, or ``None``.

        Only an item that is still arriving (its response is active) or that the user has not
        fully heard counts as playing; truncating a fully heard, finished item would only
        make the model think it was interrupted (openai-agents-python #2370).
        """
        item = self.current
        if item is None or item in self.truncated:
            return None
        received = self.received_ms.get(item, 0.0)
        heard = self.heard_ms(item)
        if not response_active and heard >= received:
            return None
        self.truncated.add(item)
        return item, int(heard)

    def is_truncated(self, item_id: str | None) -> bool:
        return item_id is not None and item_id in self.truncated

    def _forget(self, item_id: str) -> None:
        self.received_ms.pop(item_id, None)
        self.delivered_ms.pop(item_id, None)
        self.played_ms.pop(item_id, None)
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


# ---- message hygiene --------------------------------------------------------------------

# Tokens shaped like OpenAI keys (sk-…, ek_…) or a bearer credential: hidden even when the
# engine was never told the key (a server may echo a prefix of a wrong one).
_TOKEN_RE: Final = re.compile(r"\b(?:sk-|ek_|Bearer\s+)[A-Za-z0-9_\-\.]{6,}")
# C0 controls, DEL and C1 controls: newlines, CR, ANSI escapes and NUL forge log lines.
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A secret shorter than this is not searched for: replacing one character would mangle
# every message ('WebSoc[redacted]et connect') while hiding nothing worth hiding.
_MIN_SECRET: Final = 8


def clean_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` safe for a log line or a host-visible message: control characters escaped
    (``\\n``, ``\\x1b`` …), every secret and key-shaped token replaced by ``[redacted]``."""
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET and secret in text:
            text = text.replace(secret, "[redacted]")
    text = _TOKEN_RE.sub("[redacted]", text)
    if _CONTROL_RE.search(text) is not None:
        text = _CONTROL_RE.sub(lambda m: m.group().encode("unicode_escape").decode(), text)
    return text
