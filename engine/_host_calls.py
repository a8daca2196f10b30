"""The host's calls on a conversation, as one mixin of ``Conversation`` (``_conversation``):
each waits while the conversation reconnects (``await_live``), waits for room in the live
connection's outbox, lets the state machine decide, and queues what it sends — with no
checkpoint between the decision and the queueing, so a cancelled call changes nothing.

Invariants:
- a call made while reconnecting is held, not refused, and goes to the new session; it
  raises ``ConversationNotRunning`` only if the conversation ends instead;
- what a call queues is the host's (``Outbox.push``): carried to the next connection if the
  one it was queued for ends before sending it (``_resume.Unsent``), but for a barge-in's
  cancel and truncate, which are about the connection's own response;
- items the engine creates get an id and enter the history when queued
  (``_resume.stamp_items``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import trio

from duplex.protocol import (
    AudioOut,
    ClientEvent,
    LocalProtocolError,
    ProtocolVersion,
    ResponseCancel,
    delete_item_event,
    encode_client_event,
    handoff_output_events,
    mcp_approval_event,
    prompt_update_event,
    tool_output_event,
)
from duplex.transports import Transport

from ._errors import ConversationNotRunning, InvalidRequest
from ._history import ConversationHistory, HistoryItem
from ._host_audio import AudioInbox
from ._queues import HostQueue, Outbox
from ._resume import as_sent, item_event, new_item_id, stamp_items
from ._state_machine import ConversationState, Counters, Step

__all__ = ["HostCalls"]


class HostCalls:
    """The host calls of ``Conversation``, which sets the attributes below."""

    state: ConversationState
    history: ConversationHistory
    counters: Counters
    generation: int
    _version: ProtocolVersion
    _outbox: Outbox
    _host: HostQueue
    _audio_recv: AudioInbox
    _reconnecting: bool
    _ended: bool
    transport: Transport | None
    _live: trio.Event

    async def _host_call(
        self,
        decide: Callable[[], Step],
        carries: Callable[[], Sequence[ClientEvent]] | None = None,
    ) -> None:
        """Wait for room in the outbox, then let the state machine decide and queue what it
        sends, with no checkpoint in between: a cancelled wait changes nothing. Items the
        engine creates get an id and go into the history (``_resume.stamp_items``).
        ``carries`` builds, without changing any state, the events that carry the host's
        payload: refused first when the transport cannot take them (``_check_fits``)."""
        await self._wait_room()
        if carries is not None:
            self._check_fits(carries)
        step = decide()
        stamp_items(step.send, self.history, self._version)
        self._outbox.push(self._encode(step.send))

    def _check_fits(self, carries: Callable[[], Sequence[ClientEvent]]) -> None:
        """Refuse a host call whose events exceed the transport's message limit (a WebRTC
        data channel's ``a=max-message-size``) before the state machine decides anything:
        sent, such an event failed the call and the engine re-dialled, losing it."""
        transport = self.transport
        limit = None if transport is None else transport.max_text_bytes
        if limit is None:
            return
        try:
            events = as_sent(carries(), self._version)  # measured with the ids they get
        except LocalProtocolError:
            return  # the decision refuses it with the protocol's own message
        for event in events:
            size = len(encode_client_event(event, self._version).encode())
            if size > limit:
                raise InvalidRequest(
                    f"this {event.TYPE} event is {size} bytes, more than the {limit}-byte "
                    "message limit of the WebRTC data channel (the server's "
                    "a=max-message-size); nothing was sent and the conversation goes on"
                )

    async def _wait_room(self) -> None:
        """Wait until the live connection's outbox takes a host frame; a connection that
        ends meanwhile is waited out when the conversation resumes."""
        while True:
            await self.await_live()
            try:
                await self._outbox.wait_writable()
            except ConversationNotRunning:
                if self._reconnecting and not self._ended:
                    continue  # the connection dropped while we waited: wait for the next
                raise
            return

    async def await_live(self) -> None:
        """While reconnecting, wait for ``ConversationResumed`` (or the end: then the call
        raises ``ConversationNotRunning`` as usual). Host calls are held, not refused, so a
        host never has to know a reconnect happened."""
        while self._reconnecting and not self._ended:
            await self._live.wait()

    async def send_text(self, text: str, *, respond: bool) -> None:
        await self.await_live()
        self._precheck()
        await self._host_call(
            lambda: self.state.send_text(text, respond=respond),
            # The item alone (respond=False changes no state).
            lambda: self.state.send_text(text, respond=False).send,
        )

    async def send_handoff_output(self, handoff_id: str, text: str, *, final: bool) -> None:
        await self.await_live()
        self.state.check_handoff(handoff_id)
        await self._host_call(
            lambda: self.state.handoff_output(handoff_id, text, final=final),
            lambda: handoff_output_events(self._version, handoff_id, text, final=final),
        )

    async def update_prompt(self, prompt: str) -> None:
        await self.await_live()
        self._precheck()
        await self._host_call(
            lambda: self.state.update_prompt(prompt),
            lambda: [prompt_update_event(self._version, prompt, mode=self.state.mode)],
        )

    async def add_item(self, item: HistoryItem) -> str:
        """Add ``item`` to the conversation (v2); returns its id."""
        await self.await_live()
        self._precheck()
        if item.id is None:
            item = attrs.evolve(item, id=new_item_id())
        event = item_event(item)
        if event is None:
            raise ValueError("a message item needs text")
        await self._host_call(lambda: _sending([event]), lambda: [event])
        self.history.record(item)
        assert item.id is not None
        return item.id

    async def delete_item(self, item_id: str) -> None:
        await self.await_live()
        self._precheck()
        await self._host_call(lambda: _sending([delete_item_event(item_id)]))
        self.history.forget(item_id)

    async def send_tool_output(self, call_id: str, output: str, *, respond: bool) -> None:
        await self.await_live()
        self._precheck()
        self.state.check_tool_call(call_id)
        await self._host_call(
            lambda: self.state.tool_output(call_id, output, respond=respond),
            lambda: [tool_output_event(call_id, output)],
        )

    async def send_mcp_approval(
        self, request_id: str, approve: bool, *, reason: str | None, respond: bool
    ) -> None:
        await self.await_live()
        self._precheck()
        item_id = new_item_id()
        await self._host_call(
            lambda: self.state.mcp_approval(
                request_id, approve, reason=reason, respond=respond, item_id=item_id
            ),
            lambda: [mcp_approval_event(request_id, approve, item_id=item_id, reason=reason)],
        )

    async def update_session(
        self, session: Any, *, tools: Iterable[Any] | None, instructions: str | None
    ) -> None:
        await self.await_live()
        self._precheck()
        tools = None if tools is None else tuple(tools)
        settings = self.state.session
        await self._host_call(
            lambda: self.state.update_session(session, tools=tools, instructions=instructions),
            None
            if settings is None
            else lambda: [settings.preview(session, tools=tools, instructions=instructions)],
        )

    async def commit_audio(self, *, respond: bool) -> None:
        await self.await_live()
        self._precheck()
        self.state.check_turn_control("commit_audio")
        # Audio the host sent before this call must reach the wire before the commit.
        await self._audio_recv.drained()
        await self._host_call(lambda: self.state.commit_audio(respond=respond))

    async def clear_audio(self) -> None:
        await self.await_live()
        self._precheck()
        self.state.check_turn_control("clear_audio")
        await self._audio_recv.drained()
        await self._host_call(self.state.clear_audio)

    async def interrupt(self) -> None:
        await self.await_live()
        self._precheck()
        await self._outbox.wait_writable()
        step = self.state.interrupt()
        # The cancel and truncate are about this connection's response: never carried, but
        # for a cancel of a response requested and not yet created, which goes with the
        # request if that is carried.
        self._outbox.push_connection(self._encode(step.send), _unanswered_cancels(step.send))
        if step.forward:
            # AudioInterrupted: structural (one per call), never waits on the host — the
            # caller may be the task that reads events().
            self._host.push_nowait(self.generation, step.forward)

    async def create_response(self, **options: Any) -> None:
        """``Engine.create_response``: the event is built (and refused) once, before the
        wait for room, then queued by the state machine."""
        await self.await_live()
        self._precheck()
        event = self.state.response_event(**options)
        await self._host_call(lambda: self.state.queue_response(event), lambda: [event])

    async def send_image(self, data: bytes, mime_type: str, *, text: str | None) -> None:
        await self.await_live()
        self._precheck()

        def decide() -> Step:
            return self.state.image(data, mime_type, text=text)

        await self._host_call(decide, lambda: decide().send)  # image() changes no state

    async def send_event(self, event: Mapping[str, Any]) -> None:
        """A raw client event, encoded as given, through the one writer."""
        await self.await_live()
        self._precheck()
        if not isinstance(event, Mapping) or type(event.get("type")) is not str:
            raise InvalidRequest("a raw event must be a mapping with a string 'type'")
        try:
            text = json.dumps(dict(event), ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"a raw event must be JSON-serialisable: {exc}") from exc
        await self._wait_room()
        self._precheck()
        transport = self.transport
        limit = None if transport is None else transport.max_text_bytes
        if limit is not None and len(text.encode()) > limit:
            raise InvalidRequest(
                f"this raw event is {len(text.encode())} bytes, more than the {limit}-byte "
                "message limit of the WebRTC data channel (the server's a=max-message-size); "
                "nothing was sent and the conversation goes on"
            )
        self._outbox.push((text,))
        self.counters.client_events += 1
        self.counters.raw_events_sent += 1

    @property
    def running(self) -> bool:
        if self._ended:
            return False
        return self.state.running or self._reconnecting

    def _precheck(self) -> None:
        if not self.state.running or self._outbox.closed:
            raise ConversationNotRunning()

    def audio_played(self, item_id: str, ms: float) -> None:
        """The host reports playback of ``item_id`` (``Engine.audio_played``)."""
        if self._reconnecting and not self._ended:
            return  # the item belongs to the dropped connection: nothing left to cut
        if not self.state.running:
            raise ConversationNotRunning()
        self.state.audio_played(item_id, ms)

    def delivered(self, event: AudioOut) -> bool:
        """The host is taking ``event`` from ``events()``; False: it is stale (its item was
        cut by a barge-in after it was queued) and is not delivered."""
        return self.state.audio_delivered(event)

    def _encode(self, events: list[ClientEvent]) -> list[str]:
        self.counters.client_events += len(events)
        version = self._version
        return [encode_client_event(event, version) for event in events]


def _unanswered_cancels(events: list[ClientEvent]) -> list[int]:
    return [
        index
        for index, event in enumerate(events)
        if type(event) is ResponseCancel and event.response_id is None
    ]


def _sending(events: list[ClientEvent]) -> Step:
    step = Step()
    step.send.extend(events)
    return step
