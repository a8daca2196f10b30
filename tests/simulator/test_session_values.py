"""The GA session value rules the simulator applies (``simulator/_session_values.py``): what
the real API refuses is refused, with its code and ``param``; what it accepts passes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, strategies as st

from duplex.protocol import SessionConfig, session_payload
from duplex.simulator._session_values import refusal


def _audio(input: dict[str, Any] | None = None, output: dict[str, Any] | None = None) -> Any:
    return {"type": "realtime", "audio": {"input": input or {}, "output": output or {}}}


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        (
            _audio(input={"format": {"type": "audio/pcm", "rate": 16000}}),
            "invalid_value",
            "session.audio.input.format.rate",
        ),
        (_audio(input={"format": "pcm16"}), "invalid_type", "session.audio.input.format"),
        (
            _audio(output={"format": {"type": "audio/wav"}}),
            "invalid_value",
            "session.audio.output.format.type",
        ),
        (
            _audio(input={"turn_detection": {"type": "foo_vad"}}),
            "invalid_value",
            "session.audio.input.turn_detection.type",
        ),
        (
            _audio(input={"turn_detection": {"type": "server_vad", "threshold": 5}}),
            "decimal_above_max_value",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            _audio(input={"turn_detection": {"type": "server_vad", "silence_duration_ms": -1}}),
            "integer_below_min_value",
            "session.audio.input.turn_detection.silence_duration_ms",
        ),
        (
            _audio(input={"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}}),
            "invalid_value",
            "session.audio.input.turn_detection.eagerness",
        ),
        (
            _audio(input={"noise_reduction": {"type": "mid_field"}}),
            "invalid_value",
            "session.audio.input.noise_reduction.type",
        ),
        (_audio(output={"speed": 3.0}), "decimal_above_max_value", "session.audio.output.speed"),
        (_audio(output={"speed": 0.1}), "decimal_below_min_value", "session.audio.output.speed"),
        (_audio(output={"speed": "fast"}), "invalid_type", "session.audio.output.speed"),
        (
            {"type": "realtime", "max_output_tokens": 99999},
            "integer_above_max_value",
            "session.max_output_tokens",
        ),
        (
            {"type": "realtime", "max_output_tokens": 0},
            "integer_below_min_value",
            "session.max_output_tokens",
        ),
        ({"type": "realtime", "tool_choice": "bogus"}, "invalid_value", "session.tool_choice"),
        (
            {"type": "realtime", "tool_choice": {"type": "function"}},
            "missing_required_parameter",
            "session.tool_choice.name",
        ),
    ],
)
def test_values_the_real_api_refuses_are_refused_with_its_code_and_param(
    session: dict[str, Any], code: str, param: str
) -> None:
    found = refusal(session)
    assert found is not None
    assert found[0] == code
    assert found[2] == param
    assert param in found[1] or "Invalid value" in found[1]


@pytest.mark.parametrize(
    "session",
    [
        {"type": "realtime"},
        _audio(
            input={
                "format": {"type": "audio/pcmu"},
                "turn_detection": None,
                "noise_reduction": None,
                "transcription": None,
            },
            output={"format": {"type": "audio/pcm", "rate": 24000}, "speed": 1.5},
        ),
        _audio(input={"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}),
        {"type": "realtime", "max_output_tokens": "inf", "tool_choice": "required"},
        {
            "type": "realtime",
            "max_output_tokens": 4096,
            "tool_choice": {"type": "function", "name": "f"},
        },
    ],
)
def test_values_the_real_api_accepts_pass(session: dict[str, Any]) -> None:
    assert refusal(session) is None


def test_every_session_duplex_builds_is_accepted() -> None:
    assert refusal(session_payload(SessionConfig())) is None
    assert refusal(session_payload(SessionConfig(speed=0.25, max_output_tokens=1))) is None


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_refusal_never_raises(value: Any) -> None:
    refusal(value)
    refusal(
        {
            "audio": {"input": value, "output": value},
            "tool_choice": value,
            "max_output_tokens": value,
        }
    )
