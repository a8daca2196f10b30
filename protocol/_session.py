"""Session configuration as the wire carries it, for both dialects.

The classes mirror the GA nested shape (``type``, ``audio.input.*``, ``audio.output.*``,
``tools``); the v1 "quicksilver" session uses a subset of the same keys plus
``conversation_id``. Field names equal wire keys so the converter structures them directly.

Invariants:
- ``None`` means "absent on the wire"; encoders omit it.
- ``SessionConfig.unknown_fields`` is filled only when *parsing* a client's session (server
  role): the dotted paths of keys the dialect does not know, so a strict server can answer
  ``unknown_parameter``. Encoders never emit it.
"""

from __future__ import annotations

from typing import Any, Final, final

import attrs

__all__ = [
    "PCM_24K",
    "AudioConfig",
    "AudioFormat",
    "AudioInputConfig",
    "AudioOutputConfig",
    "FunctionTool",
    "InputTranscription",
    "NoiseReduction",
    "SessionConfig",
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
    """``session.audio.input``."""

    format: AudioFormat | None = None
    noise_reduction: NoiseReduction | None = None
    transcription: InputTranscription | None = None
    turn_detection: TurnDetection | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class AudioOutputConfig:
    """``session.audio.output``."""

    format: AudioFormat | None = None
    voice: str | None = None
    speed: float | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class AudioConfig:
    """``session.audio``."""

    input: AudioInputConfig | None = None
    output: AudioOutputConfig | None = None


@final
@attrs.frozen(slots=True, kw_only=True)
class FunctionTool:
    """A function tool the model may call. ``parameters`` is a JSON Schema object."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = attrs.field(default=None, hash=False)
    type: str = "function"


@final
@attrs.frozen(slots=True, kw_only=True)
class SessionConfig:
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
    tools: tuple[FunctionTool, ...] | None = None
    tool_choice: str | None = None
    unknown_fields: tuple[str, ...] = attrs.field(default=(), eq=False)

    @property
    def voice(self) -> str | None:
        """The output voice, if the session sets one."""
        if self.audio is None or self.audio.output is None:
            return None
        return self.audio.output.voice
