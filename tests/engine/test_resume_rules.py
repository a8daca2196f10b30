"""The reconnect driver's pure rules (engine/_resume.py): which endings resume, what a new
session is sent, how the audio held while reconnecting is trimmed, and how the engine's
own items get ids."""

from __future__ import annotations

import pytest

from duplex.engine import AudioFrame, ConversationClosed, HistoryItem, ReconnectPolicy
from duplex.engine._history import ConversationHistory
from duplex.engine._resume import classify, replay_events, stamp_items, trim_backlog
from duplex.protocol import (
    ClientEvent,
    ConversationItemCreate,
    Error,
    ProtocolVersion,
    ResponseCreate,
    text_item_event,
    tool_output_event,
)

POLICY = ReconnectPolicy()


@pytest.mark.parametrize(
    ("closed", "fatal", "reason"),
    [
        (ConversationClosed("transport_closed", 1011), None, "connection closed with code 1011"),
        (
            ConversationClosed("error", 1006, "reset"),
            Error("transport failed", None, None, True),
            "reset",
        ),
        (
            ConversationClosed("error", None, "expired"),
            Error("x", "session_expired", None, True),
            "session_expired",
        ),
    ],
)
def test_resumable_endings_drop_the_fatal_error_and_say_why(
    closed: ConversationClosed, fatal: Error | None, reason: str
) -> None:
    forward: list[object] = ["kept"] + ([fatal] if fatal else [])
    ending = classify(POLICY, forward, closed)
    assert ending is not None
    assert ending.reason == reason
    assert forward == ["kept"]
    assert ending.closed.reason == "error"


@pytest.mark.parametrize(
    ("closed", "fatal"),
    [
        (ConversationClosed("requested"), None),
        (ConversationClosed("transport_closed", 1000), None),
        (ConversationClosed("error", 4000, "policy"), None),
        (ConversationClosed("error", None, "bad key"), Error("k", "invalid_api_key", None, True)),
    ],
)
def test_other_endings_end_the_conversation(
    closed: ConversationClosed, fatal: Error | None
) -> None:
    forward: list[object] = [fatal] if fatal else []
    assert classify(POLICY, forward, closed) is None
    assert forward == ([fatal] if fatal else [])
    assert classify(ReconnectPolicy.disabled(), [], ConversationClosed("error", 1011)) is None


def test_replay_sends_items_then_the_note_then_a_response_when_one_was_cut() -> None:
    history = ConversationHistory()
    history.record_all(
        [
            HistoryItem.user("hi", id="u1"),
            HistoryItem.assistant("", id="a1"),  # a cut answer with no transcript
            HistoryItem.tool_call("c1", "f", id="f1"),
        ]
    )
    events, replayed = replay_events(history, POLICY, ProtocolVersion.V2, respond=True)
    assert replayed == 2
    items = [e.item for e in events if isinstance(e, ConversationItemCreate)]
    assert [(i.id, i.type) for i in items[:2]] == [("u1", "message"), ("f1", "function_call")]
    assert items[2].role == "system"
    assert items[2].content is not None
    assert items[2].content[0].text == POLICY.reanchor_note
    assert isinstance(events[-1], ResponseCreate)
    quiet = ReconnectPolicy(reanchor_note=None)
    events, _ = replay_events(history, quiet, ProtocolVersion.V2, respond=False)
    assert len(events) == 2
    assert replay_events(history, POLICY, ProtocolVersion.V1, respond=True) == ([], 0)


def test_backlog_keeps_the_newest_audio_within_the_budget() -> None:
    frames = [AudioFrame(bytes([i, 0]) * 480, 24000, 1) for i in range(10)]  # 20 ms each
    kept, dropped = trim_backlog(frames, 100)
    assert kept == frames[5:]
    assert dropped == 5
    assert trim_backlog(frames, 0) == ([], 10)


def test_items_the_engine_sends_get_ids_and_enter_the_history() -> None:
    history = ConversationHistory()
    events: list[ClientEvent] = [
        text_item_event(ProtocolVersion.V2, "hello"),
        tool_output_event("c1", "42"),
    ]
    stamp_items(events, history, ProtocolVersion.V2)
    ids = [e.item.id for e in events if isinstance(e, ConversationItemCreate)]
    assert all(ids)
    assert [(i.kind, i.text, i.output) for i in history.items()] == [
        ("message", "hello", None),
        ("function_call_output", "", "42"),
    ]
    untouched: list[ClientEvent] = [text_item_event(ProtocolVersion.V1, "hello")]
    stamp_items(untouched, ConversationHistory(), ProtocolVersion.V1)
    assert len(history) == 2
