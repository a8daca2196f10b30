"""``EngineConfig``: everything a host decides about a conversation, frozen and validated.

Invariants:
- The API key never appears in ``repr``, ``str`` or any message built from the config: the
  field is excluded from repr and from equality-based debugging output.
- Defaults follow the Rust original (model ``gpt-realtime-1.5``, v2, WebSocket) and SPEC §3.
- Queue sizes are documented where they are used; each bound is why memory stays flat when
  the host or the network is slow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import attrs

from duplex.protocol import (
    DEFAULT_HANDOFF_TOOL_NAME,
    DEFAULT_SILENCE_TOOL_NAME,
    LocalProtocolError,
    OutputModality,
    ProtocolVersion,
    SessionConfig,
    SessionMode,
    Tool,
    validate_tools,
)

from ._reconnect import ReconnectPolicy

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "EngineConfig"]

DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
DEFAULT_MODEL: Final = "gpt-realtime-1.5"

TransportName = Literal["websocket", "webrtc"]
AudioFormatName = Literal["pcm16", "pcmu", "pcma"]
WebRTCControl = Literal["datachannel", "sideband"]


def _positive(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _session(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, SessionConfig):
        raise ValueError(f"session must be a duplex.protocol.SessionConfig or None, got {value!r}")


def _tools(inst: EngineConfig, _attribute: attrs.Attribute[Any], value: Any) -> None:
    # Names, schemas and clashes with the handoff/silence tools are checked here, so a bad
    # tool fails where it is written, not as a server error mid-conversation.
    try:
        validate_tools(
            value,
            handoff_tool_name=inst.handoff_tool_name,
            silence_tool_name=inst.silence_tool_name,
        )
    except LocalProtocolError as exc:
        raise ValueError(str(exc)) from None


def _tool_tuple(value: Iterable[Tool]) -> tuple[Tool, ...]:
    return tuple(value)


def _one_of(*options: str) -> Any:
    def check(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in options:
            raise ValueError(f"{attribute.name} must be one of {options}, got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class EngineConfig:
    """How the engine connects and what session it asks for.

    Attributes:
        base_url: provider base URL (``https://api.openai.com/v1``, or the simulator's).
        api_key: bearer key (``sk-…`` or an ephemeral ``ek_…``). Never logged or repr'd.
        model: realtime model (sent in the WebSocket URL and the WebRTC call session).
        version: wire dialect, ``"v1"`` or ``"v2"``.
        mode: ``"conversational"`` or ``"transcription"``.
        transport: ``"websocket"`` or ``"webrtc"``.
        webrtc_control: WebRTC event path: the ``oai-events`` data channel or a sideband
            WebSocket joined with ``?call_id=``.
        voice: output voice; ``None`` = the dialect default (``cove`` v1, ``marin`` v2).
        output_modality: ``"audio"`` or ``"text"`` (text needs v2).
        handoff_tool_name / silence_tool_name: v2 tool names (``None`` disables the tool:
            no handoff tool is advertised, or no ``remain_silent`` tool).
        tools: the host's function tools (``FunctionTool``), advertised beside the handoff
            tool on v2 (v1 has no tools: ``start()`` refuses them), and remote MCP servers
            (``McpTool``). Calls reach the host as ``ToolCallRequested``; answer with
            ``Engine.send_tool_output``. An MCP call that needs approval reaches it as
            ``McpApprovalRequested``; answer with ``Engine.send_mcp_approval``.
        session: the v2 session configuration (``SessionConfig``: voice, turn detection,
            transcription, …). ``None`` builds the default session from ``voice`` and
            ``output_modality``; when given, set the voice in it, not in ``voice``.
        user_text_prefix: prefix typed text with ``[USER] `` on v2 (off by default).
        headers: extra request headers (``Authorization`` is always set from ``api_key``).
        connect_timeout: seconds for connecting (WebSocket upgrade or WebRTC call + channel).
        close_timeout: seconds a graceful transport close may take before it is abandoned
            (and, before it, the sending of what the host queued last: ``Engine.close``).
        audio_queue_size: host audio frames buffered before new ones are dropped and counted.
        event_queue_size: host event batches buffered before the engine stops reading the
            network (backpressure; structural events are never dropped).
        forward_unknown_events: deliver ``UnknownEvent`` to the host (default: count only).
        max_message_size: largest inbound WebSocket message accepted.
        liveness_timeout: seconds of silence from the peer after which it is taken as dead
            (WebSocket: keepalive pings and their pongs fit in it; WebRTC: no audio and no
            event for that long) and the conversation ends (SPEC §3.4).
        reconnect: resume after an unexpected drop and rotate before the server's session
            cap (``ReconnectPolicy``; ``ReconnectPolicy.disabled()`` turns both off).
        audio_format: the audio both ways: ``"pcm16"`` (PCM16; host audio of any rate or
            channel count is resampled to 24 kHz mono) or ``"pcmu"`` / ``"pcma"`` (8 kHz
            G.711 for telephony hosts, v2 only: passed through untranscoded over WebSocket,
            transcoded to and from the Opus track over WebRTC). ``AudioOut`` frames and the
            frames the host sends use this encoding.
        ice_servers: STUN/TURN servers for WebRTC, as URLs or ``RTCIceServer``-shaped
            mappings. Default: none, so nothing is sent beyond the server's own address.
    """

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = attrs.field(default=None, repr=False)
    model: str = DEFAULT_MODEL
    version: ProtocolVersion = attrs.field(default=ProtocolVersion.V2, converter=ProtocolVersion)
    mode: SessionMode = attrs.field(default=SessionMode.CONVERSATIONAL, converter=SessionMode)
    transport: TransportName = attrs.field(
        default="websocket", validator=_one_of("websocket", "webrtc")
    )
    webrtc_control: WebRTCControl = attrs.field(
        default="datachannel", validator=_one_of("datachannel", "sideband")
    )
    voice: str | None = None
    output_modality: OutputModality = attrs.field(
        default=OutputModality.AUDIO, converter=OutputModality
    )
    handoff_tool_name: str | None = DEFAULT_HANDOFF_TOOL_NAME
    silence_tool_name: str | None = DEFAULT_SILENCE_TOOL_NAME
    user_text_prefix: bool = False
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    connect_timeout: float = attrs.field(default=10.0, validator=_positive)
    close_timeout: float = attrs.field(default=2.0, validator=_positive)
    audio_queue_size: int = attrs.field(default=256, validator=_positive)
    event_queue_size: int = attrs.field(default=16, validator=_positive)
    forward_unknown_events: bool = False
    max_message_size: int = attrs.field(default=16 * 2**20, validator=_positive)
    liveness_timeout: float = attrs.field(default=5.0, validator=_positive)
    reconnect: ReconnectPolicy = attrs.field(factory=ReconnectPolicy)
    audio_format: AudioFormatName = attrs.field(
        default="pcm16", validator=_one_of("pcm16", "pcmu", "pcma")
    )
    ice_servers: tuple[str | Mapping[str, Any], ...] = attrs.field(
        default=(), converter=tuple, repr=False
    )
    session: SessionConfig | None = attrs.field(default=None, validator=_session)
    tools: tuple[Tool, ...] = attrs.field(default=(), converter=_tool_tuple, validator=_tools)

    @classmethod
    def from_env(cls, **overrides: Any) -> EngineConfig:
        """A config whose key and base URL come from ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``
        (keyword overrides win)."""
        values: dict[str, Any] = {}
        key = os.environ.get("OPENAI_API_KEY")
        if key:
            values["api_key"] = key
        base = os.environ.get("OPENAI_BASE_URL")
        if base:
            values["base_url"] = base
        values.update(overrides)
        return cls(**values)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{a.name}={getattr(self, a.name)!r}"
            for a in attrs.fields(type(self))
            if a.name not in ("api_key", "headers")
        )
        key = "None" if self.api_key is None else "'<redacted>'"
        return f"EngineConfig({shown}, api_key={key})"
