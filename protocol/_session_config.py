"""The host's session configuration (SPEC §3.3): every GA session field a client may set, as
small frozen values validated when they are built.

``SessionConfig`` is the *whole* desired configuration, not a patch: its defaults are the
session duplex has always opened (server VAD with 500 ms of silence, near-field noise
reduction, ``gpt-4o-mini-transcribe`` input transcription, audio output in the dialect's
default voice), so a host that sets nothing gets exactly that. ``_session_builder`` turns it
into the GA ``session`` object; the engine sends the whole object on every change, so a type
switch (``ServerVad`` → ``SemanticVad``) replaces the nested object instead of merging into it.

Invariants:
- Construction validates: a bad value raises ``LocalProtocolError`` (a ``ProtocolError``, not a
  wire error) whose message names the field and the accepted values. Nothing is checked
  against a server: a new server-side value that this release rejects can go in ``extra``.
- ``None`` means "off" where GA has an off (``turn_detection=None``: manual turns, commit with
  ``input_audio_buffer.commit``; ``noise_reduction=None``; ``transcription=None``) and "not
  sent, server default" for the rest.
- Unknown built-in voice names are rejected; a custom voice is ``CustomVoice(id)`` (or the wire
  form ``{"id": "voice_…"}``), never checked against the list.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final, final

import attrs

from ._enums import VOICES, ProtocolVersion
from ._errors import LocalProtocolError
from ._session import InputTranscription

__all__ = [
    "DEFAULT_TRANSCRIPTION_MODEL",
    "EAGERNESS_VALUES",
    "MAX_OUTPUT_TOKENS",
    "NOISE_REDUCTION_TYPES",
    "CustomVoice",
    "PromptReference",
    "Reasoning",
    "SemanticVad",
    "ServerVad",
    "SessionConfig",
    "Tracing",
    "TurnDetectionConfig",
    "valid_max_output_tokens",
]

DEFAULT_TRANSCRIPTION_MODEL: Final = "gpt-4o-mini-transcribe"
EAGERNESS_VALUES: Final = ("low", "medium", "high", "auto")
NOISE_REDUCTION_TYPES: Final = ("near_field", "far_field")
#: The API's limit on a response's output tokens (``"inf"`` lifts it).
MAX_OUTPUT_TOKENS: Final = 4096
OUTPUT_MODALITIES: Final = ("audio", "text")
TOOL_CHOICE_MODES: Final = ("auto", "none", "required")
TRUNCATION_MODES: Final = ("auto", "disabled")
REASONING_EFFORTS: Final = ("minimal", "low", "medium", "high")
_SPEED_RANGE: Final = (0.25, 1.5)


def valid_max_output_tokens(value: object) -> bool:
    """1 to ``MAX_OUTPUT_TOKENS``, or ``"inf"`` (a session's or one response's limit)."""
    return value == "inf" or (type(value) is int and 1 <= value <= MAX_OUTPUT_TOKENS)


_FUNCTION_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _fail(field: str, value: object, expected: str) -> LocalProtocolError:
    return LocalProtocolError(f"session {field} must be {expected}, got {value!r}")


def _check_ms(field: str, value: int | None) -> None:
    if value is not None and (type(value) is not int or value < 0):
        raise _fail(field, value, "a whole number of milliseconds >= 0")


def _check_flag(field: str, value: bool | None) -> None:
    if value is not None and type(value) is not bool:
        raise _fail(field, value, "True, False or None")


@final
@attrs.frozen(slots=True, kw_only=True)
class ServerVad:
    """Server voice-activity detection: a turn ends after ``silence_duration_ms`` of silence.
    ``None`` fields are left to the server's defaults."""

    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = 500
    idle_timeout_ms: int | None = None
    create_response: bool | None = True
    interrupt_response: bool | None = True

    def __attrs_post_init__(self) -> None:
        t = self.threshold
        if t is not None and (type(t) not in (int, float) or not 0.0 <= t <= 1.0):
            raise _fail("turn_detection.threshold", t, "a number from 0.0 to 1.0")
        _check_ms("turn_detection.prefix_padding_ms", self.prefix_padding_ms)
        _check_ms("turn_detection.silence_duration_ms", self.silence_duration_ms)
        _check_ms("turn_detection.idle_timeout_ms", self.idle_timeout_ms)
        _check_flag("turn_detection.create_response", self.create_response)
        _check_flag("turn_detection.interrupt_response", self.interrupt_response)

    def wire(self) -> dict[str, Any]:
        return _drop_none({"type": "server_vad", **attrs.asdict(self)})


@final
@attrs.frozen(slots=True, kw_only=True)
class SemanticVad:
    """Semantic VAD: a model judges when the user has finished. ``eagerness`` is one of
    ``low``, ``medium``, ``high``, ``auto``."""

    eagerness: str = "auto"
    create_response: bool | None = True
    interrupt_response: bool | None = True

    def __attrs_post_init__(self) -> None:
        if self.eagerness not in EAGERNESS_VALUES:
            raise _fail("turn_detection.eagerness", self.eagerness, _one_of(EAGERNESS_VALUES))
        _check_flag("turn_detection.create_response", self.create_response)
        _check_flag("turn_detection.interrupt_response", self.interrupt_response)

    def wire(self) -> dict[str, Any]:
        return _drop_none({"type": "semantic_vad", **attrs.asdict(self)})


TurnDetectionConfig = ServerVad | SemanticVad


@final
@attrs.frozen(slots=True)
class CustomVoice:
    """A custom voice by id (``{"id": "voice_…"}`` on the wire)."""

    id: str

    def __attrs_post_init__(self) -> None:
        if type(self.id) is not str or not self.id:
            raise _fail("voice id", self.id, "a non-empty string")


@final
@attrs.frozen(slots=True, kw_only=True)
class PromptReference:
    """A stored prompt: ``{"id", "version", "variables"}``."""

    id: str
    version: str | None = None
    variables: Mapping[str, Any] | None = attrs.field(default=None, hash=False)

    def __attrs_post_init__(self) -> None:
        if type(self.id) is not str or not self.id:
            raise _fail("prompt.id", self.id, "a non-empty string")
        if self.version is not None and type(self.version) is not str:
            raise _fail("prompt.version", self.version, "a string")
        if self.variables is not None and not isinstance(self.variables, Mapping):
            raise _fail("prompt.variables", self.variables, "a mapping")

    def wire(self) -> dict[str, Any]:
        variables = dict(self.variables) if self.variables is not None else None
        return _drop_none({"id": self.id, "version": self.version, "variables": variables})


@final
@attrs.frozen(slots=True, kw_only=True)
class Tracing:
    """Tracing with explicit names (``tracing="auto"`` uses the server's defaults)."""

    workflow_name: str | None = None
    group_id: str | None = None
    metadata: Mapping[str, Any] | None = attrs.field(default=None, hash=False)

    def wire(self) -> dict[str, Any]:
        metadata = dict(self.metadata) if self.metadata is not None else None
        return _drop_none(
            {"workflow_name": self.workflow_name, "group_id": self.group_id, "metadata": metadata}
        )


@final
@attrs.frozen(slots=True)
class Reasoning:
    """Reasoning effort for reasoning realtime models."""

    effort: str

    def __attrs_post_init__(self) -> None:
        if self.effort not in REASONING_EFFORTS:
            raise _fail("reasoning.effort", self.effort, _one_of(REASONING_EFFORTS))


def _voice(value: str | CustomVoice | Mapping[str, Any] | None) -> str | CustomVoice | None:
    if isinstance(value, Mapping):
        return CustomVoice(value.get("id"))  # type: ignore[arg-type]  # validated there
    return value


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@final
@attrs.frozen(slots=True, kw_only=True)
class SessionConfig:
    """Everything about a GA session a host may choose (SPEC §3.3). See the module docstring
    for what ``None`` means per field.

    Attributes:
        output_modalities: ``("audio",)`` or ``("text",)`` (GA accepts exactly one).
        voice: a built-in voice name (v2 list in ``VOICES``), a ``CustomVoice``, or ``None``
            for the dialect's default voice.
        speed: speaking speed, 0.25 to 1.5.
        turn_detection: ``ServerVad(...)``, ``SemanticVad(...)``, or ``None`` for manual turns.
        noise_reduction: ``"near_field"``, ``"far_field"`` or ``None`` (off).
        transcription: input transcription (model, language, prompt) or ``None`` (off).
        max_output_tokens: a positive limit or ``"inf"``.
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` or the name of one function tool.
        truncation: ``"auto"``, ``"disabled"``, or a retention ratio in (0, 1].
        tracing: ``"auto"``, a ``Tracing``, or ``None`` (not sent).
        prompt: a stored prompt reference.
        include: extra server outputs, e.g. ``("item.input_audio_transcription.logprobs",)``.
        reasoning: reasoning effort.
        extra: session fields this release does not know, sent as given and merged object
            by object into what the typed fields build (``{"audio": {"input":
            {"transcription": {"delay": "low"}}}}`` adds one nested field and keeps the
            rest); on a clash of values, ``extra`` wins.
    """

    output_modalities: tuple[str, ...] = attrs.field(default=("audio",), converter=_tuple)
    voice: str | CustomVoice | None = attrs.field(default=None, converter=_voice)
    speed: float | None = None
    turn_detection: ServerVad | SemanticVad | None = attrs.field(factory=ServerVad)
    noise_reduction: str | None = "near_field"
    transcription: InputTranscription | None = attrs.field(
        factory=lambda: InputTranscription(model=DEFAULT_TRANSCRIPTION_MODEL)
    )
    max_output_tokens: int | str | None = None
    tool_choice: str | None = None
    truncation: str | float | None = None
    tracing: str | Tracing | None = None
    prompt: PromptReference | None = None
    include: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple)
    reasoning: Reasoning | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def __attrs_post_init__(self) -> None:
        _validate(self)


def _validate(c: SessionConfig) -> None:
    mods = c.output_modalities
    if type(mods) is not tuple or len(mods) != 1 or mods[0] not in OUTPUT_MODALITIES:
        raise _fail("output_modalities", mods, '("audio",) or ("text",)')
    voice = c.voice
    if voice is not None and not isinstance(voice, CustomVoice):
        supported = VOICES[ProtocolVersion.V2]
        if voice not in supported:
            raise LocalProtocolError(
                f"session voice {voice!r} is not a built-in voice (supported: "
                f"{', '.join(supported)}); use CustomVoice(id) for a custom voice"
            )
    speed = c.speed
    if speed is not None and (
        type(speed) not in (int, float) or not _SPEED_RANGE[0] <= speed <= _SPEED_RANGE[1]
    ):
        raise _fail("speed", speed, "a number from 0.25 to 1.5")
    if c.turn_detection is not None and not isinstance(c.turn_detection, ServerVad | SemanticVad):
        raise _fail("turn_detection", c.turn_detection, "ServerVad(...), SemanticVad(...) or None")
    if c.noise_reduction is not None and c.noise_reduction not in NOISE_REDUCTION_TYPES:
        raise _fail("noise_reduction", c.noise_reduction, _one_of(NOISE_REDUCTION_TYPES, none=True))
    t = c.transcription
    if t is not None and (not isinstance(t, InputTranscription) or not t.model):
        raise _fail("transcription", t, "InputTranscription(model=...) or None")
    tokens = c.max_output_tokens
    if tokens is not None and not valid_max_output_tokens(tokens):
        raise _fail("max_output_tokens", tokens, f'1 to {MAX_OUTPUT_TOKENS} or "inf"')
    choice = c.tool_choice
    if choice is not None and (
        type(choice) is not str
        or (choice not in TOOL_CHOICE_MODES and not _FUNCTION_NAME.fullmatch(choice))
    ):
        raise _fail("tool_choice", choice, '"auto", "none", "required" or a function name')
    trunc = c.truncation
    if trunc is not None and trunc not in TRUNCATION_MODES and not _is_ratio(trunc):
        raise _fail("truncation", trunc, '"auto", "disabled" or a ratio in (0, 1]')
    if c.tracing is not None and c.tracing != "auto" and not isinstance(c.tracing, Tracing):
        raise _fail("tracing", c.tracing, '"auto", Tracing(...) or None')
    if c.prompt is not None and not isinstance(c.prompt, PromptReference):
        raise _fail("prompt", c.prompt, "PromptReference(id=...) or None")
    include = c.include
    if include is not None and (
        type(include) is not tuple or not all(type(i) is str and i for i in include)
    ):
        raise _fail("include", include, "a sequence of non-empty strings")
    if c.reasoning is not None and not isinstance(c.reasoning, Reasoning):
        raise _fail("reasoning", c.reasoning, "Reasoning(effort) or None")
    if not isinstance(c.extra, Mapping) or not all(type(k) is str for k in c.extra):
        raise _fail("extra", c.extra, "a mapping with string keys")
    if "type" in c.extra:
        raise LocalProtocolError("session extra must not set 'type' (the mode decides it)")


def _is_ratio(value: object) -> bool:
    return (
        (type(value) is float or type(value) is int)
        and not math.isnan(value)
        and 0.0 < value <= 1.0
    )


def _one_of(values: tuple[str, ...], *, none: bool = False) -> str:
    listed = ", ".join(repr(v) for v in values)
    return f"one of {listed}" + (" or None" if none else "")


def _drop_none(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if v is not None}
