"""The engine over WebRTC: a data-channel turn and the sideband control path
(codex-realtime.md §8.2, tests conversation_webrtc_*)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from duplex.engine import (
    AudioOut,
    ConversationClosed,
    ConversationNotRunning,
    ConversationReconnecting,
    ConversationStarted,
    ConversationStartError,
    Error,
    InvalidRequest,
    OutputAudioDone,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    ReconnectPolicy,
    ResponseDone,
    SessionUpdated,
)
from duplex.engine._audio_contract import is_voiced
from duplex.simulator import FaultConfig, Simulator, SimulatorConfig, open_simulator

from ._engine_helpers import audio_ms, engine_with_events, of_type, raw_of, sim_config


async def test_webrtc_datachannel_text_turn_with_media_audio() -> None:
    async with open_simulator() as sim:
        config = sim_config(sim, transport="webrtc")
        with trio.fail_after(20):
            async with engine_with_events(config) as (engine, events):
                started = await engine.start(prompt="be nice")
                assert started.transport == "webrtc"
                await events.until(of_type(SessionUpdated))
                await engine.send_text("hello over rtc")
                done = await events.until(of_type(OutputTranscriptDone))
                assert done[-1].text == "You said: hello over rtc."
                # Model audio arrives on the media track, paced in real time, as 24 kHz mono.
                audio = await events.until(of_type(AudioOut))
                frame = audio[-1].frame
                assert (frame.sample_rate, frame.channels) == (24000, 1)
                assert engine.statistics().running
                assert await engine.close()
                rest = await events.until(of_type(ConversationClosed))
                assert rest[-1] == ConversationClosed("requested")
            record = sim.sessions[0]
            assert record.transport == "webrtc"
            assert {e.source for e in record.events} == {"datachannel"}
            items = raw_of(record, "conversation.item.create")
            assert "hello over rtc" in str(items[0]["item"])
            assert audio_ms(events.log) > 0


@pytest.mark.parametrize("webrtc_dtx", [True, False], ids=["dtx-server", "streaming-server"])
async def test_response_done_follows_the_reply_audio_also_when_the_server_pauses_rtp(
    webrtc_dtx: bool,
) -> None:
    """The offer asks for Opus DTX (``usedtx=1``). A server that honours it stops sending RTP
    200 ms into the model's silence, and aiortc's jitter buffer then holds the last frames
    before the pause until the next keepalive packets release them: the audio contract's
    frame clock stalled and ``ResponseDone`` came ~1.3 s after the reply's last ``AudioOut``
    (160 ms on a streaming server). The transport now fills a pause with the wall time's
    silence, so the hold ends as on a streaming server."""
    async with open_simulator(SimulatorConfig(webrtc_dtx=webrtc_dtx)) as sim:
        config = sim_config(sim, transport="webrtc")
        with trio.fail_after(30):
            async with engine_with_events(config) as (engine, events):
                await engine.start(prompt="")
                await events.until(of_type(SessionUpdated))
                for turn in range(2):
                    await engine.send_text(f"turn number {turn}, over rtc")
                    last_audio = None
                    while not isinstance(event := await events.next(), ResponseDone):
                        if isinstance(event, AudioOut):
                            last_audio = trio.current_time()
                    assert last_audio is not None
                    held_s = trio.current_time() - last_audio
                    # 160 ms of quiet frames end the item (END_QUIET_FRAMES), plus the
                    # pause's grace and tick; before the fix, 1.3 s on the DTX server.
                    assert held_s < 0.6, (turn, held_s)
                    assert of_type(OutputAudioDone)(events.log[-2])


async def test_webrtc_sideband_delivers_text_queued_before_the_join() -> None:
    """conversation_webrtc_start_posts_generated_session: start() returns after the call is
    created; text sent before the sideband joined arrives after its session.update."""
    async with open_simulator(SimulatorConfig(faults=FaultConfig(sideband_refuse_first=3))) as sim:
        config = sim_config(sim, transport="webrtc", webrtc_control="sideband")
        with trio.fail_after(20):
            async with engine_with_events(config) as (engine, events):
                started = await engine.start(prompt="sideband prompt")
                assert isinstance(started, ConversationStarted)
                await engine.send_text("queued before sideband")
                done = await events.until(of_type(OutputTranscriptDone))
                assert done[-1].text == "You said: queued before sideband."
                assert not [e for e in events.log if isinstance(e, Error)]
                # Read while the call is up: the simulator forgets a call once it ends.
                record = sim.sessions[0]
                call = sim.calls[record.call_id or ""]
                assert call.sideband_attempts == 4
            types = [e.type for e in record.events if e.source == "sideband"]
            assert types[:3] == ["session.update", "conversation.item.create", "response.create"]
            update = raw_of(record, "session.update")[0]["session"]
            assert update["instructions"] == "sideband prompt"


async def test_close_while_sideband_joining_emits_only_requested() -> None:
    """conversation_webrtc_close_while_sideband_connecting_drops_pending_join."""
    faults = FaultConfig(sideband_refuse_first=1000)
    async with open_simulator(SimulatorConfig(faults=faults)) as sim:
        config = sim_config(sim, transport="webrtc", webrtc_control="sideband")
        with trio.fail_after(20):
            async with engine_with_events(config) as (engine, events):
                started = await engine.start()
                await engine.send_text("never delivered")
                assert await events.next() == started
                assert await engine.close()
                assert await events.next() == ConversationClosed("requested")
                # Longer than the whole retry schedule: no stale Error/Closed shows up.
                await events.nothing_for(2.0)
                with pytest.raises(ConversationNotRunning):
                    await engine.send_text("after close")
            record = sim.sessions[0]
            assert [e for e in record.events if e.source == "sideband"] == []
            assert events.log == [started, ConversationClosed("requested")]


async def test_sideband_join_failure_emits_error_then_closed_error() -> None:
    """conversation_webrtc_sideband_connect_failure_closes_with_error."""
    faults = FaultConfig(sideband_refuse_first=1000)
    async with open_simulator(SimulatorConfig(faults=faults)) as sim:
        config = sim_config(
            sim,
            transport="webrtc",
            webrtc_control="sideband",
            reconnect=ReconnectPolicy.disabled(),
        )
        with trio.fail_after(20):
            async with engine_with_events(config) as (engine, events):
                started = await engine.start()
                taken = await events.until(of_type(ConversationClosed))
                assert taken[0] == started
                assert isinstance(taken[-2], Error)
                assert taken[-2].fatal
                assert taken[-1].reason == "error"
                await events.nothing_for(0.3)
                with pytest.raises(ConversationNotRunning):
                    await engine.send_text("too late")
            assert len([e for e in events.log if isinstance(e, ConversationClosed)]) == 1


async def test_webrtc_call_refused_raises_start_error_with_status() -> None:
    async with open_simulator(SimulatorConfig(faults=FaultConfig(calls_status=503))) as sim:
        config = sim_config(sim, transport="webrtc")
        with trio.fail_after(20):
            async with engine_with_events(config) as (engine, events):
                with pytest.raises(ConversationStartError) as info:
                    await engine.start()
                assert info.value.status == 503
                await events.nothing_for(0.2)


@pytest.mark.parametrize("control", ["datachannel", "sideband"])
async def test_a_peer_hangup_ends_the_conversation_like_a_clean_close(control: str) -> None:
    """The server hangs the call up in order (``POST /calls/{id}/hangup``). In datachannel
    control that ends the transport ``"closed"`` with no close code, which the reconnect
    policy took for a network drop: the engine re-dialled a new call and went on. A hang-up
    ends the conversation with ``ConversationClosed("transport_closed")``, as a WebSocket
    close 1000 does, with reconnection on (the default)."""
    async with open_simulator() as sim:
        config = sim_config(sim, transport="webrtc", webrtc_control=control)
        with trio.fail_after(20):
            async with engine_with_events(config) as (engine, events):
                await engine.start(prompt="")
                await events.until(of_type(SessionUpdated))
                call_id = sim.sessions[0].call_id
                async with httpx.AsyncClient() as http:
                    reply = await http.post(
                        f"{sim.base_url}/realtime/calls/{call_id}/hangup",
                        headers={"Authorization": f"Bearer {config.api_key}"},
                    )
                assert reply.status_code == 200
                closed = (
                    await events.until(of_type(ConversationClosed, ConversationReconnecting))
                )[-1]
                assert isinstance(closed, ConversationClosed), closed
                assert closed.reason == "transport_closed"
                assert closed.error is None
                assert not [
                    e for e in events.log if isinstance(e, ConversationReconnecting | Error)
                ]
                with pytest.raises(ConversationNotRunning):
                    await engine.send_text("after the hang-up")
            assert len(sim.sessions) == 1


async def test_an_event_over_the_data_channel_message_limit_is_refused_and_the_call_goes_on() -> (
    None
):
    """A 300 KB image is larger than the answer's ``a=max-message-size`` (256 KiB from the
    simulator): aiortc's send raised, the transport failed, and the engine re-dialled a new
    call without the image. The host call now raises ``InvalidRequest`` and nothing else
    changes: the same call takes the next turn."""
    async with open_simulator() as sim:
        config = sim_config(sim, transport="webrtc")
        with trio.fail_after(20):
            async with engine_with_events(config) as (engine, events):
                await engine.start(prompt="")
                await events.until(of_type(SessionUpdated))
                with pytest.raises(InvalidRequest, match="message limit of the WebRTC data"):
                    await engine.send_image(b"\x89PNG\r\n\x1a\n" + bytes(300_000), "image/png")
                # Instructions as large: refused too (they used to be dropped by the writer).
                huge = "be brief. " * 30_000
                with pytest.raises(InvalidRequest, match="message limit"):
                    await engine.update_prompt(huge)
                with pytest.raises(InvalidRequest, match="message limit"):
                    await engine.create_response(instructions=huge)
                with pytest.raises(InvalidRequest, match="message limit"):
                    await engine.update_session(instructions=huge)
                await engine.send_text("still there?")
                done = await events.until(of_type(OutputTranscriptDone, ConversationReconnecting))
                assert isinstance(done[-1], OutputTranscriptDone), done[-1]
                assert done[-1].text == "You said: still there?."
                assert not [
                    e for e in events.log if isinstance(e, ConversationReconnecting | Error)
                ]
            assert len(sim.sessions) == 1
            items = raw_of(sim.sessions[0], "conversation.item.create")
            assert "input_image" not in str(items)


async def _second_text_while_the_first_reply_plays(sim: Simulator, transport: str) -> list[Any]:
    """Send a text, and a second one as soon as the first reply's audio arrives; the host's
    events up to the second reply's ``ResponseDone``."""
    config = sim_config(sim, transport=transport)
    async with engine_with_events(config) as (engine, events):
        await engine.start(prompt="")
        await events.until(of_type(SessionUpdated))
        await engine.send_text("hello number one")
        await events.until(of_type(AudioOut))
        await engine.send_text("hello number two")
        await events.until(of_type(ResponseDone))
        await events.until(of_type(ResponseDone))
        return list(events.log)


def _per_response(log: list[Any]) -> tuple[list[tuple[str, int]], dict[int, str]]:
    """The response-level sequence (event, which response: 0 or 1) and each reply's voicing
    as 20 ms windows (``v`` voiced, ``.`` quiet)."""
    order: dict[str, int] = {}
    sequence: list[tuple[str, int]] = []
    voicing: dict[int, str] = {0: "", 1: ""}
    for event in log:
        response_id = getattr(event, "response_id", None)
        if response_id is None:
            continue
        index = order.setdefault(response_id, len(order))
        if isinstance(event, AudioOut):
            pcm, step = event.frame.pcm, event.frame.sample_rate // 50 * 2
            voicing[index] += "".join(
                "v" if is_voiced(pcm[i : i + step]) else "." for i in range(0, len(pcm), step)
            )
        elif not isinstance(event, OutputTranscriptDelta):
            sequence.append((type(event).__name__, index))
    return sequence, {k: v.strip(".") for k, v in voicing.items()}


async def test_a_second_text_while_the_first_reply_plays_keeps_each_replys_audio() -> None:
    """Regression: the second reply's ``output_audio_buffer.started`` arrives with the first
    one's ``stopped``, ahead of the track. The first reply was ended at once: its last frames
    reached the host tagged as the second reply. Each reply's audio is now its own, and the
    responses end in order (the second reply's ``ResponseCreated`` may come before the
    first one's ``ResponseDone`` on WebRTC: ``_audio_contract``'s docstring)."""
    async with open_simulator() as sim:
        with trio.fail_after(40):
            ws = await _second_text_while_the_first_reply_plays(sim, "websocket")
            rtc = await _second_text_while_the_first_reply_plays(sim, "webrtc")
    ws_sequence, ws_voicing = _per_response(ws)
    rtc_sequence, rtc_voicing = _per_response(rtc)

    def ends(sequence: list[tuple[str, int]]) -> list[tuple[str, int]]:
        return [e for e in sequence if e[0] == "ResponseDone"]

    assert ends(ws_sequence) == [("ResponseDone", 0), ("ResponseDone", 1)]
    assert ends(rtc_sequence) == ends(ws_sequence)
    # Both replies begin alike ("You said: hello number …"): the second does not begin with
    # the first one's last frames, and each is as long as over WebSocket.
    assert rtc_voicing[1][:8] == rtc_voicing[0][:8] == "v" * 8, rtc_voicing
    for index in (0, 1):
        got, want = rtc_voicing[index].count("v"), ws_voicing[index].count("v")
        assert abs(got - want) <= 4 + want // 20, (index, rtc_voicing, ws_voicing)
