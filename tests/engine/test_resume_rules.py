"""The reconnect driver's pure rules (engine/_resume.py): which endings resume, what a new
session is sent (and which unsent host frames follow it), how the audio held while
reconnecting is trimmed, and how the engine's own items get ids."""

from __future__ import annotations

import json

import attrs
import pytest

from duplex.engine import AudioFrame, ConversationClosed, HistoryItem, ReconnectPolicy
from duplex.engine._history import ConversationHistory
from duplex.engine._resume import (
    Unsent,
    classify,
    replay_events,
    stamp_items,
    trim_backlog,
)
from duplex.protocol import (
    ClientEvent,
    ConversationItemCreate,
    Error,
    ProtocolVersion,
    encode_client_event,
    mcp_approval_event,
    response_create_event,
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


def test_replay_sends_items_then_the_note_but_what_the_unsent_frames_carry() -> None:
    history = ConversationHistory()
    history.record_all(
        [
            HistoryItem.user("hi", id="u1"),
            HistoryItem.assistant("", id="a1"),  # a cut answer with no transcript
            HistoryItem.tool_call("c1", "f", id="f1"),
            HistoryItem.user("queued, never sent", id="u2"),
        ]
    )
    events, replayed = replay_events(history, POLICY, ProtocolVersion.V2, leave_out={"u2"})
    assert replayed == 2
    items = [e.item for e in events if isinstance(e, ConversationItemCreate)]
    assert [(i.id, i.type) for i in items[:2]] == [("u1", "message"), ("f1", "function_call")]
    assert items[2].role == "system"
    assert items[2].content is not None
    assert items[2].content[0].text == POLICY.reanchor_note
    assert len(events) == 3  # the response after a resume is the state machine's
    quiet = ReconnectPolicy(reanchor_note=None)
    events, _ = replay_events(history, quiet, ProtocolVersion.V2)
    assert len(events) == 3
    assert replay_events(history, POLICY, ProtocolVersion.V1) == ([], 0)


def test_the_replay_window_counts_only_the_items_it_sends() -> None:
    history = ConversationHistory()
    history.record_all([HistoryItem.user(name, id=name) for name in ("a", "b", "c", "d")])
    policy = ReconnectPolicy(replay_items=2, reanchor_note=None)
    events, _ = replay_events(history, policy, ProtocolVersion.V2, leave_out={"c", "d"})
    assert [e.item.id for e in events if isinstance(e, ConversationItemCreate)] == ["a", "b"]


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


def _frame(event: ClientEvent) -> str:
    return encode_client_event(event, ProtocolVersion.V2)


def test_unsent_frames_are_carried_as_sent_and_their_items_left_to_them() -> None:
    image = json.dumps(
        {
            "type": "conversation.item.create",
            "item": {"id": "img_1", "content": [{"type": "input_image"}]},
        }
    )
    text = _frame(text_item_event(ProtocolVersion.V2, "queued"))
    unsent = Unsent.of(
        [
            image,
            text,
            '{"type":"input_audio_buffer.append","audio":"AAAA"}',
            "not json at all",  # a raw frame is carried whatever it holds
        ]
    )
    assert unsent.created == {"img_1"}  # the text item has no id yet here: v1-shaped
    assert unsent.carried([]) == list(unsent.frames)
    assert unsent.carried(None) == list(unsent.frames)
    assert not unsent.requests_response


def test_a_carried_frame_naming_an_item_the_new_session_lacks_is_dropped() -> None:
    replayed = text_item_event(ProtocolVersion.V2, "kept")
    assert isinstance(replayed, ConversationItemCreate)
    replayed = attrs.evolve(replayed, item=attrs.evolve(replayed.item, id="kept_1"))
    unsent = Unsent.of(
        [
            '{"type":"conversation.item.delete","item_id":"forgotten"}',
            '{"type":"conversation.item.delete","item_id":"kept_1"}',
            '{"type":"conversation.item.create","item":{"id":"new_1"}}',
            '{"type":"conversation.item.retrieve","item_id":"new_1"}',
        ]
    )
    assert unsent.carried([replayed]) == list(unsent.frames[1:])
    # v1: the server keeps the items, so nothing is known to be missing.
    assert unsent.carried(None) == list(unsent.frames)


def test_a_carried_answer_to_an_mcp_approval_is_dropped() -> None:
    # Regression (review): the new session never holds the request (MCP items are not
    # replayed), so the carried answer could only come back as an error.
    answer = _frame(mcp_approval_event("mcpr_1", True, item_id="dx_1"))
    quoting = _frame(text_item_event(ProtocolVersion.V2, 'about "mcp_approval_response"'))
    unsent = Unsent.of([answer, quoting, _frame(response_create_event())])
    assert unsent.carried([]) == list(unsent.frames[1:])


def test_only_an_in_band_response_request_holds_the_slot() -> None:
    in_band = _frame(response_create_event())
    with_options = _frame(response_create_event(instructions="be brief"))
    out_of_band = _frame(response_create_event(conversation="none"))
    quoted = _frame(text_item_event(ProtocolVersion.V2, 'say "response.create"'))
    assert Unsent.of([quoted, in_band]).requests_response
    assert Unsent.of([with_options]).requests_response
    assert not Unsent.of([out_of_band, quoted]).requests_response
    assert not Unsent.of(['{"type":"response.create"']).requests_response  # cut short
    assert not Unsent.of([]).requests_response
