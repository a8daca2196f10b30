"""From the host's ``SessionConfig`` (plus tools, tool names, instructions and audio format) to
the GA ``session.update``: pure functions, validated, one code path for the handshake and for
every later change.

Invariants:
- The result is the *whole* session: sent again after a change, a nested object whose
  ``type`` changed (``server_vad`` → ``semantic_vad``) replaces the old one on the server
  instead of merging into it, and an "off" (``turn_detection=None``) is an explicit JSON null.
- Tools are validated locally (names ``[A-Za-z0-9_-]{1,64}``, unique, not the handoff or
  silence tool's name, ``parameters`` a JSON Schema object) so a bad tool fails at the call
  that configures it, not as a server ``error`` later.
- Transcription sessions carry only the input side (format, transcription, noise reduction,
  turn detection) and ``include``; no tools, voice or output.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from ._client_events import SessionUpdate
from ._encode_common import client_payload
from ._encode_v2 import handoff_tool, silence_tool
from ._enums import DEFAULT_VOICE, ProtocolVersion, SessionMode
from ._errors import LocalProtocolError
from ._server_parser import (
    DEFAULT_HANDOFF_TOOL_NAME,
    DEFAULT_SILENCE_TOOL_NAME,
    check_tool_names,
)
from ._session import (
    AUDIO_FORMATS,
    AudioConfig,
    AudioFormat,
    AudioInputConfig,
    AudioOutputConfig,
    NoiseReduction,
    Tool,
    TurnDetection,
    WireSession,
)
from ._session_config import CustomVoice, ServerVad, SessionConfig
from ._tool_rules import validate_tools

__all__ = ["audio_format_object", "session_payload", "session_update_event"]


def audio_format_object(audio_format: str | AudioFormat) -> AudioFormat:
    """The wire format object for ``"pcm16"`` (24 kHz PCM16), ``"pcmu"`` or ``"pcma"`` (8 kHz
    G.711), or an ``AudioFormat`` given as is."""
    if isinstance(audio_format, AudioFormat):
        return audio_format
    found = AUDIO_FORMATS.get(audio_format)
    if found is None:
        names = ", ".join(repr(n) for n in AUDIO_FORMATS)
        raise LocalProtocolError(f"unknown audio format {audio_format!r}; expected one of {names}")
    return found


def _turn_detection(c: SessionConfig, *, responses: bool) -> TurnDetection | None:
    td = c.turn_detection
    if td is None:
        return None
    fields = attrs.asdict(td)
    if not responses:  # a transcription session never responds
        fields.pop("create_response")
        fields.pop("interrupt_response")
    kind = "server_vad" if isinstance(td, ServerVad) else "semantic_vad"
    return TurnDetection(type=kind, **fields)


def _input(c: SessionConfig, fmt: AudioFormat, *, responses: bool = True) -> AudioInputConfig:
    nulls = tuple(
        name
        for name, value in (
            ("noise_reduction", c.noise_reduction),
            ("transcription", c.transcription),
            ("turn_detection", c.turn_detection),
        )
        if value is None
    )
    return AudioInputConfig(
        format=fmt,
        noise_reduction=(
            NoiseReduction(type=c.noise_reduction) if c.noise_reduction is not None else None
        ),
        transcription=c.transcription,
        turn_detection=_turn_detection(c, responses=responses),
        nulls=nulls,
    )


def _tool_choice(choice: str | None) -> str | dict[str, Any] | None:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "name": choice}


def _truncation(value: str | float | None) -> str | dict[str, Any] | None:
    if value is None or isinstance(value, str):
        return value
    return {"type": "retention_ratio", "retention_ratio": float(value)}


def session_update_event(
    config: SessionConfig | None = None,
    *,
    mode: SessionMode | str = SessionMode.CONVERSATIONAL,
    instructions: str | None = None,
    tools: Iterable[Tool] = (),
    handoff_tool_name: str | None = DEFAULT_HANDOFF_TOOL_NAME,
    silence_tool_name: str | None = DEFAULT_SILENCE_TOOL_NAME,
    audio_format: str | AudioFormat = "pcm16",
    event_id: str | None = None,
) -> SessionUpdate:
    """The v2 ``session.update`` carrying the whole session (handshake and every change).

    Args:
        config: the host's session configuration (``SessionConfig()`` when ``None``).
        mode: ``"conversational"`` (a ``realtime`` session) or ``"transcription"``.
        instructions: the system prompt (conversational only; ``None`` sends ``""``).
        tools: the host's function tools, advertised after the handoff and silence tools.
        handoff_tool_name: the handoff tool's name, ``None`` for no handoff tool.
        silence_tool_name: the ``remain_silent`` tool's name, ``None`` for none.
        audio_format: ``"pcm16"``, ``"pcmu"``, ``"pcma"`` (both directions) or a format object.

    Raises:
        LocalProtocolError: an invalid tool, a tool-name clash, an unknown format or mode, or
            tools/instructions on a transcription session.
    """
    c = config if config is not None else SessionConfig()
    if not isinstance(c, SessionConfig):
        raise LocalProtocolError(f"session must be a SessionConfig, got {c!r}")
    m = _mode(mode)
    fmt = audio_format_object(audio_format)
    host_tools = validate_tools(
        tools, handoff_tool_name=handoff_tool_name, silence_tool_name=silence_tool_name
    )
    handoff_tool_name, silence_tool_name = check_tool_names(handoff_tool_name, silence_tool_name)
    extra = dict(c.extra) or None
    if m is SessionMode.TRANSCRIPTION:
        if host_tools:
            raise LocalProtocolError("transcription sessions take no tools")
        if instructions is not None:
            raise LocalProtocolError("transcription sessions have no instructions")
        session = WireSession(
            type="transcription",
            audio=AudioConfig(input=_input(c, fmt, responses=False)),
            include=c.include,
            extra=extra,
        )
        return SessionUpdate(session=session, event_id=event_id)
    advertised: list[Tool] = []
    if handoff_tool_name is not None:
        advertised.append(handoff_tool(handoff_tool_name))
    if silence_tool_name is not None:
        advertised.append(silence_tool(silence_tool_name))
    advertised.extend(host_tools)
    voice: str | dict[str, Any] = (
        {"id": c.voice.id}
        if isinstance(c.voice, CustomVoice)
        else c.voice or DEFAULT_VOICE[ProtocolVersion.V2]
    )
    tracing = (
        c.tracing.wire() if c.tracing is not None and not isinstance(c.tracing, str) else c.tracing
    )
    session = WireSession(
        type="realtime",
        instructions=instructions if instructions is not None else "",
        output_modalities=c.output_modalities,
        audio=AudioConfig(
            input=_input(c, fmt),
            output=AudioOutputConfig(format=fmt, voice=voice, speed=c.speed),
        ),
        tools=tuple(advertised),
        tool_choice=_tool_choice(c.tool_choice) if c.tool_choice is not None else "auto",
        max_output_tokens=c.max_output_tokens,
        truncation=_truncation(c.truncation),
        tracing=tracing,
        prompt=c.prompt.wire() if c.prompt is not None else None,
        include=c.include,
        reasoning={"effort": c.reasoning.effort} if c.reasoning is not None else None,
        extra=extra,
    )
    return SessionUpdate(session=session, event_id=event_id)


def session_payload(
    config: SessionConfig | None = None,
    *,
    mode: SessionMode | str = SessionMode.CONVERSATIONAL,
    instructions: str | None = None,
    tools: Iterable[Tool] = (),
    handoff_tool_name: str | None = DEFAULT_HANDOFF_TOOL_NAME,
    silence_tool_name: str | None = DEFAULT_SILENCE_TOOL_NAME,
    audio_format: str | AudioFormat = "pcm16",
) -> dict[str, Any]:
    """The GA ``session`` JSON object of ``session_update_event`` (same arguments), e.g. for
    the ``session`` part of a WebRTC call or an ephemeral-key request."""
    event = session_update_event(
        config,
        mode=mode,
        instructions=instructions,
        tools=tools,
        handoff_tool_name=handoff_tool_name,
        silence_tool_name=silence_tool_name,
        audio_format=audio_format,
    )
    payload: dict[str, Any] = client_payload(event)["session"]
    return payload


def _mode(mode: SessionMode | str) -> SessionMode:
    try:
        return SessionMode(mode)
    except ValueError:
        options = ", ".join(repr(m.value) for m in SessionMode)
        raise LocalProtocolError(
            f"unknown session mode {mode!r}; expected one of {options}"
        ) from None
