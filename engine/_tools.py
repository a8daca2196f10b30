"""``ToolCalls``: the host's function-tool calls of one conversation, sans-IO.

The state machine owns one. It answers two questions: may the host answer this ``call_id``
now (``ToolCallNotActive`` otherwise), and when should the answers of a response's calls be
followed by a ``response.create``.

The parallel-call rule (SPEC §3.2, issue 13): the calls one response makes form a *group*.
A group asks for one response, once, when

- every call of the group has been answered, and
- the response that made the calls has finished (``response.done``), so no further call of
  the group can still arrive, and
- at least one answer asked for it (``respond=True``; all ``respond=False``: no response).

So a host that answers both calls of a parallel pair, in any order and at any time, causes
exactly one ``response.create`` (through the single-active-response queue), after the last
answer or — when the host answered before the response finished — at ``response.done``.

Invariants:
- A ``call_id`` is answerable from its ``ToolCallRequested`` until its first answer; a second
  answer, or an answer for an id never requested, raises ``ToolCallNotActive``.
- Memory is bounded by the calls in flight: a group is forgotten once it has responded (or
  finished with nothing to respond to).
"""

from __future__ import annotations

from typing import Final

from ._errors import ToolCallNotActive

__all__ = ["ToolCalls"]

# Group key for calls whose response is unknown (no response.created seen): they are answered
# as if their response had already finished.
_NO_RESPONSE: Final = ""


class _Group:
    __slots__ = ("finished", "open", "respond")

    def __init__(self, *, finished: bool) -> None:
        self.open: set[str] = set()
        self.finished = finished
        self.respond = False


class ToolCalls:
    """Host tool calls awaiting an answer, grouped by the response that made them."""

    __slots__ = ("_groups", "_owner")

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}  # open call_id -> its group's response id
        self._groups: dict[str, _Group] = {}

    def requested(self, call_id: str, response_id: str | None) -> None:
        """A ``ToolCallRequested`` was forwarded to the host (first sighting of the id)."""
        key = response_id or _NO_RESPONSE
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(finished=key == _NO_RESPONSE)
        group.open.add(call_id)
        self._owner[call_id] = key

    def check(self, call_id: str) -> None:
        """Raise ``ToolCallNotActive`` unless ``call_id`` may be answered now."""
        if call_id not in self._owner:
            raise ToolCallNotActive(
                f"no tool call with id {call_id!r} is waiting for an output "
                "(never requested, or already answered)"
            )

    def answered(self, call_id: str, *, respond: bool) -> bool:
        """The host answered ``call_id``. True: request the group's response now."""
        self.check(call_id)
        key = self._owner.pop(call_id)
        group = self._groups[key]
        group.open.discard(call_id)
        group.respond = group.respond or respond
        return self._settle(key, group)

    def response_finished(self, response_id: str | None) -> bool:
        """The response ``response_id`` finished. True: request its group's response now
        (every call of it was answered before it finished)."""
        if response_id is None:
            return False
        group = self._groups.get(response_id)
        if group is None:
            return False
        group.finished = True
        return self._settle(response_id, group)

    def open_calls(self) -> int:
        return len(self._owner)

    def _settle(self, key: str, group: _Group) -> bool:
        if group.open or not group.finished:
            return False
        del self._groups[key]
        return group.respond
