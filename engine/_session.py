"""``SessionSettings``: the session a conversation asked for, and every change to it.

One object per conversation holds what the host configured — ``EngineConfig.session`` (or the
session the legacy ``voice``/``output_modality`` fields describe), ``EngineConfig.tools``, the
handoff/silence tool names, the audio format and the instructions — and builds the handshake
and every later ``session.update`` from it through the protocol's one builder, so a change
always carries the *whole* session (a ``ServerVad`` → ``SemanticVad`` switch replaces the
nested object; an omitted field is never silently reset to a default).

Invariants:
- Validation is local and happens before anything is sent: ``start_event`` raises
  ``ConversationStartError``, ``update`` raises ``InvalidRequest`` or
  ``UnsupportedByDialect``; on an error the stored settings are unchanged.
- v1 carries no session configuration and no tools (SPEC §2): a v1 engine configured with
  either fails at ``start()``; a v1 ``update`` may only change the instructions.
- ``manual_turns`` is true when nothing on the server starts a response after the user's
  audio (turn detection off, or its ``create_response`` off): then ``commit_audio`` asks for
  one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from duplex.protocol import (
    DEFAULT_TRANSCRIPTION_MODEL,
    ClientEvent,
    InputTranscription,
    LocalProtocolError,
    McpTool,
    SessionConfig,
    SessionMode,
    Tool,
    dialect,
    prompt_update_event,
    session_start_event,
    session_update_event,
    validate_voice,
)

from ._config import EngineConfig
from ._errors import ConversationStartError, InvalidRequest, UnsupportedByDialect

__all__ = ["SessionSettings", "credentials"]


def credentials(tools: Iterable[Any] | None) -> tuple[str, ...]:
    """The MCP servers' credentials among ``tools`` (``authorization`` and header values):
    secrets like the API key, redacted wherever server text reaches the host or a log."""
    found: list[str] = []
    for tool in tools or ():
        if isinstance(tool, McpTool):
            if isinstance(tool.authorization, str):
                found.append(tool.authorization)
            found.extend(v for v in (tool.headers or {}).values() if isinstance(v, str))
    return tuple(found)


class SessionSettings:
    """The conversation's session as the host configured it (see the module docstring)."""

    __slots__ = ("_config", "instructions", "session", "tools")

    def __init__(self, config: EngineConfig, instructions: str | None) -> None:
        self._config = config
        self.session: SessionConfig | None = config.session
        self.tools: tuple[Tool, ...] = tuple(config.tools)
        self.instructions = instructions

    # ---- the handshake ---------------------------------------------------------------

    def start_event(self, conversation_id: str | None = None) -> ClientEvent:
        """The first client event (v1 ``session.create``, v2 ``session.update``).

        Raises:
            ConversationStartError: the configuration cannot be expressed (tools or a
                ``SessionConfig`` on v1, a bad tool, a voice the dialect does not have …).
        """
        config = self._config
        if not dialect(config.version).session_config:
            if self.tools:
                raise ConversationStartError(
                    "EngineConfig.tools needs version='v2': the v1 dialect advertises no "
                    "function tools"
                )
            if self.session is not None:
                raise ConversationStartError(
                    "EngineConfig.session needs version='v2': the v1 dialect carries no "
                    "session configuration"
                )
        if self.session is not None and config.voice is not None:
            raise ConversationStartError(
                "set the voice in SessionConfig(voice=...) when EngineConfig.session is given "
                "(EngineConfig.voice is ignored then)"
            )
        try:
            return session_start_event(
                config.version,
                mode=config.mode,
                instructions=self.instructions,
                conversation_id=conversation_id,
                voice=config.voice,
                output_modality=config.output_modality,
                handoff_tool_name=config.handoff_tool_name,
                silence_tool_name=config.silence_tool_name,
                session=self.session,
                tools=self.tools,
                **self._format(),
            )
        except LocalProtocolError as exc:
            raise ConversationStartError(str(exc)) from exc

    # ---- changes ---------------------------------------------------------------------

    def update(
        self,
        session: SessionConfig | None = None,
        *,
        tools: Iterable[Tool] | None = None,
        instructions: str | None = None,
    ) -> ClientEvent:
        """The ``session.update`` for a change; the stored settings change only if it is
        valid.

        Raises:
            UnsupportedByDialect: a session or tools on v1.
            InvalidRequest: anything the builder refuses (message names the value).
        """
        return self._change(session, tools=tools, instructions=instructions, apply=True)

    def preview(
        self,
        session: SessionConfig | None = None,
        *,
        tools: Iterable[Tool] | None = None,
        instructions: str | None = None,
    ) -> ClientEvent:
        """The ``session.update`` ``update`` would send, with nothing stored (same errors)."""
        return self._change(session, tools=tools, instructions=instructions, apply=False)

    def _change(
        self,
        session: SessionConfig | None,
        *,
        tools: Iterable[Tool] | None,
        instructions: str | None,
        apply: bool,
    ) -> ClientEvent:
        config = self._config
        if session is not None and not isinstance(session, SessionConfig):
            raise InvalidRequest(f"session must be a SessionConfig, got {session!r}")
        new_tools = self.tools if tools is None else tuple(tools)
        new_instructions = self.instructions if instructions is None else instructions
        if not dialect(config.version).session_config:
            if session is not None or tools is not None:
                raise UnsupportedByDialect(
                    "the v1 dialect carries no session configuration or tools; only "
                    "instructions can change"
                )
            event: ClientEvent = self._prompt(new_instructions or "")
            if apply:
                self.instructions = new_instructions
            return event
        new_session = session if session is not None else self.session
        transcription = config.mode is SessionMode.TRANSCRIPTION
        if transcription and instructions is not None:
            raise InvalidRequest("transcription sessions have no instructions")
        try:
            event = session_update_event(
                new_session if new_session is not None else self._legacy_session(),
                mode=config.mode,
                instructions=None if transcription else new_instructions,
                tools=new_tools,
                handoff_tool_name=config.handoff_tool_name,
                silence_tool_name=config.silence_tool_name,
                **self._format(),
            )
        except LocalProtocolError as exc:
            raise InvalidRequest(str(exc)) from exc
        if apply:
            self.session = new_session
            self.tools = new_tools
            self.instructions = new_instructions
        return event

    def prompt_changed(self, instructions: str) -> None:
        """``update_prompt`` sent new instructions: later full updates carry them."""
        self.instructions = instructions

    @property
    def tool_names(self) -> tuple[str | None, str | None]:
        """The handoff and silence tools' names (``None``: no such tool), which a host's
        tools — for the session or for one response — may not reuse."""
        return self._config.handoff_tool_name, self._config.silence_tool_name

    @property
    def manual_turns(self) -> bool:
        """Nothing on the server answers committed audio by itself."""
        session = self.session
        if session is None:
            return False  # the default session: server VAD that creates responses
        detection = session.turn_detection
        return detection is None or detection.create_response is False

    # ---- helpers -----------------------------------------------------------------------

    def _prompt(self, instructions: str) -> ClientEvent:
        try:
            return prompt_update_event(self._config.version, instructions, mode=self._config.mode)
        except LocalProtocolError as exc:
            raise UnsupportedByDialect(str(exc)) from exc

    def _legacy_session(self) -> SessionConfig:
        """The ``SessionConfig`` equal to what the handshake sent from the legacy fields."""
        config = self._config
        return SessionConfig(
            output_modalities=(config.output_modality.value,),
            voice=validate_voice(config.version, config.voice),
            transcription=InputTranscription(model=DEFAULT_TRANSCRIPTION_MODEL),
        )

    def _format(self) -> dict[str, Any]:
        return {"audio_format": self._config.audio_format}
