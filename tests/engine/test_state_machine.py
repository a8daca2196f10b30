"""``ConversationState`` without trio: unit tests of each rule, and a hypothesis state machine
over server events and host calls checking the invariants of the module docstring."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from duplex.engine import (
    AudioFrame,
    AudioInterrupted,
    AudioOut,
    ConversationClosed,
    ConversationItemAdded,
    ConversationNotRunning,
    ConversationStarted,
    Error,
    HandoffNotActive,
    HandoffRequested,
    InputAudioSpeechStarted,
    InvalidAudioFrame,
    NoopRequested,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    OutputAudioDone,
    OutputTranscriptDelta,
    ParseFailure,
    ResponseCreated,
    ResponseDone,
    UnknownEvent,
    UnsupportedByDialect,
)
from duplex.engine._rule_sets import clean_text
from duplex.engine._state_machine import (
    CLOSING,
    ENDED,
    REPLACED,
    RUNNING,
    ConversationState,
    Step,
)
from duplex.protocol import (
    ClientEvent,
    ConversationItem,
    ProtocolVersion,
    SessionMode,
    encode_client_event,
    response_create_event,
    session_start_event,
)
from duplex.transports import TransportEnded

from ._engine_helpers import API_KEY

V2 = ProtocolVersion.V2
V1 = ProtocolVersion.V1
START = session_start_event(V2)


def running(version: ProtocolVersion = V2, *, audio_native: bool = False, **kw: Any) -> Any:
    state = ConversationState(version=version, secrets=(API_KEY,), **kw)
    step = state.connected(
        session_id="s", transport="memory", audio_native=audio_native, start_event=START
    )
    assert step.send == [START]
    assert step.forward == [ConversationStarted("s", version.value, "memory")]
    return state


def sent_types(step: Step, version: ProtocolVersion = V2) -> list[str]:
    import json

    return [json.loads(encode_client_event(e, version))["type"] for e in step.send]


def audio(item: str, ms: int = 100) -> AudioOut:
    return AudioOut(AudioFrame(b"\x00\x00" * (24 * ms), 24000, 1), item, "resp_1")


# ---- lifecycle --------------------------------------------------------------------------


def test_close_ends_once_with_requested_and_then_nothing_passes() -> None:
    state = running()
    step = state.close()
    assert step.end == ConversationClosed("requested")
    assert state.status == CLOSING
    assert state.close().end is None
    assert state.receive([ResponseCreated("r")]).forward == []
    with pytest.raises(ConversationNotRunning):
        state.send_text("hi", respond=True)


def test_replace_emits_nothing_and_says_whether_it_was_running() -> None:
    state = running()
    assert state.replace() is True
    assert state.status == REPLACED
    assert state.close().end is None
    assert state.replace() is False
    connecting = ConversationState(version=V2)
    assert connecting.replace() is False
    assert connecting.status == REPLACED
    late = connecting.connected(
        session_id="s", transport="memory", audio_native=False, start_event=START
    )
    assert late.forward == []
    assert late.send == []


@pytest.mark.parametrize("code", [1000, 1001, 1011, None])
def test_clean_peer_close_is_transport_closed_with_int_code_and_no_error(code: Any) -> None:
    state = running()
    step = state.receive([], TransportEnded("closed", code, "server going away"))
    assert step.end == ConversationClosed("transport_closed", code, None)
    assert step.end is not None
    assert code is None or type(step.end.code) is int
    assert state.status == ENDED


def test_close_code_is_a_plain_int_even_when_the_transport_gives_an_int_enum() -> None:
    from enum import IntEnum

    class CloseReason(IntEnum):
        NORMAL = 1000
        APP = 4001

    state = running()
    step = state.receive([], TransportEnded("closed", CloseReason.NORMAL, None))
    assert step.end is not None
    assert type(step.end.code) is int
    assert step.end.code == 1000
    state = running()
    step = state.receive([], TransportEnded("closed", CloseReason.APP, "bye"))
    assert step.end is not None
    assert type(step.end.code) is int
    assert step.end.reason == "error"
    assert step.end.error == "bye"


def test_application_close_code_and_drop_are_errors_with_an_error_event() -> None:
    state = running()
    step = state.receive([], TransportEnded("error", 1006, "connection lost"))
    assert step.end == ConversationClosed("error", 1006, "connection lost")
    assert step.forward == [Error("transport failed: connection lost", None, None, True)]


def test_fatal_error_ends_and_later_events_of_the_batch_are_not_forwarded() -> None:
    state = running()
    fatal = Error("expired", "session_expired", None, True)
    step = state.receive([ResponseCreated("r1"), fatal, ResponseDone("r1", "completed")])
    assert step.forward == [ResponseCreated("r1"), fatal]
    assert step.end == ConversationClosed("error", None, "expired")
    assert step.send == []


def test_race_errors_do_not_end_the_conversation() -> None:
    state = running()
    step = state.receive([Error("busy", "conversation_already_has_active_response")])
    assert step.end is None
    assert state.running


def test_fail_ends_with_error_once() -> None:
    state = running()
    step = state.fail("internal error: boom")
    assert step.end == ConversationClosed("error", None, "internal error: boom")
    assert state.fail("again").end is None


# ---- responses, barge-in, handoffs ------------------------------------------------------


def test_second_response_request_waits_for_the_active_one() -> None:
    state = running()
    assert sent_types(state.send_text("a", respond=True)) == [
        "conversation.item.create",
        "response.create",
    ]
    assert sent_types(state.send_text("b", respond=True)) == ["conversation.item.create"]
    step = state.receive([ResponseCreated("r1"), ResponseDone("r1", "completed")])
    assert step.send == [response_create_event()]


def test_v1_text_never_requests_a_response_and_transcription_refuses_text() -> None:
    state = running(V1)
    assert sent_types(state.send_text("a", respond=True), V1) == ["conversation.item.create"]
    state = running(mode=SessionMode.TRANSCRIPTION)
    with pytest.raises(UnsupportedByDialect):
        state.send_text("a", respond=True)


def test_barge_in_truncates_at_what_the_host_took_on_websocket_only() -> None:
    state = running()
    state.receive([ResponseCreated("resp_1"), audio("item_1"), audio("item_1")])
    state.audio_delivered(audio("item_1"))
    step = state.receive([InputAudioSpeechStarted("in_1", 0)])
    assert sent_types(step) == ["conversation.item.truncate"]
    assert step.send[0].audio_end_ms == 100
    # Later audio of the cut item is stale.
    assert state.receive([audio("item_1")]).forward == []
    native = running(audio_native=True)
    native.receive([ResponseCreated("resp_1"), audio("item_1")])
    assert native.receive([InputAudioSpeechStarted("in_1", 0)]).send == []


def _heard_reply(native: bool, *, stopped: bool) -> Any:
    """A 200 ms reply the host took whole, its response done; on the track (``native``)
    followed by 60 ms of quiet, with or without the server's ``stopped``."""
    loud = AudioFrame(b"\x40\x1f" * 480)  # 20 ms at 8000
    state = running(audio_native=native)
    item = ConversationItemAdded(ConversationItem(type="message", id="item_1", role="assistant"))
    out: list[Any] = []
    if native:
        out += state.receive(
            [ResponseCreated("resp_1"), item, OutputAudioBufferStarted("resp_1")]
        ).forward
        out += state.receive([AudioOut(loud) for _ in range(10)]).forward
        end: list[Any] = [OutputAudioDone("item_1", "resp_1"), ResponseDone("resp_1", "completed")]
        if stopped:
            end.append(OutputAudioBufferStopped("resp_1"))
        out += state.receive(end).forward
        out += state.receive([AudioOut(AudioFrame(bytes(960))) for _ in range(3)]).forward
    else:
        tagged = [AudioOut(loud, "item_1", "resp_1") for _ in range(10)]
        done = [OutputAudioDone("item_1", "resp_1"), ResponseDone("resp_1", "completed")]
        out += state.receive([ResponseCreated("resp_1"), item, *tagged, *done]).forward
    for event in out:
        if isinstance(event, AudioOut):
            state.audio_delivered(event)
    return state


@pytest.mark.parametrize(
    ("native", "stopped"),
    [(False, False), (True, True), (True, False)],
    ids=["websocket", "track-stopped", "track-no-stopped"],
)
def test_speech_after_a_fully_heard_finished_reply_cuts_nothing(
    native: bool, stopped: bool
) -> None:
    """Regression (review): on the track the reply counted as playing until its end was
    detected, so speech in that quiet window gave ``AudioInterrupted`` at the item's full
    length; a WebSocket host saw nothing."""
    state = _heard_reply(native, stopped=stopped)
    step = state.receive([InputAudioSpeechStarted("in_1", 0)])
    assert [e for e in step.forward if isinstance(e, AudioInterrupted)] == []


def test_speech_while_the_track_still_sounds_after_response_done_cuts_it() -> None:
    loud = AudioFrame(b"\x40\x1f" * 480)
    state = running(audio_native=True)
    item = ConversationItemAdded(ConversationItem(type="message", id="item_1", role="assistant"))
    state.receive([ResponseCreated("resp_1"), item, OutputAudioBufferStarted("resp_1")])
    taken = state.receive([AudioOut(loud) for _ in range(5)]).forward
    # The server finished generating long before the track played it out.
    state.receive([ResponseDone("resp_1", "completed")])
    taken += state.receive([AudioOut(loud)]).forward
    for event in taken:
        if isinstance(event, AudioOut):
            state.audio_delivered(event)
    step = state.receive([InputAudioSpeechStarted("in_1", 0)])
    assert [e for e in step.forward if isinstance(e, AudioInterrupted)] == [
        AudioInterrupted("item_1", 120)
    ]


def test_each_handoff_is_answerable_until_its_final_output_and_acted_on_once() -> None:
    state = running()
    request = HandoffRequested("call_1", "item_1", "do it")
    assert state.receive([request]).forward[0].handoff_id == "call_1"
    assert state.receive([request]).forward == []  # a duplicate call is acted on once
    assert sent_types(state.handoff_output("call_1", "working", final=False))
    step = state.handoff_output("call_1", "done", final=True)
    assert "response.create" in sent_types(step)
    with pytest.raises(HandoffNotActive):
        state.handoff_output("call_1", "again", final=True)


def test_v2_second_handoff_steers_and_is_not_answerable() -> None:
    state = running()
    state.receive([HandoffRequested("call_1", "item_1", "first")])
    step = state.receive([HandoffRequested("call_2", "item_2", "second")])
    assert sent_types(step) == ["conversation.item.create", "response.create"]
    with pytest.raises(HandoffNotActive):
        state.handoff_output("call_2", "x", final=True)


def test_noop_is_answered_once_without_a_response() -> None:
    state = running()
    step = state.receive([NoopRequested("call_9", "item_9"), NoopRequested("call_9", "item_9")])
    assert sent_types(step) == ["conversation.item.create"]
    assert len(step.forward) == 1


def test_unknown_events_are_counted_and_forwarded_only_when_asked() -> None:
    unknown = UnknownEvent("x.y", {"type": "x.y"})
    assert running().receive([unknown]).forward == []
    assert running(forward_unknown_events=True).receive([unknown]).forward == [unknown]


@pytest.mark.parametrize(("rate", "channels"), [(0, 1), (-8000, 1), (24000, 0), (16000, -2)])
def test_bad_audio_shape_is_refused_as_a_value_error(rate: int, channels: int) -> None:
    state = running()
    with pytest.raises(InvalidAudioFrame) as info:
        state.check_audio(AudioFrame(b"\x00\x00", rate, channels))
    assert isinstance(info.value, ValueError)
    assert state.running


# ---- message hygiene --------------------------------------------------------------------


def test_clean_text_escapes_control_characters_and_redacts_the_key() -> None:
    text = f"bad\r\nINFO forged\x1b[31m\x00 key={API_KEY}"
    cleaned = clean_text(text, [API_KEY])
    assert "\n" not in cleaned
    assert "\r" not in cleaned
    assert "\x1b" not in cleaned
    assert "\x00" not in cleaned
    assert API_KEY not in cleaned
    assert "\\r\\n" in cleaned
    assert "[redacted]" in cleaned
    assert clean_text("WebSocket connect", ["k"]) == "WebSocket connect"


def test_key_echoed_by_the_server_is_redacted_everywhere_the_engine_builds_text() -> None:
    state = running()
    failure = ParseFailure(f"bad json\nkey {API_KEY}", f"{{{API_KEY}")
    step = state.receive([failure, Error(f"invalid key {API_KEY}", "invalid_api_key", None, True)])
    assert API_KEY not in repr(step.forward)
    assert API_KEY not in repr(step.end)
    state = running()
    refused = Error("bad field", "invalid_value", None, False, None, f"session.x\n{API_KEY}")
    forwarded = state.receive([refused]).forward
    assert API_KEY not in repr(forwarded)
    assert "\n" not in (forwarded[0].param or "")
    state = running()
    step = state.receive([], TransportEnded("error", 1006, f"reset\n{API_KEY}"))
    assert API_KEY not in repr(step.forward)
    assert API_KEY not in repr(step.end)
    assert step.end is not None
    assert "\n" not in (step.end.error or "")


# ---- the invariants under any sequence -------------------------------------------------


def _server_events() -> st.SearchStrategy[Any]:
    ids = st.sampled_from(["call_1", "call_2", "call_3"])
    items = st.sampled_from(["item_1", "item_2"])
    return st.one_of(
        st.builds(ResponseCreated, st.sampled_from(["r1", "r2"])),
        st.builds(ResponseDone, st.sampled_from(["r1", "r2"]), st.just("completed")),
        st.builds(InputAudioSpeechStarted, st.just("in"), st.just(0)),
        st.builds(HandoffRequested, ids, items, st.just("x")),
        st.builds(NoopRequested, ids, items),
        st.builds(OutputTranscriptDelta, st.just("hi"), items, st.none()),
        st.builds(audio, items),
        st.builds(Error, st.just("race"), st.just("conversation_already_has_active_response")),
        st.just(Error("fatal", "session_expired", None, True)),
        st.just(UnknownEvent("x", {"type": "x"})),
    )


def _ended() -> st.SearchStrategy[TransportEnded]:
    return st.builds(
        TransportEnded,
        st.sampled_from(["closed", "error"]),
        st.sampled_from([None, 1000, 1006, 4000]),
        st.sampled_from([None, "gone"]),
    )


class ConversationRules(RuleBasedStateMachine):
    """Drive one ``ConversationState`` like the engine does and check, after every step:
    exactly one ``ConversationClosed`` per started conversation (none if replaced), nothing
    forwarded or sent after the end, at most one ``response.create`` in flight, and each
    call id answered at most once."""

    def __init__(self) -> None:
        super().__init__()
        self.state = running()
        self.ends: list[ConversationClosed] = []
        self.replaced = False
        self.after_end: list[Any] = []
        self.creates_in_flight = 0
        self.answers: dict[str, int] = {}
        self.delivered: list[AudioOut] = []

    def _apply(self, step: Step) -> None:
        if self.ends or self.replaced:
            self.after_end.extend([*step.forward, *step.send])
        for event in step.send:
            if event == response_create_event():
                self.creates_in_flight += 1
            call_id = getattr(event, "call_id", None) or _output_call_id(event)
            if call_id is not None:
                self.answers[call_id] = self.answers.get(call_id, 0) + 1
        for forwarded in step.forward:
            if isinstance(forwarded, ResponseDone):
                self.creates_in_flight = max(0, self.creates_in_flight - 1)
            if isinstance(forwarded, AudioOut):
                self.delivered.append(forwarded)
        if step.end is not None:
            self.ends.append(step.end)

    @rule(events=st.lists(_server_events(), max_size=4))
    def server_batch(self, events: list[Any]) -> None:
        self._apply(self.state.receive(events))

    @rule(ended=_ended())
    def transport_ends(self, ended: TransportEnded) -> None:
        self._apply(self.state.receive([], ended))

    @rule(respond=st.booleans())
    def send_text(self, respond: bool) -> None:
        try:
            self._apply(self.state.send_text("hi", respond=respond))
        except ConversationNotRunning:
            assert not self.state.running

    @rule(call_id=st.sampled_from(["call_1", "call_2", "call_3"]), final=st.booleans())
    def handoff_output(self, call_id: str, final: bool) -> None:
        try:
            self._apply(self.state.handoff_output(call_id, "out", final=final))
        except HandoffNotActive:
            pass
        except ConversationNotRunning:
            assert not self.state.running

    @precondition(lambda self: bool(self.delivered))
    @rule()
    def host_takes_audio(self) -> None:
        self.state.audio_delivered(self.delivered.pop(0))

    @rule()
    def close(self) -> None:
        self._apply(self.state.close())

    @rule()
    def replace(self) -> None:
        was_running = self.state.replace()
        self.replaced = self.replaced or was_running

    @rule()
    def fail(self) -> None:
        self._apply(self.state.fail("internal error"))

    @invariant()
    def one_end_at_most_and_none_after_replace(self) -> None:
        assert len(self.ends) <= 1
        if self.replaced:
            assert self.ends == []
        if self.state.status in (ENDED, CLOSING):
            assert len(self.ends) == 1
        if self.state.status == RUNNING:
            assert self.ends == []

    @invariant()
    def nothing_after_the_end(self) -> None:
        assert self.after_end == []

    @invariant()
    def one_response_create_in_flight(self) -> None:
        assert self.creates_in_flight <= 1 or not self.state.running

    @invariant()
    def each_call_answered_once(self) -> None:
        assert all(n == 1 for n in self.answers.values()), self.answers


def _output_call_id(event: ClientEvent) -> str | None:
    # Steering acks, no-op replies and final handoff outputs are function_call_output items.
    item = getattr(event, "item", None)
    if item is not None and getattr(item, "type", None) == "function_call_output":
        return getattr(item, "call_id", None)
    return None


ConversationRules.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_conversation_state_invariants = ConversationRules.TestCase
