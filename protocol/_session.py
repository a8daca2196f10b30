"""Session configuration as the wire carries it, for both dialects (``WireSession``: the
``session`` object of ``session.create`` / ``session.update``). The host-facing, validated
``SessionConfig`` lives in ``_session_config``; ``_session_builder`` turns one into the other.

The classes mirror the GA nested shape (``type``, ``audio.input.*``, ``audio.output.*``,
``tools``); the v1 "quicksilver" session uses a subset of the same keys plus
``conversation_id``. Field names equal wire keys so the converter structures them directly.

Invariants:
- ``None`` means "absent on the wire"; encoders omit it.
- ``WireSession.unknown_fields`` is filled only when *parsing* a client's session (server
  role): the dotted paths of keys the dialect does not know, so a strict server can answer
  ``unknown_parameter``. Encoders never emit it.
- ``WireSession.extra`` is merged into the encoded object last, object by object
  (``_converter.merge_extra``: fields this release does not model, nested ones included);
  parsing never fills it.
- Fields whose GA value is "a string or an object" (``voice``, ``tool_choice``,
  ``truncation``, ``tracing``, ``max_output_tokens``) hold the JSON value as is.
"""

from __future__ import annotations

from typing import Any, Final, final

import attrs

__all__ = [
    "AUDIO_FORMATS",
    "PCMA",
    "PCMU",
    "PCM_24K",
    "AudioConfig",
    "AudioFormat",
    "AudioInputConfig",
    "AudioOutputConfig",
    "FunctionTool",
    "InputTranscription",
    "McpTool",
    "NoiseReduction",
    "Tool",
    "WireSession",
    "TurnDetection",
]


@final
@attrs.frozen(slots=True, kw_only=True)
class AudioFormat:
    """``{"type": "audio/pcm", "rate": 24000}``; G.711 formats carry no rate, so ``rate`` is
    absent unless given (``PCM_24K`` is the realtime wire format)."""

    type: str = "audio/pcm"
    rate: int | None = None


PCM_24K: Final = AudioFormat(type="audio/pcm", rate=24_000)
#: G.711 μ-law / A-law, 8 kHz mono (telephony); GA names no rate for them
PCMU: Final = AudioFormat(type="audio/pcmu")
PCMA: Final = AudioFormat(type="audio/pcma")
#: ``audio_format`` names → wire format objects
AUDIO_FORMATS: Final[dict[str, AudioFormat]] = {"pcm16": PCM_24K, "pcmu": PCMU, "pcma": PCMA}


@final
@attrs.frozen(slots=True, kw_only=True)
class NoiseReduction:
    """``{"type": "near_field" | "far_field"}``."""

    type: str


@final
@attrs.frozen(slots=True, kw_only=True)
class InputTranscription:
    """Input-audio transcription settings."""

    model: str
    language: str | None = None
    prompt: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class TurnDetection:
    """Server or semantic VAD settings."""

    type: str = "server_vad"
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    idle_timeout_ms: int | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None
    eagerness: str | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class AudioInputConfig:
    """``session.audio.input``.

    ``nulls`` names the fields sent as JSON ``null`` (GA's "off": ``turn_detection`` null is
    manual turns), as opposed to ``None`` fields, which are absent ("keep").
    """

    format: AudioFormat | None = None
    noise_reduction: NoiseReduction | None = None
    transcription: InputTranscription | None = None
    turn_detection: TurnDetection | None = None
    nulls: tuple[str, ...] = ()


@final
@attrs.frozen(slots=True, kw_only=True)
class AudioOutputConfig:
    """``session.audio.output``."""

    format: AudioFormat | None = None
    # A built-in voice name, or {"id": "voice_…"} for a custom voice.
    voice: str | dict[str, Any] | None = attrs.field(default=None, hash=False)
    speed: float | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class AudioConfig:
    """``session.audio``."""

    input: AudioInputConfig | None = None
    output: AudioOutputConfig | None = None


@final
@attrs.frozen(slots=True)
class FunctionTool:
    """A function tool the model may call: ``FunctionTool(name, description, parameters)``,
    ``parameters`` a JSON Schema object. The class holds any wire value (the server role
    parses clients' tools into it); ``_session_builder`` validates a host's tools before
    they are sent.
    """

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = attrs.field(default=None, hash=False)
    type: str = "function"


@final
@attrs.frozen(slots=True, kw_only=True)
class McpTool:
    """A remote MCP server whose tools the model may use (GA ``{"type": "mcp", ...}``): the
    *server* lists and calls them; the host only approves calls when ``require_approval``
    asks it to (``McpApprovalRequested``).

    ``server_url`` (an MCP endpoint) or ``connector_id`` (an OpenAI connector) names the
    server. ``allowed_tools`` is a list of tool names or GA's filter object;
    ``require_approval`` is ``"always"``, ``"never"`` or GA's filter object
    (``{"never": {"tool_names": [...]}}``). ``authorization`` and ``headers`` carry
    credentials for the MCP server: they are sent, and left out of ``repr``.
    """

    server_label: str
    server_url: str | None = None
    connector_id: str | None = None
    server_description: str | None = None
    allowed_tools: Any = attrs.field(default=None, hash=False)
    require_approval: str | dict[str, Any] | None = attrs.field(default=None, hash=False)
    authorization: str | None = attrs.field(default=None, repr=False)
    headers: dict[str, Any] | None = attrs.field(default=None, hash=False, repr=False)
    type: str = "mcp"


#: a session's (or a response's) tool: a function the host runs, or an MCP server
Tool = FunctionTool | McpTool


@final
@attrs.frozen(slots=True, kw_only=True)
class WireSession:
    """The ``session`` object of ``session.create`` / ``session.update``.

    ``type`` is ``"quicksilver"`` or ``"transcription"`` on v1 and ``"realtime"`` or
    ``"transcription"`` on v2.
    """

    type: str
    id: str | None = None
    model: str | None = None
    instructions: str | None = None
    conversation_id: str | None = None
    output_modalities: tuple[str, ...] | None = None
    audio: AudioConfig | None = None
    tools: tuple[FunctionTool | McpTool, ...] | None = None
    tool_choice: str | dict[str, Any] | None = attrs.field(default=None, hash=False)
    max_output_tokens: int | str | None = None
    truncation: str | dict[str, Any] | None = attrs.field(default=None, hash=False)
    tracing: str | dict[str, Any] | None = attrs.field(default=None, hash=False)
    prompt: dict[str, Any] | None = attrs.field(default=None, hash=False)
    include: tuple[str, ...] | None = None
    reasoning: dict[str, Any] | None = attrs.field(default=None, hash=False)
    extra: dict[str, Any] | None = attrs.field(default=None, hash=False)
    unknown_fields: tuple[str, ...] = attrs.field(default=(), eq=False)

    @property
    def voice(self) -> str | None:
        """The output voice name, if the session sets a built-in one (a custom voice's id
        otherwise)."""
        if self.audio is None or self.audio.output is None:
            return None
        voice = self.audio.output.voice
        if isinstance(voice, dict):
            custom = voice.get("id")
            return custom if isinstance(custom, str) else None
        return voice
