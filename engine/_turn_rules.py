"""``TurnRules``: the host's turn control and tool calls (SPEC §3.2, issue 13) — tool and MCP
answers, session updates, push-to-talk commits, out-of-band and per-response options, images.

A mixin of ``ConversationState`` and part of it: the same one owner of every rule of a
conversation (``_state_machine``'s docstring holds the invariants), kept in its own module
only for size. Like the rest of it: synchronous, no I/O, no trio; each entry point validates
before it changes anything and returns a ``Step``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from duplex.protocol import (
    ClientEvent,
    ConversationItem,
    LocalProtocolError,
    ProtocolVersion,
    ResponseCreate,
    SessionMode,
    Tool,
    clear_audio_event,
    commit_audio_event,
    image_item_event,
    mcp_approval_event,
    response_create_event,
    tool_output_event,
)

from ._errors import InvalidRequest, ToolCallNotActive, UnsupportedByDialect
from ._session import SessionSettings, credentials
from ._step import Step
from ._tools import ToolCalls

if TYPE_CHECKING:
    from duplex.protocol import Dialect

__all__ = ["TurnRules"]


class TurnRules:
    """The host-call rules of ``ConversationState`` (see the module docstring)."""

    # Owned and set by ConversationState.__init__.
    version: ProtocolVersion
    mode: SessionMode
    dialect: Dialect
    session: SessionSettings | None
    tools: ToolCalls
    _approvals: set[str]
    _secrets: tuple[str, ...]

    if TYPE_CHECKING:

        def _require_running(self) -> None: ...

        def _turn_ended(self) -> None: ...

        def _request_response(
            self, send: list[ClientEvent], event: ClientEvent | None = None
        ) -> None: ...

    def _require_turn_control(self, what: str, *, conversational: bool = True) -> None:
        self._require_running()
        if not self.dialect.turn_control:
            raise UnsupportedByDialect(
                f"{what} is not part of the {self.dialect.title} dialect; use version='v2'"
            )
        if conversational and self.mode is SessionMode.TRANSCRIPTION:
            raise UnsupportedByDialect(f"transcription sessions do not support {what}")

    def check_tool_call(self, call_id: str) -> None:
        """Raise unless ``call_id`` is a tool call waiting for its output."""
        self._require_turn_control("tool outputs")
        self.tools.check(call_id)

    def tool_output(self, call_id: str, output: str, *, respond: bool) -> Step:
        """The host's result for a ``ToolCallRequested``: the ``function_call_output`` item
        and, by the parallel-call rule of ``_tools``, at most one ``response.create``."""
        self.check_tool_call(call_id)
        try:
            item = tool_output_event(call_id, output)
        except LocalProtocolError as exc:
            raise InvalidRequest(str(exc)) from exc
        step = Step()
        step.send.append(item)
        if self.tools.answered(call_id, respond=respond):
            self._request_response(step.send)
        return step

    def mcp_approval(
        self, request_id: str, approve: bool, *, reason: str | None, respond: bool, item_id: str
    ) -> Step:
        """The host's answer to an ``McpApprovalRequested``: the ``mcp_approval_response``
        item ``item_id`` and, with ``respond``, a ``response.create`` through the single-active-
        response queue (the API goes on with a turn only when asked, as after a function
        output). Each request is answered once."""
        self._require_turn_control("MCP approvals")
        if request_id not in self._approvals:
            raise ToolCallNotActive(
                f"no MCP approval request {request_id!r} is waiting for an answer "
                "(never requested, or already answered)"
            )
        try:
            item = mcp_approval_event(request_id, approve, item_id=item_id, reason=reason)
        except LocalProtocolError as exc:
            raise InvalidRequest(str(exc)) from exc
        self._approvals.discard(request_id)
        step = Step()
        step.send.append(item)
        if respond:
            self._request_response(step.send)
        return step

    def update_session(
        self,
        session: Any = None,
        *,
        tools: Iterable[Any] | None = None,
        instructions: str | None = None,
    ) -> Step:
        """A whole-session ``session.update`` (validated before anything is sent)."""
        self._require_running()
        if self.session is None:
            raise UnsupportedByDialect("this conversation was started without session settings")
        tools = None if tools is None else tuple(tools)
        step = Step()
        step.send.append(self.session.update(session, tools=tools, instructions=instructions))
        self._learn_secrets(tools)
        return step

    def _learn_secrets(self, tools: Iterable[Any] | None) -> None:
        """An MCP server declared now brings its credentials: server text may quote them."""
        new = [s for s in credentials(tools) if s not in self._secrets]
        if new:
            self._secrets = (*self._secrets, *new)

    def check_turn_control(self, what: str) -> None:
        """Raise unless the session takes ``commit_audio``/``clear_audio``."""
        self._require_turn_control(what, conversational=False)

    def commit_audio(self, *, respond: bool) -> Step:
        """End a push-to-talk turn; with ``respond``, ask for the answer when nothing on the
        server will (``SessionSettings.manual_turns``)."""
        self._require_turn_control("commit_audio", conversational=False)
        step = Step()
        step.send.append(commit_audio_event())
        if self.mode is SessionMode.CONVERSATIONAL:
            self._turn_ended()
            if respond and self.session is not None and self.session.manual_turns:
                self._request_response(step.send)
        return step

    def clear_audio(self) -> Step:
        """Drop the server's uncommitted input audio (an aborted push-to-talk turn)."""
        self._require_turn_control("clear_audio", conversational=False)
        step = Step()
        step.send.append(clear_audio_event())
        return step

    def create_response(self, **options: Any) -> Step:
        """``response.create`` with the options of ``response_event`` (``queue_response``)."""
        return self.queue_response(self.response_event(**options))

    def queue_response(self, event: ResponseCreate) -> Step:
        """Send a ``response.create`` built by ``response_event``: a default-conversation
        response goes through the single-active-response queue; an out-of-band one
        (``conversation="none"``) is sent at once (the server runs those beside the default
        response)."""
        self._require_turn_control("create_response")
        step = Step()
        response = event.response
        if response is not None and response.get("conversation") == "none":
            step.send.append(event)
        else:
            self._request_response(step.send, None if response is None else event)
        return step

    def response_event(
        self,
        *,
        instructions: str | None = None,
        conversation: str = "auto",
        metadata: Mapping[str, str] | None = None,
        output_modalities: Sequence[str] | None = None,
        input: Iterable[ConversationItem | str] | None = None,
        max_output_tokens: int | str | None = None,
        tool_choice: str | None = None,
        tools: Iterable[Tool] | None = None,
        voice: str | None = None,
    ) -> ResponseCreate:
        """The ``response.create`` these options make, validated; changes nothing."""
        self._require_turn_control("create_response")
        reserved = (None, None) if self.session is None else self.session.tool_names
        tools = None if tools is None else tuple(tools)
        self._learn_secrets(tools)
        try:
            return response_create_event(
                instructions=instructions,
                conversation=None if conversation == "auto" else conversation,
                metadata=metadata,
                output_modalities=output_modalities,
                input=input,
                max_output_tokens=max_output_tokens,
                tool_choice=tool_choice,
                tools=tools,
                voice=voice,
                reserved_tool_names=reserved,
            )
        except LocalProtocolError as exc:
            raise InvalidRequest(str(exc)) from exc

    def image(self, data: bytes, mime_type: str, *, text: str | None) -> Step:
        """A user message with an ``input_image`` (no response is requested)."""
        self._require_turn_control("images")
        try:
            event = image_item_event(data, mime_type, text=text)
        except LocalProtocolError as exc:
            raise InvalidRequest(str(exc)) from exc
        step = Step()
        step.send.append(event)
        return step
