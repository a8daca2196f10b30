"""``Step``: what one call into the conversation's rules decided (``ConversationState`` and
its ``TurnRules``): host events to forward, client events to send, and the conversation's
end when the call ended it. The async layer applies a step; it never decides anything."""

from __future__ import annotations

from duplex.protocol import ClientEvent

from ._errors import ConversationClosed
from ._host_events import HostEvent

__all__ = ["Step"]


class Step:
    """The decisions of one state-machine call (see the module docstring)."""

    __slots__ = ("end", "forward", "send")

    def __init__(self) -> None:
        self.forward: list[HostEvent] = []
        self.send: list[ClientEvent] = []
        self.end: ConversationClosed | None = None

    def __repr__(self) -> str:
        return f"Step(forward={self.forward!r}, send={self.send!r}, end={self.end!r})"
