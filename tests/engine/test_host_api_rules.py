"""The issue-13 host API rules without trio: tool-call bookkeeping and the parallel-call rule,
response tracking by id (out-of-band responses), interrupt, deferred responses with options
(and across a resume), session settings, usage and latency."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import rule

from duplex.engine import (
    AudioFrame,
    AudioInterrupted,
    AudioOut,
    ConversationNotRunning,
    ConversationStarted,
    ConversationStartError,
    EngineConfig,
    FunctionTool,
    InputAudioSpeechStopped,
    InputTranscriptDone,
    InvalidRequest,
    McpApprovalRequested,
    OutputTranscriptDelta,
    ResponseCancelled,
    ResponseCreated,
    ResponseDone,
    ServerVad,
    SessionConfig,
    ToolCallNotActive,
    ToolCallRequested,
    UnsupportedByDialect,
)
from duplex.engine._session import SessionSettings
from duplex.engine._state_machine import ConversationState, Step
from duplex.engine._tools import ToolCalls
from duplex.engine._usage import LatencyMeter, UsageMeter
from duplex.protocol import (
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    ProtocolVersion,
    SessionMode,
    Usage,
    encode_client_event,
)

from ._engine_helpers import API_KEY
from .test_state_machine import ConversationRules

V2 = ProtocolVersion.V2
V1 = ProtocolVersion.V1
TOOLS = (FunctionTool("get_time", "the time", {"type": "object"}), FunctionTool("get_weather"))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def running(
    version: ProtocolVersion = V2,
    *,
    audio_native: bool = False,
    config: EngineConfig | None = None,
    clock: Clock | None = None,
    mode: SessionMode = SessionMode.CONVERSATIONAL,
) -> ConversationState:
    config = config or EngineConfig(api_key=API_KEY, version=version, mode=mode)
    settings = SessionSettings(config, "prompt")
    state = ConversationState(
        version=version,
        mode=mode,
        secrets=(API_KEY,),
        session=settings,
        clock=clock or Clock(),
    )
    step = state.connected(
        session_id="s",
        transport="memory",
        audio_native=audio_native,
        start_event=settings.start_event(),
    )
    assert isinstance(step.forward[0], ConversationStarted)
    return state


def wire(step: Step, version: ProtocolVersion = V2) -> list[dict[str, Any]]:
    return [json.loads(encode_client_event(e, version)) for e in step.send]


def types(step: Step) -> list[str]:
    return [e["type"] for e in wire(step)]


def call(call_id: str, name: str = "get_time", response_id: str | None = None) -> Any:
    return ToolCallRequested(call_id, name, "{}", f"item_{call_id}", response_id)


def audio(item: str, ms: int = 100, response: str = "resp_1") -> AudioOut:
    return AudioOut(AudioFrame(b"\x00\x00" * (24 * ms), 24000, 1), item, response)


# ---- ToolCalls: the parallel-call rule ----------------------------------------------------


def test_parallel_pair_answered_before_the_response_finished_responds_once_at_done() -> None:
    calls = ToolCalls()
    calls.requested("c1", "r1")
    calls.requested("c2", "r1")
    assert calls.answered("c1", respond=True) is False
    assert calls.answered("c2", respond=True) is False  # r1 may still add calls
    assert calls.response_finished("r1") is True
    assert calls.response_finished("r1") is False  # once


def test_parallel_pair_answered_after_the_response_finished_responds_at_the_last_answer() -> None:
    calls = ToolCalls()
    calls.requested("c1", "r1")
    calls.requested("c2", "r1")
    assert calls.response_finished("r1") is False
    assert calls.answered("c2", respond=True) is False
    assert calls.answered("c1", respond=False) is True  # one answer asked for it


def test_calls_answered_without_respond_ask_for_no_response() -> None:
    calls = ToolCalls()
    calls.requested("c1", "r1")
    calls.response_finished("r1")
    assert calls.answered("c1", respond=False) is False
    assert calls.open_calls() == 0


def test_unknown_or_already_answered_call_is_not_active() -> None:
    calls = ToolCalls()
    with pytest.raises(ToolCallNotActive, match="c9"):
        calls.answered("c9", respond=True)
    calls.requested("c1", None)
    assert calls.answered("c1", respond=True) is True  # no response to wait for
    with pytest.raises(ToolCallNotActive):
        calls.answered("c1", respond=True)


# ---- ConversationState: tool calls ---------------------------------------------------------


def test_tool_call_is_forwarded_once_with_the_active_response_id() -> None:
    state = running()
    state.receive([ResponseCreated("r1")])
    step = state.receive([call("c1"), call("c1")])
    assert step.forward == [call("c1", response_id="r1")]
    assert state.counters.duplicate_calls == 1


def test_tool_output_of_a_parallel_pair_sends_one_response_create() -> None:
    state = running()
    state.receive([ResponseCreated("r1"), call("c1"), call("c2", "get_weather")])
    first = state.tool_output("c1", "12:00", respond=True)
    assert types(first) == ["conversation.item.create"]
    assert wire(first)[0]["item"] == {
        "type": "function_call_output",
        "call_id": "c1",
        "output": "12:00",
    }
    second = state.tool_output("c2", "sunny", respond=True)
    assert types(second) == ["conversation.item.create"]
    done = state.receive([ResponseDone("r1", "completed")])
    assert types(done) == ["response.create"]
    with pytest.raises(ToolCallNotActive):
        state.tool_output("c1", "again", respond=True)


def test_tool_output_after_done_responds_through_the_single_response_queue() -> None:
    state = running()
    state.receive([ResponseCreated("r1"), call("c1"), ResponseDone("r1", "completed")])
    state.receive([ResponseCreated("r2")])  # the server started another response (VAD)
    step = state.tool_output("c1", "12:00", respond=True)
    assert types(step) == ["conversation.item.create"]  # deferred behind r2
    assert types(state.receive([ResponseDone("r2", "completed")])) == ["response.create"]


def test_tools_need_v2_and_a_conversational_session() -> None:
    with pytest.raises(ConversationStartError, match="v2"):
        SessionSettings(
            EngineConfig(api_key=API_KEY, version="v1", tools=TOOLS), None
        ).start_event()
    state = running(V1)
    with pytest.raises(UnsupportedByDialect, match="v2"):
        state.tool_output("c1", "x", respond=True)
    with pytest.raises(UnsupportedByDialect):
        state.interrupt()
    with pytest.raises(UnsupportedByDialect):
        state.create_response()
    with pytest.raises(UnsupportedByDialect):
        state.image(b"png", "image/png", text=None)


# ---- responses tracked by id --------------------------------------------------------------


def test_an_out_of_band_response_finishing_does_not_free_the_default_slot() -> None:
    state = running()
    state.receive([ResponseCreated("r_default")])
    oob = state.create_response(conversation="none", metadata={"k": "v"})
    assert wire(oob)[0]["response"] == {"conversation": "none", "metadata": {"k": "v"}}
    state.receive([ResponseCreated("r_oob")])
    # The default response still runs: the text's response waits for it.
    assert types(state.send_text("more", respond=True)) == ["conversation.item.create"]
    assert types(state.receive([ResponseDone("r_oob", "completed")])) == []
    assert types(state.receive([ResponseDone("r_default", "completed")])) == ["response.create"]


def test_a_response_reported_cancelled_then_done_frees_the_slot_once() -> None:
    state = running()
    state.receive([ResponseCreated("r1")])
    assert types(state.send_text("a", respond=True)) == ["conversation.item.create"]
    step = state.receive([ResponseCancelled("r1"), ResponseDone("r1", "cancelled")])
    assert types(step) == ["response.create"]
    assert state.responses.active  # the deferred create holds the slot


def test_an_mcp_approval_is_forwarded_once_and_answered_once() -> None:
    state = running()
    request = McpApprovalRequested("mcpr_1", "docs", "search_docs", "{}")
    assert state.receive([request]).forward == [request]
    assert state.receive([request]).forward == []  # seen again (response.done's output)
    with pytest.raises(InvalidRequest, match="refusal"):
        state.mcp_approval("mcpr_1", True, reason="why", respond=True, item_id="dx_1")
    step = state.mcp_approval("mcpr_1", False, reason="no", respond=True, item_id="dx_1")
    assert wire(step) == [
        {
            "type": "conversation.item.create",
            "item": {
                "type": "mcp_approval_response",
                "id": "dx_1",
                "approval_request_id": "mcpr_1",
                "approve": False,
                "reason": "no",
            },
        },
        {"type": "response.create"},
    ]
    with pytest.raises(ToolCallNotActive):
        state.mcp_approval("mcpr_1", True, reason=None, respond=True, item_id="dx_2")
    with pytest.raises(ToolCallNotActive):
        state.mcp_approval("mcpr_never", True, reason=None, respond=True, item_id="dx_3")


def test_an_mcp_approval_without_respond_asks_for_no_response_and_waits_behind_one() -> None:
    state = running()
    state.receive([McpApprovalRequested("a", "docs", "search", "{}")])
    state.receive([McpApprovalRequested("b", "docs", "search", "{}")])
    assert types(state.mcp_approval("a", True, reason=None, respond=False, item_id="x")) == [
        "conversation.item.create"
    ]
    state.receive([ResponseCreated("r1")])
    step = state.mcp_approval("b", True, reason=None, respond=True, item_id="y")
    assert types(step) == ["conversation.item.create"]  # the response waits for r1
    assert types(state.receive([ResponseDone("r1", "completed")])) == ["response.create"]


def test_response_tools_may_not_take_the_handoff_or_silence_tools_names() -> None:
    config = EngineConfig(api_key=API_KEY, handoff_tool_name="escalate")
    state = running(config=config)
    with pytest.raises(InvalidRequest, match="handoff or silence"):
        state.create_response(tools=[FunctionTool("escalate")])
    with pytest.raises(InvalidRequest, match="voice"):
        state.create_response(voice="robot")
    step = state.create_response(tools=[FunctionTool("lookup")], voice="cedar")
    assert wire(step)[0]["response"] == {
        "tools": [{"type": "function", "name": "lookup"}],
        "audio": {"output": {"voice": "cedar"}},
    }


def test_deferred_responses_keep_their_options_and_order() -> None:
    state = running()
    state.receive([ResponseCreated("r1")])
    assert types(state.create_response(instructions="first")) == []
    assert types(state.create_response()) == []
    assert types(state.create_response()) == []  # coalesces with the plain one before
    step = state.receive([ResponseDone("r1", "completed")])
    assert wire(step) == [{"type": "response.create", "response": {"instructions": "first"}}]
    state.receive([ResponseCreated("r2")])
    step = state.receive([ResponseDone("r2", "completed")])
    assert wire(step) == [{"type": "response.create"}]
    state.receive([ResponseCreated("r3")])
    assert types(state.receive([ResponseDone("r3", "completed")])) == []


def _resumed_from(old: ConversationState, *, cut: bool, carried: bool) -> list[dict[str, Any]]:
    new = running()
    step = Step()
    step.send.extend(new.take_over_responses(old, cut=cut, carried=carried))
    return wire(step)


def _with_deferred() -> ConversationState:
    old = running()
    old.receive([ResponseCreated("r1")])
    assert types(old.create_response(instructions="first")) == []  # deferred behind r1
    assert types(old.create_response(instructions="second")) == []
    return old


def test_a_resume_gives_the_slot_to_a_cut_response_and_keeps_the_host_requests_waiting() -> None:
    """Regression: the new connection's state started with an empty queue, so requests the
    host made during the cut response were lost (their instructions with them)."""
    new = running()
    requests = new.take_over_responses(_with_deferred(), cut=True, carried=False)
    step = Step()
    step.send.extend(requests)
    assert wire(step) == [{"type": "response.create"}]  # the cut answer, again
    assert new.responses.active
    new.receive([ResponseCreated("r2")])
    step = new.receive([ResponseDone("r2", "completed")])
    assert wire(step) == [{"type": "response.create", "response": {"instructions": "first"}}]
    new.receive([ResponseCreated("r3")])
    step = new.receive([ResponseDone("r3", "completed")])
    assert wire(step) == [{"type": "response.create", "response": {"instructions": "second"}}]


def test_a_carried_request_holds_the_slot_after_a_resume() -> None:
    old = running()
    assert _resumed_from(old, cut=True, carried=True) == []  # the carried one answers
    new = running()
    assert new.take_over_responses(old, cut=False, carried=True) == []
    # A text sent now waits for the carried response rather than racing it.
    assert types(new.send_text("next", respond=True)) == ["conversation.item.create"]


def test_a_v1_resume_asks_for_no_response_its_backend_answers_by_itself() -> None:
    """Regression (review): moving the cut-response request into the state machine lost the
    dialect check the replay had, and a v1 session got a response.create after a drop."""
    old = running(V1)
    old.receive([ResponseCreated("r1")])
    new = running(V1)
    assert new.take_over_responses(old, cut=True, carried=False) == []


def test_a_resume_with_nothing_cut_sends_the_oldest_deferred_request() -> None:
    assert _resumed_from(_with_deferred(), cut=False, carried=False) == [
        {"type": "response.create", "response": {"instructions": "first"}}
    ]
    assert _resumed_from(running(), cut=False, carried=False) == []


def test_bad_response_options_are_refused_before_anything_is_sent() -> None:
    state = running()
    with pytest.raises(InvalidRequest, match="conversation"):
        state.create_response(conversation="sometimes")
    with pytest.raises(InvalidRequest, match="output_modalities"):
        state.create_response(output_modalities=("audio", "text"))
    with pytest.raises(InvalidRequest, match="mime"):
        state.image(b"gif", "image/bmp", text=None)


# ---- interrupt -------------------------------------------------------------------------------


def test_interrupt_on_websocket_cancels_truncates_at_the_delivered_audio_and_tells_the_host() -> (
    None
):
    state = running()
    state.receive([ResponseCreated("r1"), audio("item_a"), audio("item_a"), audio("item_a")])
    state.audio_delivered(audio("item_a"))
    step = state.interrupt()
    assert wire(step) == [
        {"type": "response.cancel", "response_id": "r1"},
        {"type": "conversation.item.truncate", "item_id": "item_a", "content_index": 0,
         "audio_end_ms": 100},
    ]  # fmt: skip
    assert step.forward == [AudioInterrupted("item_a", 100)]
    # Audio of the cut item still in flight is dropped.
    assert state.receive([audio("item_a")]).forward == []
    # A second interrupt has nothing left to cut.
    again = state.interrupt()
    assert types(again) == ["response.cancel"]
    assert again.forward == []


def test_interrupt_on_webrtc_cancels_and_clears_the_output_buffer() -> None:
    state = running(audio_native=True)
    state.receive([ResponseCreated("r1"), audio("item_a")])
    step = state.interrupt()
    assert types(step) == ["response.cancel", "output_audio_buffer.clear"]
    assert step.forward == [AudioInterrupted("item_a", 0)]


def test_interrupt_with_nothing_playing_sends_nothing() -> None:
    state = running()
    state.receive([ResponseCreated("r1"), audio("item_a"), ResponseDone("r1", "completed")])
    state.audio_delivered(audio("item_a"))
    step = state.interrupt()
    assert step.send == []
    assert step.forward == []


# ---- session settings ---------------------------------------------------------------------


def test_update_session_sends_the_whole_session_with_tools_and_keeps_the_prompt() -> None:
    state = running(config=EngineConfig(api_key=API_KEY, tools=TOOLS[:1]))
    state.update_prompt("new prompt")
    step = state.update_session(SessionConfig(turn_detection=None), tools=TOOLS)
    session = wire(step)[0]["session"]
    assert session["instructions"] == "new prompt"
    assert session["audio"]["input"]["turn_detection"] is None
    names = [t["name"] for t in session["tools"]]
    assert names == ["codex", "remain_silent", "get_time", "get_weather"]
    assert state.session is not None
    assert state.session.manual_turns


def test_update_session_refuses_a_bad_tool_and_keeps_the_session() -> None:
    state = running()
    assert state.session is not None
    with pytest.raises(InvalidRequest, match="codex"):
        state.update_session(tools=(FunctionTool("codex"),))
    assert state.session.tools == ()
    with pytest.raises(UnsupportedByDialect):
        running(V1).update_session(SessionConfig())
    v1 = running(V1).update_session(instructions="only this")
    assert wire(v1, V1)[0]["session"]["instructions"] == "only this"


def test_no_handoff_tool_when_its_name_is_none() -> None:
    config = EngineConfig(api_key=API_KEY, handoff_tool_name=None, tools=TOOLS)
    event = SessionSettings(config, "p").start_event()
    payload = json.loads(encode_client_event(event, V2))["session"]
    assert [t["name"] for t in payload["tools"]] == ["remain_silent", "get_time", "get_weather"]


def test_transcription_session_takes_its_model_language_and_prompt_from_the_session() -> None:
    from duplex.engine import InputTranscription

    session = SessionConfig(
        transcription=InputTranscription(model="whisper-1", language="de", prompt="names"),
        turn_detection=ServerVad(silence_duration_ms=300),
    )
    config = EngineConfig(api_key=API_KEY, mode="transcription", session=session)
    event = SessionSettings(config, None).start_event()
    payload = json.loads(encode_client_event(event, V2))["session"]
    assert payload["type"] == "transcription"
    assert payload["audio"]["input"]["transcription"] == {
        "model": "whisper-1",
        "language": "de",
        "prompt": "names",
    }


def test_commit_audio_asks_for_a_response_only_with_manual_turns() -> None:
    vad = running()
    assert types(vad.commit_audio(respond=True)) == ["input_audio_buffer.commit"]
    manual = running(
        config=EngineConfig(api_key=API_KEY, session=SessionConfig(turn_detection=None))
    )
    assert types(manual.commit_audio(respond=True)) == [
        "input_audio_buffer.commit",
        "response.create",
    ]
    assert types(manual.clear_audio()) == ["input_audio_buffer.clear"]


# ---- usage and latency ---------------------------------------------------------------------


def test_usage_adds_up_by_modality_and_counts_cached_tokens_as_a_subset() -> None:
    meter = UsageMeter()
    usage = Usage(
        total_tokens=150,
        input_tokens=100,
        output_tokens=50,
        input_token_details={
            "text_tokens": 60,
            "audio_tokens": 30,
            "image_tokens": 10,
            "cached_tokens": 40,
        },
        output_token_details={"text_tokens": 10, "audio_tokens": 40},
    )
    meter.add(usage)
    meter.add(usage)
    meter.add(None)
    totals = meter.totals()
    assert totals.responses == 2
    assert (totals.input_tokens, totals.output_tokens, totals.total_tokens) == (200, 100, 300)
    assert (totals.input_text_tokens, totals.input_audio_tokens, totals.input_image_tokens) == (
        120,
        60,
        20,
    )
    assert totals.cached_input_tokens == 80  # inside input_tokens, not added to it
    assert (totals.output_text_tokens, totals.output_audio_tokens) == (20, 80)


def test_transcription_usage_is_counted_apart_from_the_responses() -> None:
    state = running()
    tokens = Usage(total_tokens=30, input_tokens=20, output_tokens=10)
    state.receive(
        [
            InputTranscriptDone("hello", "item_1", tokens),
            InputTranscriptDone("again", "item_2", None, 2.5),
            InputTranscriptDone("free", "item_3"),
        ]
    )
    totals = state.usage.totals()
    assert totals.transcriptions == 3
    assert (totals.transcription_input_tokens, totals.transcription_output_tokens) == (20, 10)
    assert totals.transcription_audio_s == 2.5
    assert (totals.responses, totals.input_tokens) == (0, 0)  # not response usage


def test_latency_runs_from_the_end_of_speech_to_the_first_transcript_and_audio() -> None:
    clock = Clock()
    state = running(clock=clock)
    state.receive([InputAudioSpeechStopped("item_u", 900)])
    clock.now += 0.5
    state.receive([ResponseCreated("r1"), OutputTranscriptDelta("Hi", "item_a", "r1")])
    clock.now += 0.25
    state.receive([audio("item_a")])
    clock.now += 1.0
    state.receive([audio("item_a"), OutputTranscriptDelta(" there", "item_a", "r1")])
    state.receive([ResponseDone("r1", "completed", Usage(input_tokens=3, output_tokens=2))])
    summary = state.latency.summary()
    assert summary.responses == 1
    assert summary.last is not None
    assert summary.last.transcript_s == pytest.approx(0.5)
    assert summary.last.audio_s == pytest.approx(0.75)
    assert state.usage.totals().input_tokens == 3


def test_latency_of_text_sent_and_the_median() -> None:
    meter = LatencyMeter()
    for seconds in (0.2, 0.4, 0.9):
        meter.turn_ended(10.0)
        meter.first_text(10.0 + seconds)
        meter.response_finished()
    meter.turn_ended(20.0)
    meter.response_finished()  # a response without output (a tool call) keeps it open
    meter.first_audio(21.0)
    meter.response_finished()
    summary = meter.summary()
    assert summary.responses == 4
    assert summary.transcript_p50_s == pytest.approx(0.4)
    assert summary.audio_p50_s == pytest.approx(1.0)
    assert summary.last is not None
    assert summary.last.transcript_s is None


def test_latency_ignores_audio_of_the_item_that_was_playing_when_the_turn_ended() -> None:
    clock = Clock()
    state = running(clock=clock, audio_native=True)
    loud = AudioFrame(b"\x00\x20" * 480, 24000, 1)
    state.receive([ResponseCreated("r1"), OutputTranscriptDelta("a", "item_a", "r1")])
    state.receive([OutputAudioBufferStarted("r1"), ResponseDone("r1", "completed")])
    state.receive([AudioOut(loud)])
    state.receive([InputAudioSpeechStopped("item_u", 900)])
    clock.now += 0.1
    # The track's tail of item_a, still playing when the user's turn ended, is not the answer.
    state.receive([AudioOut(loud)])
    state.receive([OutputAudioBufferStopped("r1")])
    clock.now += 0.4
    state.receive([ResponseCreated("r2"), OutputTranscriptDelta("b", "item_b", "r2")])
    # r2 starts on the track after r1's last frame: the gap between them, then its sound.
    quiet = AudioFrame(bytes(960), 24000, 1)
    state.receive([OutputAudioBufferStarted("r2"), AudioOut(quiet), AudioOut(loud)])
    state.receive([ResponseDone("r2", "completed")])
    last = state.latency.summary().last
    assert last is not None
    assert last.audio_s == pytest.approx(0.5)
    assert last.transcript_s == pytest.approx(0.5)


# ---- the state-machine invariants with the new host calls ---------------------------------

_TOOL_IDS = st.sampled_from(["tc_1", "tc_2", "tc_3"])


class HostApiRules(ConversationRules):
    """``test_state_machine.ConversationRules`` (one end, nothing after it, one plain
    ``response.create`` in flight, each call answered once) with tool calls, tool outputs,
    interrupts and default/out-of-band responses mixed in."""

    @rule(call_id=_TOOL_IDS, response=st.sampled_from(["r1", "r2", None]))
    def tool_call(self, call_id: str, response: str | None) -> None:
        event = ToolCallRequested(call_id, "get_time", "{}", f"item_{call_id}", response)
        self._apply(self.state.receive([event]))

    @rule(call_id=_TOOL_IDS, respond=st.booleans())
    def tool_output(self, call_id: str, respond: bool) -> None:
        try:
            self._apply(self.state.tool_output(call_id, "out", respond=respond))
        except ToolCallNotActive:
            pass
        except ConversationNotRunning:
            assert not self.state.running

    @rule()
    def interrupt(self) -> None:
        try:
            step = self.state.interrupt()
        except ConversationNotRunning:
            assert not self.state.running
            return
        assert len(step.forward) <= 1
        self._apply(step)

    @rule(out_of_band=st.booleans())
    def create_response(self, out_of_band: bool) -> None:
        try:
            step = self.state.create_response(conversation="none" if out_of_band else "auto")
        except ConversationNotRunning:
            assert not self.state.running
            return
        self._apply(step)


HostApiRules.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_host_api_state_invariants = HostApiRules.TestCase
