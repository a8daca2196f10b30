"""The running transcript and ``HandoffRequested.active_transcript`` (codex-realtime.md §5.6)."""

from __future__ import annotations

from hypothesis import given, strategies as st

from duplex.protocol._events import (
    ConversationItemAdded,
    Error,
    HandoffRequested,
    InputAudioSpeechStarted,
    InputTranscriptDelta,
    InputTranscriptDone,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionUpdated,
)
from duplex.protocol._items import ConversationItem, TranscriptEntry
from duplex.protocol._transcript import TranscriptAccumulator


def handoff(input_transcript: str = "", handoff_id: str = "handoff_1") -> HandoffRequested:
    return HandoffRequested(handoff_id, "item_2", input_transcript)


def feed(acc: TranscriptAccumulator, *events: ServerEvent) -> list[ServerEvent]:
    return [acc.observe(event) for event in events]


def test_handoff_carries_user_and_assistant_lines_like_codex_e2e() -> None:
    acc = TranscriptAccumulator()
    *_, result = feed(
        acc,
        InputTranscriptDelta("delegate "),
        InputTranscriptDelta("now"),
        OutputTranscriptDelta("working"),
        handoff("delegate now"),
    )

    assert result == HandoffRequested(
        "handoff_1",
        "item_2",
        "delegate now",
        (TranscriptEntry("user", "delegate now"), TranscriptEntry("assistant", "working")),
    )


def test_v2_parser_flow_with_done_transcript_and_item_echo() -> None:
    # codex realtime_ws_e2e_realtime_v2_parser_emits_handoff_requested
    acc = TranscriptAccumulator()
    item = ConversationItem(type="message", id="item_echo", role="user")
    *_, result = feed(
        acc,
        InputTranscriptDone("delegate now"),
        OutputTranscriptDelta("working"),
        ConversationItemAdded(item),
        handoff("delegate now"),
    )

    assert isinstance(result, HandoffRequested)
    assert result.active_transcript == (
        TranscriptEntry("user", "delegate now"),
        TranscriptEntry("assistant", "working"),
    )


def test_second_handoff_carries_only_the_delta_since_the_first() -> None:
    acc = TranscriptAccumulator()
    feed(
        acc,
        InputTranscriptDelta("delegate "),
        InputTranscriptDelta("now"),
        OutputTranscriptDelta("working"),
        handoff("delegate now"),
    )
    *_, second = feed(
        acc,
        OutputTranscriptDelta("still "),
        OutputTranscriptDelta("on it"),
        InputTranscriptDelta("also check the tests"),
        handoff("also check the tests", handoff_id="handoff_2"),
    )

    assert isinstance(second, HandoffRequested)
    assert second.active_transcript == (
        TranscriptEntry("assistant", "still on it"),
        TranscriptEntry("user", "also check the tests"),
    )


def test_handoff_right_after_a_handoff_carries_nothing() -> None:
    acc = TranscriptAccumulator()
    feed(acc, InputTranscriptDelta("hello"), handoff("hello"))
    (again,) = feed(acc, handoff("hello", handoff_id="handoff_2"))
    assert isinstance(again, HandoffRequested)
    assert again.active_transcript == ()


def test_text_after_a_handoff_starts_new_entries_even_for_the_same_role() -> None:
    acc = TranscriptAccumulator()
    feed(acc, OutputTranscriptDelta("before"), handoff(), OutputTranscriptDelta("after"))
    assert acc.entries == (
        TranscriptEntry("assistant", "before"),
        TranscriptEntry("assistant", "after"),
    )


def test_handoff_adds_its_trimmed_input_as_a_user_entry_when_missing() -> None:
    acc = TranscriptAccumulator()
    *_, result = feed(acc, OutputTranscriptDelta("how can I help?"), handoff("  fix the build \n"))
    assert isinstance(result, HandoffRequested)
    assert result.active_transcript == (
        TranscriptEntry("assistant", "how can I help?"),
        TranscriptEntry("user", "fix the build"),
    )
    # the event's own input_transcript is left as the server sent it
    assert result.input_transcript == "  fix the build \n"


def test_handoff_does_not_duplicate_an_identical_user_entry_ignoring_whitespace() -> None:
    acc = TranscriptAccumulator()
    *_, result = feed(acc, InputTranscriptDone(" delegate now "), handoff("delegate now"))
    assert isinstance(result, HandoffRequested)
    assert result.active_transcript == (TranscriptEntry("user", " delegate now "),)


def test_handoff_input_matching_an_earlier_handoffs_entry_is_not_added_again() -> None:
    # codex searches the whole transcript, not just the part since the last handoff
    acc = TranscriptAccumulator()
    feed(acc, InputTranscriptDelta("yes"), handoff("yes"))
    (second,) = feed(acc, handoff("yes", handoff_id="handoff_2"))
    assert isinstance(second, HandoffRequested)
    assert second.active_transcript == ()


def test_handoff_with_blank_input_adds_no_entry() -> None:
    acc = TranscriptAccumulator()
    (result,) = feed(acc, handoff("   "))
    assert isinstance(result, HandoffRequested)
    assert result.active_transcript == ()
    assert acc.entries == ()


def test_speech_started_starts_a_new_user_entry() -> None:
    acc = TranscriptAccumulator()
    feed(
        acc,
        InputTranscriptDelta("first"),
        InputAudioSpeechStarted(item_id="item_2"),
        InputTranscriptDelta("second"),
        InputTranscriptDelta(" turn"),
    )
    assert acc.entries == (
        TranscriptEntry("user", "first"),
        TranscriptEntry("user", "second turn"),
    )


def test_response_created_starts_a_new_assistant_entry() -> None:
    acc = TranscriptAccumulator()
    feed(
        acc,
        OutputTranscriptDelta("one"),
        ResponseCreated("resp_2"),
        OutputTranscriptDelta("two"),
    )
    assert acc.entries == (TranscriptEntry("assistant", "one"), TranscriptEntry("assistant", "two"))


def test_speech_started_does_not_split_assistant_text() -> None:
    acc = TranscriptAccumulator()
    feed(acc, OutputTranscriptDelta("a"), InputAudioSpeechStarted(), OutputTranscriptDelta("b"))
    assert acc.entries == (TranscriptEntry("assistant", "ab"),)


def test_done_replaces_the_text_of_the_open_same_role_entry() -> None:
    acc = TranscriptAccumulator()
    feed(
        acc,
        InputTranscriptDelta("delegat"),
        InputTranscriptDone("delegate now"),
        OutputTranscriptDelta("wor"),
        OutputTranscriptDone("working"),
    )
    assert acc.entries == (
        TranscriptEntry("user", "delegate now"),
        TranscriptEntry("assistant", "working"),
    )


def test_done_after_the_other_role_pushes_a_new_entry() -> None:
    acc = TranscriptAccumulator()
    feed(acc, InputTranscriptDelta("hi"), OutputTranscriptDelta("hello"), InputTranscriptDone("hi"))
    assert acc.entries == (
        TranscriptEntry("user", "hi"),
        TranscriptEntry("assistant", "hello"),
        TranscriptEntry("user", "hi"),
    )


def test_done_after_a_new_entry_flag_pushes_instead_of_replacing() -> None:
    acc = TranscriptAccumulator()
    feed(acc, OutputTranscriptDelta("one"), ResponseCreated(), OutputTranscriptDone("two"))
    assert acc.entries == (TranscriptEntry("assistant", "one"), TranscriptEntry("assistant", "two"))


def test_empty_deltas_and_done_texts_are_ignored() -> None:
    acc = TranscriptAccumulator()
    feed(
        acc,
        InputTranscriptDelta(""),
        OutputTranscriptDelta(""),
        InputTranscriptDone(""),
        OutputTranscriptDone(""),
    )
    assert acc.entries == ()


def test_empty_delta_does_not_consume_the_new_entry_flag() -> None:
    acc = TranscriptAccumulator()
    feed(
        acc,
        InputTranscriptDelta("a"),
        InputAudioSpeechStarted(),
        InputTranscriptDelta(""),
        InputTranscriptDelta("b"),
    )
    assert acc.entries == (TranscriptEntry("user", "a"), TranscriptEntry("user", "b"))


def test_unrelated_events_pass_through_as_the_same_object() -> None:
    acc = TranscriptAccumulator()
    events: list[ServerEvent] = [
        SessionUpdated("sess_1", "prompt"),
        ResponseDone("resp_1"),
        Error("boom"),
        InputTranscriptDelta("x"),
        ResponseCreated("resp_2"),
        InputAudioSpeechStarted(),
        OutputTranscriptDone("y"),
    ]
    for event in events:
        assert acc.observe(event) is event


def test_fresh_accumulator_has_no_entries() -> None:
    assert TranscriptAccumulator().entries == ()


# --- properties ---------------------------------------------------------------------------

_texts = st.text(alphabet="ab \n", max_size=4)
_events: st.SearchStrategy[ServerEvent] = st.one_of(
    st.builds(InputAudioSpeechStarted),
    st.builds(ResponseCreated),
    st.builds(InputTranscriptDelta, _texts),
    st.builds(OutputTranscriptDelta, _texts),
    st.builds(InputTranscriptDone, _texts),
    st.builds(OutputTranscriptDone, _texts),
    st.builds(HandoffRequested, st.just("h"), st.just("i"), _texts),
    st.builds(ResponseDone),
)


@given(st.lists(_events, max_size=40))
def test_observe_never_raises_and_keeps_roles_and_text_valid(events: list[ServerEvent]) -> None:
    acc = TranscriptAccumulator()
    for event in events:
        acc.observe(event)
    for entry in acc.entries:
        assert entry.role in ("user", "assistant")
        assert entry.text != ""


@given(st.lists(_events, max_size=40))
def test_handoffs_partition_the_transcript_without_duplication(events: list[ServerEvent]) -> None:
    acc = TranscriptAccumulator()
    carried: list[TranscriptEntry] = []
    for event in events:
        result = acc.observe(event)
        if isinstance(result, HandoffRequested):
            assert all(entry.text for entry in result.active_transcript)
            carried.extend(result.active_transcript)
            # at the moment of a handoff, the handoffs so far carry exactly everything
            assert tuple(carried) == acc.entries
        else:
            assert result is event
    # later events never rewrite what a handoff already carried
    assert acc.entries[: len(carried)] == tuple(carried)


@given(st.lists(_events, max_size=40))
def test_entries_are_the_same_whether_or_not_entries_is_read_in_between(
    events: list[ServerEvent],
) -> None:
    peeking, blind = TranscriptAccumulator(), TranscriptAccumulator()
    for event in events:
        peeking.observe(event)
        _ = peeking.entries
        blind.observe(event)
    assert peeking.entries == blind.entries
