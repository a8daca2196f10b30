"""The value rules a GA server applies to a ``session.update`` (openai-realtime-protocol.md
§4.2, §6, §7.1): the simulator refuses what the real API refuses, so a client misconfigured
against it fails here first, not in production (§8.3: be strict where the server is).

``refusal`` is pure: it takes the raw ``session`` object a client sent and returns the first
value the server would refuse — ``(code, message, param)`` in the real error's words — or
``None``. It checks values only; unknown keys are the session parser's (``unknown_fields``),
and the type, model, voice and modalities rules stay in ``_model`` where they need the
session's state.

Invariants: never raises, whatever the JSON; a key that is absent is never an error (an
update changes only what it names); ``null`` is accepted exactly where GA means "off"
(``turn_detection``, ``noise_reduction``, ``transcription``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from duplex.protocol import MAX_OUTPUT_TOKENS

__all__ = ["refusal"]

Refusal = tuple[str, str, str]

AUDIO_FORMAT_TYPES: Final = ("audio/pcm", "audio/pcmu", "audio/pcma")
PCM_RATE: Final = 24000
TURN_DETECTION_TYPES: Final = ("server_vad", "semantic_vad")
EAGERNESS: Final = ("auto", "low", "medium", "high")
NOISE_REDUCTION_TYPES: Final = ("near_field", "far_field")
TOOL_CHOICES: Final = ("auto", "none", "required")
SPEED_RANGE: Final = (0.25, 1.5)


def refusal(session: object) -> Refusal | None:
    """The first value of ``session`` a GA server refuses, or ``None``."""
    if not isinstance(session, Mapping):
        return None  # the parser has already answered a session that is not an object
    audio = session.get("audio")
    audio = audio if isinstance(audio, Mapping) else {}
    audio_in = audio.get("input")
    audio_in = audio_in if isinstance(audio_in, Mapping) else {}
    audio_out = audio.get("output")
    audio_out = audio_out if isinstance(audio_out, Mapping) else {}
    checks: tuple[tuple[Mapping[str, Any], str, str, Callable[[Any, str], Refusal | None]], ...] = (
        (audio_in, "format", "session.audio.input.format", _format),
        (audio_out, "format", "session.audio.output.format", _format),
        (audio_in, "turn_detection", "session.audio.input.turn_detection", _turn_detection),
        (audio_in, "noise_reduction", "session.audio.input.noise_reduction", _noise_reduction),
        (audio_out, "speed", "session.audio.output.speed", _speed),
        (session, "max_output_tokens", "session.max_output_tokens", _max_output_tokens),
        (session, "tool_choice", "session.tool_choice", _tool_choice),
    )
    for where, key, param, check in checks:
        if key in where:
            found = check(where[key], param)
            if found is not None:
                return found
    return None


def _enum(value: object, allowed: tuple[str | int, ...], param: str) -> Refusal | None:
    if value in allowed and type(value) is type(allowed[0]):
        return None
    shown = [f"'{a}'" if isinstance(a, str) else str(a) for a in allowed]
    if len(shown) <= 2:
        listed = " and ".join(shown)
    else:
        listed = ", ".join(shown[:-1]) + f", and {shown[-1]}"
    got = f"'{_show(value)}'" if isinstance(value, str) else _show(value)
    return ("invalid_value", f"Invalid value: {got}. Supported values are: {listed}.", param)


def _type_error(param: str, expected: str, value: object) -> Refusal:
    return (
        "invalid_type",
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param,
    )


def _format(value: object, param: str) -> Refusal | None:
    if not isinstance(value, Mapping):
        return _type_error(param, "an object", value)
    found = _enum(value.get("type"), AUDIO_FORMAT_TYPES, f"{param}.type")
    if found is not None:
        return found
    rate = value.get("rate")
    if value.get("type") == "audio/pcm" and rate is not None and rate != PCM_RATE:
        return _enum(rate, (PCM_RATE,), f"{param}.rate")
    return None


def _turn_detection(value: object, param: str) -> Refusal | None:
    if value is None:
        return None  # manual turns
    if not isinstance(value, Mapping):
        return _type_error(param, "an object", value)
    kind = value.get("type")
    found = _enum(kind, TURN_DETECTION_TYPES, f"{param}.type")
    if found is not None:
        return found
    if "threshold" in value:
        found = _number(value["threshold"], 0.0, 1.0, f"{param}.threshold")
        if found is not None:
            return found
    for key in ("prefix_padding_ms", "silence_duration_ms"):
        if key in value:
            found = _integer(value[key], 0, None, f"{param}.{key}")
            if found is not None:
                return found
    if kind == "semantic_vad" and "eagerness" in value:
        return _enum(value["eagerness"], EAGERNESS, f"{param}.eagerness")
    return None


def _noise_reduction(value: object, param: str) -> Refusal | None:
    if value is None:
        return None  # off
    if not isinstance(value, Mapping):
        return _type_error(param, "an object", value)
    return _enum(value.get("type"), NOISE_REDUCTION_TYPES, f"{param}.type")


def _speed(value: object, param: str) -> Refusal | None:
    return _number(value, SPEED_RANGE[0], SPEED_RANGE[1], param)


def _max_output_tokens(value: object, param: str) -> Refusal | None:
    if value == "inf":
        return None
    return _integer(value, 1, MAX_OUTPUT_TOKENS, param)


def _tool_choice(value: object, param: str) -> Refusal | None:
    if isinstance(value, Mapping):
        kind = value.get("type")
        found = _enum(kind, ("function", "mcp"), f"{param}.type")
        if found is not None:
            return found
        if kind == "function" and not isinstance(value.get("name"), str):
            return (
                "missing_required_parameter",
                f"Missing required parameter: '{param}.name'.",
                f"{param}.name",
            )
        return None
    return _enum(value, TOOL_CHOICES, param)


def _number(value: object, low: float, high: float, param: str) -> Refusal | None:
    if not _is_number(value):
        return _type_error(param, "a decimal", value)
    assert isinstance(value, (int, float))
    return _range("decimal", value, low, high, param)


def _integer(value: object, low: int, high: int | None, param: str) -> Refusal | None:
    if type(value) is not int:
        return _type_error(param, "an integer", value)
    return _range("integer", value, low, high, param)


def _range(kind: str, value: float, low: float, high: float | None, param: str) -> Refusal | None:
    """The API's own words for a number out of its range (``integer_above_max_value``…)."""
    if value < low:
        side, words, relation, bound = "below_min", "below minimum", ">=", low
    elif high is not None and value > high:
        side, words, relation, bound = "above_max", "above maximum", "<=", high
    else:
        return None
    return (
        f"{kind}_{side}_value",
        f"Invalid '{param}': {kind} {words} value. "
        f"Expected a value {relation} {bound}, but got {value} instead.",
        param,
    )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and type(value) is not bool and math.isfinite(value)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a value"


def _show(value: object) -> str:
    text = str(value)
    return text if len(text) <= 64 else text[:61] + "..."
