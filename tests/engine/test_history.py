"""The history ledger: server order, transcripts of audio turns, truncation, deletion,
bounded size, and the replay rules of a resumed conversation."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from duplex.engine._history import ConversationHistory, HistoryItem
from duplex.protocol import (
    ContentPart,
    ConversationItem,
    ConversationItemAdded,
    ConversationItemDeleted,
    ConversationItemTruncated,
    HandoffRequested,
    InputTranscriptDone,
    OutputTranscriptDone,
    ToolCallRequested,
)


def added(item_id: str, role: str, *parts: ContentPart) -> ConversationItemAdded:
    return ConversationItemAdded(
        ConversationItem(type="message", id=item_id, role=role, content=parts)
    )


def spoken_turns(history: ConversationHistory) -> None:
    history.apply(added("u1", "user", ContentPart(type="input_audio")))
    history.apply(added("a1", "assistant", ContentPart(type="output_audio")))
    history.apply(InputTranscriptDone("what time is it", "u1"))
    history.apply(OutputTranscriptDone("it is noon", "a1", "r1"))


def test_audio_turns_are_known_by_their_transcripts_in_server_order() -> None:
    history = ConversationHistory()
    spoken_turns(history)
    assert [(i.id, i.role, i.text, i.audio) for i in history.items()] == [
        ("u1", "user", "what time is it", True),
        ("a1", "assistant", "it is noon", True),
    ]


def test_an_echo_of_a_sent_item_keeps_its_text_and_place() -> None:
    history = ConversationHistory()
    history.record(HistoryItem.user("hello", id="c1"))
    history.record(HistoryItem.assistant("hi there", id="c2"))
    history.apply(added("c1", "user"))  # echo without content
    assert [i.text for i in history.items()] == ["hello", "hi there"]


def test_deleted_items_are_forgotten_and_truncated_ones_replay_without_text() -> None:
    history = ConversationHistory()
    spoken_turns(history)
    history.apply(ConversationItemTruncated("a1", 0, 300))
    replay, skipped = history.replay(limit=100)
    assert [i.id for i in replay] == ["u1"]
    assert skipped == 1
    history.apply(ConversationItemDeleted("u1"))
    assert [i.id for i in history.items()] == ["a1"]


def test_pending_calls_are_replayed_and_stay_answerable() -> None:
    history = ConversationHistory(handoff_tool_name="codex")
    history.record_call("i1", "call_1", "get_time", "{}")
    history.record(HistoryItem.tool_output("call_1", "12:00", id="o1"))
    history.apply(HandoffRequested("call_2", "i2", "fix the build"))
    assert [c.call_id for c in history.pending_calls()] == ["call_2"]
    replay, _ = history.replay(limit=100)
    assert [(i.kind, i.call_id) for i in replay] == [
        ("function_call", "call_1"),
        ("function_call_output", "call_1"),
        ("function_call", "call_2"),
    ]
    assert replay[2].name == "codex"
    assert replay[2].arguments == '{"prompt": "fix the build"}'


def test_replay_limit_never_keeps_an_output_without_its_call() -> None:
    history = ConversationHistory()
    history.record_call("i1", "call_1", "f", "{}")
    history.record(HistoryItem.tool_output("call_1", "x", id="o1"))
    history.record(HistoryItem.user("next", id="u2"))
    replay, _ = history.replay(limit=2)
    assert [i.id for i in replay] == ["u2"]


def test_the_ledger_is_bounded() -> None:
    history = ConversationHistory(max_items=3)
    for n in range(5):
        history.record(HistoryItem.user(f"m{n}", id=f"u{n}"))
    assert [i.id for i in history.items()] == ["u2", "u3", "u4"]
    assert history.forgotten == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "message", "role": "tool"},
        {"kind": "function_call", "name": "f"},
        {"kind": "function_call", "call_id": "c"},
        {"kind": "function_call_output"},
    ],
)
def test_malformed_history_items_are_refused(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="needs"):
        HistoryItem(**kwargs)  # type: ignore[arg-type]


ids = st.sampled_from(["a", "b", "c", "d", "e"])
events = st.one_of(
    st.builds(lambda i, r: added(i, r), ids, st.sampled_from(["user", "assistant"])),
    st.builds(lambda t, i: InputTranscriptDone(t, i), st.text(max_size=5), ids),
    st.builds(lambda t, i: OutputTranscriptDone(t, i, "r"), st.text(max_size=5), ids),
    st.builds(lambda i: ConversationItemTruncated(i, 0, 10), ids),
    st.builds(ConversationItemDeleted, ids),
    st.builds(lambda c, i: HandoffRequested(c, i, "p"), st.sampled_from(["x", "y"]), ids),
)


@given(st.lists(events, max_size=40), st.integers(min_value=0, max_value=6))
def test_any_event_sequence_keeps_ids_unique_bounded_and_replay_consistent(
    sequence: list[object], limit: int
) -> None:
    history = ConversationHistory(max_items=4, handoff_tool_name="codex")
    for event in sequence:
        history.apply(event)  # type: ignore[arg-type]
    items = history.items()
    assert len({i.id for i in items}) == len(items) <= 4
    replay, _ = history.replay(limit)
    assert len(replay) <= limit
    calls = {i.call_id for i in replay if i.kind == "function_call"}
    assert all(i.call_id in calls for i in replay if i.kind == "function_call_output")
    assert all(i.text for i in replay if i.kind == "message")


def test_a_tool_call_event_records_the_call_with_its_final_arguments() -> None:
    history = ConversationHistory()
    history.apply(
        ConversationItemAdded(
            ConversationItem(type="function_call", id="i1", call_id="c1", name="f", arguments="")
        )
    )
    history.apply(ToolCallRequested("c1", "f", '{"x": 1}', "i1"))
    assert history.items() == (HistoryItem.tool_call("c1", "f", '{"x": 1}', id="i1"),)
    history.forget("i1")
    assert history.items() == ()
