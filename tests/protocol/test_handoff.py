"""Handoff argument extraction and delegation text (codex-realtime.md §5.4, §7.6, §11.4)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from duplex.protocol._events import HandoffRequested
from duplex.protocol._handoff import (
    AGENT_FINAL_MESSAGE_PREFIX,
    BACKEND_PREFIX,
    FINAL_OUTPUT_TEXT,
    STEERING_ACK_TEXT,
    USER_PREFIX,
    delegation_text,
    extract_handoff_text,
    handoff_request_text,
    prefix_text,
    wrap_delegation_input,
)
from duplex.protocol._items import TranscriptEntry


def handoff(input_transcript: str, *entries: tuple[str, str]) -> HandoffRequested:
    return HandoffRequested(
        "handoff_1",
        "item_1",
        input_transcript,
        tuple(TranscriptEntry(role, text) for role, text in entries),
    )


# --- extract_handoff_text ------------------------------------------------------------------


def test_extracts_prompt_from_v2_handoff_tool_call_arguments() -> None:
    # codex parse_realtime_v2_handoff_tool_call_event
    assert extract_handoff_text('{"prompt":"delegate this"}') == "delegate this"


def test_extract_returns_empty_for_empty_arguments() -> None:
    assert extract_handoff_text("") == ""


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"query":"q","prompt":"p","text":"t","input":"i","input_transcript":"it"}', "it"),
        ('{"query":"q","prompt":"p","text":"t","input":"i"}', "i"),
        ('{"query":"q","prompt":"p","text":"t"}', "t"),
        ('{"query":"q","prompt":"p"}', "p"),
        ('{"query":"q"}', "q"),
    ],
)
def test_extract_prefers_keys_in_codex_order(arguments: str, expected: str) -> None:
    assert extract_handoff_text(arguments) == expected


def test_extract_skips_blank_and_non_string_values() -> None:
    arguments = '{"input_transcript":"   ","input":42,"text":null,"prompt":["x"],"query":" go "}'
    assert extract_handoff_text(arguments) == "go"


def test_extract_trims_the_chosen_value() -> None:
    assert extract_handoff_text('{"prompt":"\\n  run the tests \\t"}') == "run the tests"


@pytest.mark.parametrize(
    "arguments",
    [
        "just do it",
        "   ",
        '"a json string"',
        "[1, 2, 3]",
        "42",
        '{"other":"key"}',
        '{"prompt":"unterminated',
        "{not json}",
        '{"prompt": 1' + "0" * 400 + "}",
        "[" * 100_000,
        '{"a":' * 5_000 + "1" + "}" * 5_000,
        '{"prompt":"\ud800"}',
    ],
)
def test_extract_returns_raw_arguments_when_no_request_text_is_found(arguments: str) -> None:
    assert extract_handoff_text(arguments) == arguments


@given(st.text())
def test_extract_never_raises_on_arbitrary_text(arguments: str) -> None:
    assert isinstance(extract_handoff_text(arguments), str)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(["prompt", "input", "query", "x"]), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_extract_never_raises_on_arbitrary_json(value: object) -> None:
    assert isinstance(extract_handoff_text(json.dumps(value)), str)


@given(st.text().filter(lambda text: text.strip() != ""))
def test_extract_returns_trimmed_prompt_for_any_non_blank_text(text: str) -> None:
    assert extract_handoff_text(json.dumps({"prompt": text})) == text.strip()


# --- constants and prefixes ----------------------------------------------------------------


def test_reply_texts_match_codex() -> None:
    assert AGENT_FINAL_MESSAGE_PREFIX == '"Agent Final Message":\n\n'
    assert STEERING_ACK_TEXT == "This was sent to steer the previous background agent task."
    assert FINAL_OUTPUT_TEXT == (
        "Background agent finished. Use the preceding [BACKEND] messages as the result."
    )
    assert BACKEND_PREFIX == "[BACKEND] "
    assert USER_PREFIX == "[USER] "


def test_prefix_text_prefixes_non_empty_text_once() -> None:
    assert prefix_text("hello", USER_PREFIX) == "[USER] hello"
    assert prefix_text("[USER] hello", USER_PREFIX) == "[USER] hello"
    assert prefix_text("", USER_PREFIX) == ""
    assert prefix_text("[BACKEND] done", USER_PREFIX) == "[USER] [BACKEND] done"


@given(st.text(), st.sampled_from([USER_PREFIX, BACKEND_PREFIX]))
def test_prefix_text_is_idempotent(text: str, prefix: str) -> None:
    once = prefix_text(text, prefix)
    assert prefix_text(once, prefix) == once


# --- codex realtime_conversation_tests.rs --------------------------------------------------


def test_prefers_handoff_input_transcript_over_active_transcript() -> None:
    event = handoff("ignored", ("user", "hello"), ("assistant", "hi there"))
    assert handoff_request_text(event) == "ignored"


def test_extracts_text_from_handoff_request_active_transcript_if_input_missing() -> None:
    assert handoff_request_text(handoff("", ("user", "hello"))) == "user: hello"


def test_wraps_handoff_with_transcript_delta() -> None:
    event = handoff("delegate this", ("user", "hello"), ("assistant", "hi there"))
    assert delegation_text(event) == (
        "<realtime_delegation>\n"
        "  <input>delegate this</input>\n"
        "  <transcript_delta>user: hello\nassistant: hi there</transcript_delta>\n"
        "</realtime_delegation>"
    )


def test_extracts_text_from_handoff_request_input_transcript_if_messages_missing() -> None:
    assert handoff_request_text(handoff("ignored")) == "ignored"


def test_ignores_empty_handoff_request_input_transcript() -> None:
    assert handoff_request_text(handoff("")) == ""
    assert delegation_text(handoff("")) == ""


def test_blank_input_transcript_falls_back_to_transcript_lines() -> None:
    # Decision: whitespace-only input counts as empty (codex only tests "").
    event = handoff("  \n", ("user", "hello"))
    assert handoff_request_text(event) == "user: hello"
    assert delegation_text(handoff("  ")) == ""


def test_wraps_realtime_delegation_input() -> None:
    assert wrap_delegation_input("hello") == (
        "<realtime_delegation>\n  <input>hello</input>\n</realtime_delegation>"
    )


def test_wraps_realtime_delegation_input_with_xml_escaping() -> None:
    assert wrap_delegation_input("use a < b && c > d", "saw <that>") == (
        "<realtime_delegation>\n"
        "  <input>use a &lt; b &amp;&amp; c &gt; d</input>\n"
        "  <transcript_delta>saw &lt;that&gt;</transcript_delta>\n"
        "</realtime_delegation>"
    )


def test_wraps_realtime_delegation_input_with_xml_escaping_without_transcript() -> None:
    assert wrap_delegation_input("use a < b && c > d", None) == (
        "<realtime_delegation>\n  <input>use a &lt; b &amp;&amp; c &gt; d</input>\n"
        "</realtime_delegation>"
    )


def test_wrap_omits_an_empty_transcript_delta() -> None:
    assert wrap_delegation_input("x", "") == wrap_delegation_input("x", None)


def test_delegation_text_without_transcript_omits_transcript_delta_element() -> None:
    assert delegation_text(handoff("use a < b && c > d")) == (
        "<realtime_delegation>\n  <input>use a &lt; b &amp;&amp; c &gt; d</input>\n"
        "</realtime_delegation>"
    )


def test_delegation_text_falls_back_to_transcript_lines_for_input() -> None:
    event = handoff("", ("user", "check <main>"), ("assistant", "on it"))
    lines = "user: check &lt;main&gt;\nassistant: on it"
    assert delegation_text(event) == (
        "<realtime_delegation>\n"
        f"  <input>{lines}</input>\n"
        f"  <transcript_delta>{lines}</transcript_delta>\n"
        "</realtime_delegation>"
    )


def test_delegation_text_does_not_double_escape_entities() -> None:
    assert "<input>&amp;lt;</input>" in delegation_text(handoff("&lt;"))


@given(st.text(), st.lists(st.tuples(st.sampled_from(["user", "assistant"]), st.text())))
def test_delegation_text_never_contains_raw_angle_brackets_from_input(
    text: str, entries: list[tuple[str, str]]
) -> None:
    rendered = delegation_text(handoff(text, *entries))
    if rendered:
        inner = rendered.removeprefix("<realtime_delegation>\n  <input>")
        inner = inner.removesuffix("</realtime_delegation>")
        for tag in ("</input>", "<transcript_delta>", "</transcript_delta>"):
            inner = inner.replace(tag, "")
        assert "<" not in inner
        assert ">" not in inner
