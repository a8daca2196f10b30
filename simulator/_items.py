"""The default conversation's items, as the scripted model keeps them.

``ConversationItems`` is the layer of ``ScriptedModel`` (``_model``) that keeps the items of the
default conversation in order: it inserts the items the client creates
(``conversation.item.create``) and those the model adds itself (committed user audio from
``_input_audio``, MCP tool listings), truncates assistant audio
(``conversation.item.truncate``) and words the ``item_not_found`` error. Deleting and retrieving
an item are one-liners in ``ScriptedModel.receive``; a response's own items are written by
``_response_builders``.

Invariants:
- an item is inserted right after its ``previous_item_id`` (GA's ``"root"``: at the start;
  none given: at the end); an id already present moves instead of appearing twice;
- a client item is checked before anything changes: an unknown ``previous_item_id``,
  assistant audio content, a ``function_call_output`` answering no call and an
  ``mcp_approval_response`` answering no open request are refused with the real server's
  error and leave the conversation as it was;
- a created item is ``completed`` (a ``realtime.item`` on v2); a message not from the
  assistant, a tool output or an approval answer becomes input the model owes a response
  (``_unanswered``);
- a truncation keeps what the user could have heard: ``audio_end_ms`` within the audio sent,
  and the transcript dropped.
"""

from __future__ import annotations

import copy
from typing import Any

from duplex.protocol import (
    ConversationItemCreate,
    ConversationItemTruncate,
    ProtocolVersion,
    SessionMode,
)

from ._response_clock import Event
from ._responses import ResponseStreams
from ._session_shape import config_patch

__all__ = ["ConversationItems"]


class ConversationItems(ResponseStreams):
    """The conversation's items; mixed into ``ScriptedModel``, which sets the state."""

    mode: SessionMode

    def _not_found(self, item_id: str, eid: str | None) -> Event:
        return self.error(
            "item_not_found",
            f"Item with item_id not found: {item_id}",
            param="item_id",
            client_event_id=eid,
        )

    def _add_item(self, item: Event, previous: str | None) -> list[Event]:
        item_id = str(item["id"])
        self.items[item_id] = item
        if item_id in self._order:
            self._order.remove(item_id)
        # Inserted right after ``previous`` (``None``: at the start, GA's ``"root"``).
        at = self._order.index(previous) + 1 if previous in self._order else 0
        self._order.insert(at, item_id)
        return [
            self._ev(
                "conversation.item.added", previous_item_id=previous, item=copy.deepcopy(item)
            ),
            self._ev("conversation.item.done", previous_item_id=previous, item=copy.deepcopy(item)),
        ]

    def _on_item_create(
        self, event: ConversationItemCreate, raw_item: Any, now: float, eid: str | None
    ) -> list[Event]:
        item = copy.deepcopy(raw_item) if isinstance(raw_item, dict) else _item_dict(event)
        prev = event.previous_item_id
        if prev is not None and prev != "root" and prev not in self.items:
            return [self._not_found(prev, eid)]
        if item.get("type") == "message" and item.get("role") == "assistant":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") in ("audio", "output_audio"):
                    return [
                        self.error(
                            "invalid_value",
                            "Assistant messages cannot contain audio content.",
                            param="item.content",
                            client_event_id=eid,
                        )
                    ]
        if item.get("type") == "function_call_output":
            call_id = item.get("call_id")
            if not any(
                i.get("type") == "function_call" and i.get("call_id") == call_id
                for i in self.items.values()
            ):
                return [
                    self.error(
                        "invalid_value",
                        f"No function call found with call_id '{call_id}'.",
                        param="item.call_id",
                        client_event_id=eid,
                    )
                ]
        if item.get("type") == "mcp_approval_response":
            refused = self._approval_problem(item, eid)
            if refused is not None:
                return [refused]
        item.setdefault("id", None)
        if not item["id"]:
            item["id"] = self.ids.item()
        item["status"] = "completed"
        if self.version is ProtocolVersion.V2:
            item["object"] = "realtime.item"
        previous = (
            None if prev == "root" else prev if prev else (self._order[-1] if self._order else None)
        )
        out = self._add_item(item, previous)
        if item.get("type") in (
            "message",
            "function_call_output",
            "mcp_approval_response",
        ) and item.get("role") != ("assistant"):
            self._unanswered.append(item)
            if (
                self.version is ProtocolVersion.V1
                and self.config.v1_auto_response
                and self.mode is SessionMode.CONVERSATIONAL
                and item.get("role") == "user"
                and self._active is None
            ):
                out.extend(self._start_response(None, now))
        return out

    def _approval_problem(self, item: Event, eid: str | None) -> Event | None:
        """The error for an ``mcp_approval_response`` that answers no open request."""
        request_id = item.get("approval_request_id")
        request = self.items.get(str(request_id))
        answered = any(
            i.get("type") == "mcp_approval_response" and i.get("approval_request_id") == request_id
            for i in self.items.values()
        )
        if request is None or request.get("type") != "mcp_approval_request" or answered:
            return self.error(
                "invalid_value",
                f"No pending MCP approval request found with id '{request_id}'.",
                param="item.approval_request_id",
                client_event_id=eid,
            )
        return None

    def _on_truncate(self, event: ConversationItemTruncate, eid: str | None) -> list[Event]:
        item = self.items.get(event.item_id)
        if item is None:
            return [self._not_found(event.item_id, eid)]
        if item.get("type") != "message" or item.get("role") != "assistant":
            return [
                self.error(
                    "invalid_value",
                    "Only assistant message items can be truncated.",
                    param="item_id",
                    client_event_id=eid,
                )
            ]
        if event.content_index != 0:
            return [
                self.error(
                    "invalid_value",
                    f"Invalid content_index: {event.content_index}.",
                    param="content_index",
                    client_event_id=eid,
                )
            ]
        audio_ms = self._assistant_audio_ms.get(event.item_id, 0)
        if event.audio_end_ms > audio_ms or event.audio_end_ms < 0:
            return [
                self.error(
                    "invalid_value",
                    f"Audio content of {audio_ms}ms is already shorter than "
                    f"{event.audio_end_ms}ms.",
                    param="audio_end_ms",
                    client_event_id=eid,
                )
            ]
        self._assistant_audio_ms[event.item_id] = event.audio_end_ms
        # The server forgets the transcript of what the user did not hear (§6).
        for part in item.get("content") or []:
            if isinstance(part, dict) and "transcript" in part:
                part["transcript"] = ""
        return [
            self._ev(
                "conversation.item.truncated",
                item_id=event.item_id,
                content_index=0,
                audio_end_ms=event.audio_end_ms,
            )
        ]


def _item_dict(event: ConversationItemCreate) -> Event:
    """A wire dict for a typed item (used when no raw JSON accompanies the event)."""
    return config_patch(event.item)
