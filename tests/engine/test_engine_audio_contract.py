"""The audio contract pieces one at a time (issue 14 items 1, 3, 4, 5): the WebRTC track
contract (``TrackAudio``, sans-IO), barge-in at what the host reported with
``audio_played``, G.711 telephony sessions and the host-audio resampler."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import pytest
import trio

from duplex.engine import (
    AudioFrame,
    AudioInterrupted,
    AudioOut,
    ConversationClosed,
    ConversationStartError,
    EngineConfig,
    InvalidAudioFrame,
    OutputAudioDone,
    ResamplerUnavailable,
    ResponseDone,
    SessionUpdated,
    open_engine,
)
from duplex.engine._audio_contract import (
    DRAIN_FRAMES,
    END_QUIET_FRAMES,
    IMPLICIT_END_FRAMES,
    SUCCESSOR_SLACK_FRAMES,
    TrackAudio,
)
from duplex.engine._state_machine import ConversationState
from duplex.protocol import (
    ConversationItem,
    ConversationItemAdded,
    ConversationItemDone,
    Error,
    InputAudioSpeechStarted,
    OutputAudioBufferCleared,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    ProtocolVersion,
    RateLimitsUpdated,
    ResponseCreated,
    session_start_event,
)
from duplex.simulator import open_simulator
from duplex.simulator._audio import encode_g711, synthesize
from duplex.transports import TransportClosed

from ._engine_helpers import API_KEY, engine_with_events, of_type, raw_of, sim_config, sine

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

START = session_start_event(ProtocolVersion.V2)
LOUD = AudioFrame(sine(20, amplitude=8000))
QUIET = AudioFrame(bytes(960))


def _webrtc_state() -> ConversationState:
    state = ConversationState(version=ProtocolVersion.V2)
    state.connected(session_id="s", transport="webrtc", audio_native=True, start_event=START)
    return state


def _reply(state: ConversationState, item: str = "item_1", response: str = "resp_1") -> Any:
    return state.receive(
        [
            ResponseCreated(response),
            ConversationItemAdded(ConversationItem(id=item, type="message", role="assistant")),
        ]
    )


def _track(state: ConversationState, *frames: AudioFrame) -> list[Any]:
    return state.receive([AudioOut(f) for f in frames]).forward


def _speaking_reply_done_early() -> ConversationState:
    """A WebRTC reply whose playout started and whose response.done arrived at once (held)."""
    state = _webrtc_state()
    _reply(state)
    state.receive([OutputAudioBufferStarted("resp_1"), ResponseDone("resp_1", "completed")])
    return state


# What ends the reply for the host: its item's audio end, then the held response end.
ENDS = [OutputAudioDone("item_1", "resp_1"), ResponseDone("resp_1", "completed")]


# ---- WebRTC: the track contract -----------------------------------------------------------


def test_idle_track_silence_and_stray_sound_never_reach_the_host() -> None:
    state = _webrtc_state()
    assert _track(state, QUIET, QUIET, QUIET) == []
    assert _track(state, LOUD) == []  # no response has audio: nothing to attribute it to


def test_track_audio_is_tagged_and_trimmed_between_started_and_stopped() -> None:
    state = _webrtc_state()
    _reply(state)
    assert state.receive([OutputAudioBufferStarted("resp_1")]).forward == []
    assert _track(state, QUIET, QUIET) == []  # leading silence (jitter buffer) is dropped
    out = _track(state, LOUD, QUIET, LOUD)  # a pause inside the reply is part of it
    assert [type(e) for e in out] == [AudioOut, AudioOut, AudioOut]
    assert {(e.item_id, e.response_id) for e in out} == {("item_1", "resp_1")}
    # response.done arrives long before the playout ends: held.
    assert state.receive([ResponseDone("resp_1", "completed")]).forward == []
    assert _track(state, LOUD) != []
    assert state.receive([OutputAudioBufferStopped("resp_1")]).forward == []
    # The last voiced frame, then a quiet run long enough to be the end.
    tail = _track(state, LOUD, *[QUIET] * END_QUIET_FRAMES)
    assert tail == [
        AudioOut(LOUD, "item_1", "resp_1"),
        OutputAudioDone("item_1", "resp_1"),
        ResponseDone("resp_1", "completed"),
    ]
    assert _track(state, LOUD, QUIET) == []  # idle again


def test_a_pause_after_stopped_does_not_cut_the_last_words() -> None:
    """Regression: the first quiet frame after ``stopped`` ended the item, so when the track
    lagged the events (jitter buffer, a loaded machine) a pause between the reply's last words
    cut them: the WebRTC parity test lost 220 ms of a 700 ms reply 1 run in 4 under load."""
    state = _speaking_reply_done_early()
    _track(state, LOUD, LOUD)
    assert state.receive([OutputAudioBufferStopped("resp_1")]).forward == []
    pause = [QUIET] * (END_QUIET_FRAMES - 1)
    out = _track(state, *pause, LOUD, LOUD)  # the last word, still on its way
    assert [e.frame for e in out] == [*pause, LOUD, LOUD]
    assert {(e.item_id, e.response_id) for e in out} == {("item_1", "resp_1")}
    assert _track(state, *[QUIET] * END_QUIET_FRAMES) == ENDS


def test_stopped_after_the_sound_ended_ends_the_item_at_once() -> None:
    state = _speaking_reply_done_early()
    assert len(_track(state, LOUD, *[QUIET] * END_QUIET_FRAMES)) == 1  # the quiet is held
    assert state.receive([OutputAudioBufferStopped("resp_1")]).forward == ENDS


def test_stopped_ends_the_item_within_the_drain_bound_even_if_sound_goes_on() -> None:
    state = _speaking_reply_done_early()
    _track(state, LOUD)
    state.receive([OutputAudioBufferStopped("resp_1")])
    out = _track(state, *[LOUD] * (DRAIN_FRAMES + 5))
    assert sum(isinstance(e, AudioOut) for e in out) == DRAIN_FRAMES
    assert out[DRAIN_FRAMES:] == ENDS


def test_without_buffer_events_sound_starts_and_silence_ends_a_reply_with_audio() -> None:
    """A server that sends no output_audio_buffer.* events: energy and the server's own
    response.output_audio.done still give the contract (bounded by the track's clock)."""
    state = _webrtc_state()
    _reply(state)
    state.receive([OutputAudioDone("item_1", "resp_1")])  # generation finished: swallowed
    assert state.receive([ResponseDone("resp_1", "completed")]).forward == []  # held
    assert [e.item_id for e in _track(state, LOUD, LOUD)] == ["item_1", "item_1"]
    out = _track(state, *[QUIET] * IMPLICIT_END_FRAMES)
    assert out == ENDS


def test_a_held_response_done_whose_audio_never_sounds_is_released_after_the_bound() -> None:
    state = _webrtc_state()
    _reply(state)
    state.receive([OutputAudioDone("item_1", "resp_1")])
    assert state.receive([ResponseDone("resp_1", "completed")]).forward == []
    assert _track(state, *[QUIET] * (IMPLICIT_END_FRAMES - 1)) == []
    assert _track(state, QUIET) == ENDS


def test_transport_end_releases_a_held_response_done_before_closing() -> None:
    from duplex.transports import TransportEnded

    state = _speaking_reply_done_early()
    _track(state, LOUD)
    step = state.receive([], TransportEnded("closed", 1000, None))
    assert [type(e) for e in step.forward] == [OutputAudioDone, ResponseDone]
    assert step.end == ConversationClosed("transport_closed", 1000, None)


def test_a_fatal_error_releases_a_held_response_done_before_closing() -> None:
    state = _speaking_reply_done_early()
    _track(state, LOUD)
    step = state.receive([Error("the server failed", "server_error", None, True)])
    kinds = [type(e) for e in step.forward]
    assert kinds[-2:] == [OutputAudioDone, ResponseDone]
    assert Error in kinds
    assert step.end == ConversationClosed("error", None, "the server failed")


def test_the_reply_is_not_over_while_its_end_waits_for_its_audio() -> None:
    # A rotation waits for this (``ConversationState.replying``): the host's ResponseDone.
    state = _speaking_reply_done_early()
    assert not state.responses.active  # the server's response.done came
    assert state.replying
    _track(state, LOUD)
    assert _track(state, *[QUIET] * IMPLICIT_END_FRAMES)[-1] == ResponseDone("resp_1", "completed")
    assert not state.replying


def test_track_contract_alone_keeps_order_per_response() -> None:
    track = TrackAudio()
    track.observe(ResponseCreated("r1"))
    track.observe(
        ConversationItemAdded(ConversationItem(id="i1", type="message", role="assistant"))
    )
    track.observe(OutputAudioBufferStarted("r1"))
    track.frame(LOUD)
    # A second reply starts playing: the first one's last frame (the track lags the events),
    # the gap between them, then the second one.
    track.observe(ResponseCreated("r2"))
    track.observe(
        ConversationItemAdded(ConversationItem(id="i2", type="message", role="assistant"))
    )
    track.observe(OutputAudioBufferStarted("r2"))
    for frame in (LOUD, QUIET, LOUD):
        track.frame(frame)
    assert [(type(e).__name__, e.item_id) for e in track.take()] == [
        ("AudioOut", "i1"),
        ("AudioOut", "i1"),
        ("OutputAudioDone", "i1"),
        ("AudioOut", "i2"),
    ]


def _second_reply_while_the_first_plays() -> tuple[ConversationState, list[Any]]:
    """resp_1 plays with the events 2 frames ahead of the track; its response.done is held.
    The host sends a second text: resp_2 is created and fully generated meanwhile."""
    state = _webrtc_state()
    _reply(state)
    state.receive([OutputAudioBufferStarted("resp_1")])
    out = _track(state, QUIET, QUIET, LOUD, LOUD)  # 2 frames of lead, then the reply
    out += state.receive([ResponseDone("resp_1", "completed")]).forward
    second = [
        ConversationItemAdded(ConversationItem(id="user_2", type="message", role="user")),
        ResponseCreated("resp_2"),
        ConversationItemAdded(ConversationItem(id="item_2", type="message", role="assistant")),
        OutputTranscriptDelta("Hi", "item_2", "resp_2"),
        OutputTranscriptDone("Hi", "item_2", "resp_2"),
        OutputAudioDone("item_2", "resp_2"),  # generation finished: swallowed
        ConversationItemDone("item_2"),
        ResponseDone("resp_2", "completed"),
    ]
    out += state.receive(second).forward
    out += _track(state, LOUD)
    return state, out


def test_the_next_reply_waits_for_the_last_frames_of_the_one_on_the_track() -> None:
    """Regression: ``started`` of the next reply arrives with ``stopped`` of the one playing,
    ahead of the track (the jitter buffer). The playing reply was ended at once, so its last
    frames were tagged as the next reply. (The next reply's own events still come as they
    arrive, before the first reply's held end: the module docstring says why.)"""
    state, out = _second_reply_while_the_first_plays()
    assert ResponseCreated("resp_2") in out
    assert ResponseDone("resp_1", "completed") not in out
    out = state.receive(
        [OutputAudioBufferStopped("resp_1"), OutputAudioBufferStarted("resp_2")]
    ).forward
    assert out == []
    # The first reply's last 2 frames (the lead measured at its start), the gap, the second.
    out = _track(state, LOUD, LOUD, QUIET, QUIET, LOUD, LOUD)
    assert [(type(e).__name__, getattr(e, "response_id", None)) for e in out] == [
        ("AudioOut", "resp_1"),
        ("AudioOut", "resp_1"),
        ("OutputAudioDone", "resp_1"),
        ("ResponseDone", "resp_1"),
        ("AudioOut", "resp_2"),
        ("AudioOut", "resp_2"),
    ]
    assert out[-1].item_id == "item_2"
    state.receive([OutputAudioBufferStopped("resp_2")])
    assert _track(state, *[QUIET] * END_QUIET_FRAMES) == [
        OutputAudioDone("item_2", "resp_2"),
        ResponseDone("resp_2", "completed"),
    ]


def test_a_waiting_reply_starts_within_the_slack_when_no_gap_separates_them() -> None:
    state, _ = _second_reply_while_the_first_plays()
    state.receive([OutputAudioBufferStopped("resp_1"), OutputAudioBufferStarted("resp_2")])
    # No quiet frame between the two replies: the hand-over is bounded by the track's clock.
    out = _track(state, *[LOUD] * (2 + SUCCESSOR_SLACK_FRAMES + 3))
    audio = [e.response_id for e in out if isinstance(e, AudioOut)]
    assert audio == ["resp_1"] * (2 + SUCCESSOR_SLACK_FRAMES) + ["resp_2"] * 3
    assert [type(e) for e in out][2 + SUCCESSOR_SLACK_FRAMES : 2 + SUCCESSOR_SLACK_FRAMES + 3] == [
        OutputAudioDone,
        ResponseDone,
        AudioOut,
    ]


def test_a_waiting_reply_cleared_before_it_sounded_ends_after_the_first() -> None:
    state, _ = _second_reply_while_the_first_plays()
    state.receive([OutputAudioBufferStopped("resp_1"), OutputAudioBufferStarted("resp_2")])
    # The waiting reply never sounded: it ends now (its end may overtake the first one's
    # held end, as other responses' events may), and the first drains by its own rule.
    assert [type(e) for e in state.receive([OutputAudioBufferCleared("resp_2")]).forward] == [
        OutputAudioDone,
        ResponseDone,
    ]
    out = _track(state, LOUD, *[QUIET] * END_QUIET_FRAMES, LOUD)
    assert [type(e) for e in out] == [AudioOut, OutputAudioDone, ResponseDone]
    assert [e.response_id for e in out if isinstance(e, AudioOut)] == ["resp_1"]


def test_input_events_are_not_held_behind_a_reply_end() -> None:
    state = _speaking_reply_done_early()
    _track(state, LOUD)
    speech = InputAudioSpeechStarted("user_2", 0)
    out = state.receive([RateLimitsUpdated(()), speech]).forward
    assert speech in out


# ---- barge-in at what was heard -------------------------------------------------------


def _ws_state() -> ConversationState:
    state = ConversationState(version=ProtocolVersion.V2)
    state.connected(session_id="s", transport="websocket", audio_native=False, start_event=START)
    return state


def test_barge_in_cuts_at_the_reported_playback_position_on_websocket() -> None:
    state = _ws_state()
    frame = AudioOut(AudioFrame(bytes(4800)), "item_1", "resp_1")  # 100 ms
    state.receive([ResponseCreated("resp_1"), frame, frame, frame])
    for _ in range(3):
        assert state.audio_delivered(frame)
    state.audio_played("item_1", 130)  # the device is behind what the host took
    step = state.receive([InputAudioSpeechStarted("in_1", 0)])
    assert [e.TYPE for e in step.send] == ["conversation.item.truncate"]
    assert step.send[0].audio_end_ms == 130  # type: ignore[attr-defined]
    assert step.forward[-1] == AudioInterrupted("item_1", 130)
    assert not state.audio_delivered(frame)  # queued before the cut: stale, not delivered


def test_barge_in_on_webrtc_lets_the_server_cut_and_tells_the_host() -> None:
    state = _webrtc_state()
    _reply(state)
    state.receive([OutputAudioBufferStarted("resp_1")])
    for event in _track(state, LOUD, LOUD, LOUD):
        state.audio_delivered(event)
    state.audio_played("item_1", 20)
    step = state.receive([InputAudioSpeechStarted("in_1", 0)])
    assert step.send == []  # over WebRTC the server truncates by itself
    assert step.forward[-1] == AudioInterrupted("item_1", 20)
    assert _track(state, LOUD) == []  # the cut item's later audio is dropped
    assert [type(e) for e in state.receive([OutputAudioBufferCleared("resp_1")]).forward] == [
        OutputAudioDone
    ]


def test_host_interrupt_on_webrtc_clears_the_output_buffer() -> None:
    """The decision ``interrupt()`` (issue 13) reuses: ``cut_playback``."""
    state = _webrtc_state()
    _reply(state)
    state.receive([OutputAudioBufferStarted("resp_1")])
    for event in _track(state, LOUD, LOUD):
        state.audio_delivered(event)
    step = state.cut_playback()
    assert [e.TYPE for e in step.send] == ["output_audio_buffer.clear"]
    assert step.forward == [AudioInterrupted("item_1", 40)]
    assert state.cut_playback().forward == []  # each item is cut once


# ---- telephony ------------------------------------------------------------------------


async def test_g711_ulaw_passes_through_websocket_byte_exact_both_ways() -> None:
    pcm = sine(900, amplitude=9000) + bytes(2 * 24000 * 900 // 1000)
    pcm8, _ = audioop.ratecv(pcm, 2, 1, 24000, 8000, None)
    ulaw = audioop.lin2ulaw(pcm8, 2)
    async with open_simulator() as sim:
        config = sim_config(sim, audio_format="pcmu")
        with trio.fail_after(20):
            async with engine_with_events(config) as (engine, events):
                await engine.start(prompt="telephony")
                await events.until(of_type(SessionUpdated))
                for i in range(0, len(ulaw), 160):  # 20 ms telephony frames
                    engine.send_audio(AudioFrame(ulaw[i : i + 160], 8000, 1, "pcmu"))
                    await trio.sleep(0.005)
                taken = await events.until(of_type(ResponseDone))
                record = sim.sessions[0]
                appended = b"".join(
                    e.event.audio  # type: ignore[union-attr]
                    for e in record.of_type("input_audio_buffer.append")
                )
                update = raw_of(record, "session.update")[0]["session"]["audio"]
                with pytest.raises(InvalidAudioFrame):
                    engine.send_audio(AudioFrame(bytes(960)))  # PCM16 in a μ-law session
    assert update["input"]["format"]["type"] == "audio/pcmu"
    assert update["output"]["format"]["type"] == "audio/pcmu"
    assert appended == ulaw  # μ-law in: byte-exact, no transcoding
    audio = [e for e in taken if isinstance(e, AudioOut)]
    assert {(e.frame.encoding, e.frame.sample_rate) for e in audio} == {("pcmu", 8000)}
    reply = b"".join(e.frame.pcm for e in audio)
    # μ-law out: exactly the simulator's encoding of its reply, passed through.
    spoken = next(e for e in taken if type(e).__name__ == "OutputTranscriptDone").text
    assert reply == encode_g711(synthesize(spoken), "ulaw")


async def test_g711_barge_in_milliseconds_count_8khz_bytes() -> None:
    state = ConversationState(version=ProtocolVersion.V2, audio_format="pcmu")
    state.connected(session_id="s", transport="websocket", audio_native=False, start_event=START)
    frame = AudioOut(AudioFrame(bytes(160), 8000, 1, "pcmu"), "item_1", "resp_1")  # 20 ms
    state.receive([ResponseCreated("resp_1"), frame, frame, frame])
    state.audio_delivered(frame)
    state.audio_delivered(frame)
    step = state.receive([InputAudioSpeechStarted("in_1", 0)])
    assert step.send[0].audio_end_ms == 40  # type: ignore[attr-defined]


# ---- resampling ---------------------------------------------------------------------------


async def test_host_audio_at_other_rates_without_the_extra_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "soxr", None)  # as if duplex[resample] were missing
    from duplex.transports import memory_transport_pair

    async def factory(_nursery: trio.Nursery) -> Any:
        return memory_transport_pair()[0]

    with trio.fail_after(10):
        async with open_engine(EngineConfig(api_key=API_KEY), transport_factory=factory) as engine:
            await engine.start()
            assert engine.send_audio(AudioFrame(bytes(960), 24000, 1))  # no resampling needed
            with pytest.raises(ResamplerUnavailable, match=r"duplex\[resample\]"):
                engine.send_audio(AudioFrame(bytes(1920), 48000, 1))


async def test_g711_on_an_audio_native_transport_without_the_extra_fails_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The track's audio is transcoded for the host from its first frame: without soxr the
    start fails with the extra's name, instead of the first reply ending the conversation
    with an internal error."""
    monkeypatch.setitem(sys.modules, "soxr", None)  # as if duplex[resample] were missing
    from duplex.transports import memory_transport_pair

    made: list[Any] = []

    async def factory(_nursery: trio.Nursery) -> Any:
        transport = memory_transport_pair(audio_native=True)[0]
        made.append(transport)
        return transport

    config = EngineConfig(api_key=API_KEY, audio_format="pcmu")
    with trio.fail_after(10):
        async with open_engine(config, transport_factory=factory) as engine:
            with pytest.raises(ConversationStartError, match=r"duplex\[resample\]"):
                await engine.start()
            assert not engine.statistics().running
            with pytest.raises(TransportClosed):  # the transport was closed on the way out
                await made[0].send_text("{}")


async def test_g711_over_webrtc_is_transcoded_both_ways() -> None:
    """The track is Opus: μ-law from the host is decoded for it, and the model's audio comes
    back as μ-law 8 kHz, with the same contract (ids, OutputAudioDone, ResponseDone)."""
    pcm = bytes(2 * 24000 * 200 // 1000) + sine(900, amplitude=9000) + bytes(2 * 24000)
    pcm8, _ = audioop.ratecv(pcm, 2, 1, 24000, 8000, None)
    ulaw = audioop.lin2ulaw(pcm8, 2)
    async with open_simulator() as sim:
        config = sim_config(sim, transport="webrtc", audio_format="pcmu")
        with trio.fail_after(30):
            async with engine_with_events(config) as (engine, events):
                await engine.start(prompt="telephony over rtc")
                await events.until(of_type(SessionUpdated))
                for i in range(0, len(ulaw), 160):
                    engine.send_audio(AudioFrame(ulaw[i : i + 160], 8000, 1, "pcmu"))
                    await trio.sleep(0.02)  # the track is real time
                taken = await events.until(of_type(ResponseDone))
    heard = [e for e in taken if type(e).__name__ == "InputTranscriptDone"]
    assert heard, "the server heard the transcoded speech"
    audio = [e for e in taken if isinstance(e, AudioOut)]
    assert audio
    assert {(e.frame.encoding, e.frame.sample_rate, e.frame.channels) for e in audio} == {
        ("pcmu", 8000, 1)
    }
    assert sum(e.frame.duration_ms for e in audio) > 500
    assert isinstance(taken[-2], OutputAudioDone)


async def test_a_committed_g711_turn_reaches_the_track_whole_before_the_commit() -> None:
    """The μ-law → track resampler holds its filter's last 30 ms: without a flush at the
    commit they went out with the next turn's audio."""
    from duplex.transports import memory_transport_pair

    peers: list[Any] = []

    async def factory(_nursery: trio.Nursery) -> Any:
        client, peer = memory_transport_pair(audio_native=True)
        peers.append(peer)
        return client

    ulaw = audioop.lin2ulaw(sine(400, amplitude=9000, rate=8000), 2)
    track = bytearray()
    config = EngineConfig(api_key=API_KEY, audio_format="pcmu")
    with trio.fail_after(10):
        async with open_engine(config, transport_factory=factory) as engine:
            await engine.start()
            for i in range(0, len(ulaw), 160):
                engine.send_audio(AudioFrame(ulaw[i : i + 160], 8000, 1, "pcmu"))
            await engine.commit_audio(respond=False)
            committed = False
            while not committed:
                for item in await peers[0].receive_batch():
                    if isinstance(item, AudioFrame):
                        track.extend(item.pcm)
                    elif '"input_audio_buffer.commit"' in item:
                        committed = True
                        break
    assert len(track) == 2 * 24000 * 400 // 1000  # all 400 ms, at 24 kHz, before the commit


async def test_an_idle_webrtc_call_delivers_no_audio_frames() -> None:
    """Issue 14: 96 silent AudioOut (item_id=None) in 2 s of an idle WebRTC session, and
    silent frames tagged with the last reply's item after it ended."""
    async with open_simulator() as sim:
        config = sim_config(sim, transport="webrtc")
        with trio.fail_after(30):
            async with engine_with_events(config) as (engine, events):
                await engine.start(prompt="idle")
                await events.until(of_type(SessionUpdated))
                await events.nothing_for(1.0)  # the track runs; the host sees nothing
                await engine.send_text("hi")
                await events.until(of_type(ResponseDone))
                await events.nothing_for(1.0)  # and nothing after the reply either
                assert engine.statistics().audio_frames_out > 0
