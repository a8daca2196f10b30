"""The WebRTC media path's cost levers (docs/perf/webrtc.md), against a loopback aiortc
answerer: Opus-only offer asking for DTX, host silence suppressed after a hangover, larger
packet times, and the aiortc behaviour each relies on (pinned here: aiortc sends the
``av.Packet``s a track returns as they are, and sends nothing while ``recv()`` waits)."""

from __future__ import annotations

import asyncio
from typing import Any

import av
import numpy as np
import pytest
import trio

from duplex.protocol._audio import AudioFrame
from duplex.transports import WebRTCTransport, connect_webrtc
from duplex.transports._rtc_asyncio import (
    OutboundAudioTrack,
    answer_max_message_size,
    answer_maxptime,
    offer_with_opus_dtx,
)
from duplex.transports._rtc_inbound import SILENCE_PEAK, peak

from ._poll import wait_for
from ._rtc_peer import AnswerPeer, AnswerServer, serve_answerer

API_KEY = "sk-test-webrtc-media-0001"
SESSION = {"type": "realtime", "model": "gpt-realtime"}


async def _connect(
    nursery: trio.Nursery, server: AnswerServer, **kwargs: object
) -> WebRTCTransport:
    return await connect_webrtc(
        nursery,
        base_url=server.base_url,
        api_key=API_KEY,
        session=SESSION,
        **kwargs,  # type: ignore[arg-type]
    )


def _tone(ms: int, hz: float = 440.0) -> list[AudioFrame]:
    """``ms`` of a tone as 20 ms host frames."""
    n = np.arange(ms * 24)
    pcm = (np.sin(2 * np.pi * hz * n / 24_000) * 8000).astype(np.int16).tobytes()
    return [AudioFrame(pcm[i : i + 960]) for i in range(0, len(pcm), 960)]


def _dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def _suppressed(track: OutboundAudioTrack) -> bool:
    return track.suppressed  # read afresh (the bridge loop changes it)


async def _send_paced(transport: WebRTCTransport, frames: list[AudioFrame]) -> None:
    next_at = trio.current_time()
    for frame in frames:
        await transport.send_audio(frame)
        next_at += 0.02
        await trio.sleep_until(next_at)


async def test_the_offer_is_opus_only_and_asks_for_dtx() -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            transport = await _connect(nursery, server)
            offer = server.requests[0]["offer"]
            rtpmaps = [line for line in offer.splitlines() if line.startswith("a=rtpmap:")]
            assert rtpmaps
            assert all("opus/48000" in line.lower() for line in rtpmaps), rtpmaps
            assert any(
                line.startswith("a=fmtp:") and line.endswith("usedtx=1")
                for line in offer.splitlines()
            ), offer
            await transport.aclose()


async def test_host_silence_stops_packets_after_the_hangover_and_sound_resumes_them() -> None:
    # 300 ms of tone, then the host keeps sending digital silence: the track sends the tone
    # and ~200 ms of silence (the hangover), then nothing at all; the next tone goes out
    # at once and is heard. 60 ms packets: the peer's aiortc decodes them as they come.
    with trio.fail_after(20):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            transport = await _connect(nursery, server, silence_hangover_ms=200, ptime_ms=60)
            peer: AnswerPeer = await server.accept()
            track = transport._rtc.track
            first = track.packets_sent  # silence since the connection opened (then suppressed)
            await _send_paced(transport, _tone(300))
            silence = [AudioFrame(bytes(960))] * 40  # 800 ms of digital silence
            await _send_paced(transport, silence[:25])  # past the hangover, then 300 ms more
            assert track.suppressed
            assert track.packets_suppressed >= 1
            sent_before = track.packets_sent
            received_before = len(peer.audio_frames)
            await _send_paced(transport, silence[25:])  # 300 ms: nothing may go out
            assert track.packets_sent == sent_before
            assert len(peer.audio_frames) - received_before <= 1  # at most one in flight
            # 5 packets of tone, 3 of hangover (60 ms each), give or take one held packet
            assert 7 <= sent_before - first <= 10, (first, sent_before)
            heard_before = len(peer.audio_frames)
            await _send_paced(transport, _tone(400, hz=880.0))
            assert not _suppressed(track)

            def resumed() -> np.ndarray:
                """The received audio from the first to the last loud sample."""
                audio = np.concatenate(peer.audio_frames[heard_before:] or [np.zeros(0)])
                loud = np.flatnonzero(np.abs(audio) > 2000)
                return audio[loud[0] : loud[-1]] if len(loud) else audio[:0]

            await wait_for(lambda: len(resumed()) > 0.3 * 48_000, 0.02)  # most of the tone
            assert abs(_dominant_hz(resumed(), 48_000) - 880) < 10
            await transport.aclose()


async def test_no_silence_hangover_sends_silence_for_ever() -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            transport = await _connect(nursery, server, silence_hangover_ms=None, ptime_ms=20)
            peer = await server.accept()
            await wait_for(lambda: len(peer.audio_frames) >= 75, 0.02)  # 1.5 s, no host audio
            assert not transport._rtc.track.suppressed
            await transport.aclose()


async def test_a_packet_time_other_than_20_40_60_is_refused() -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            with pytest.raises(ValueError, match="ptime_ms"):
                await _connect(nursery, server, ptime_ms=30)
            assert server.requests == []


def test_answer_maxptime_is_the_smallest_stated() -> None:
    sdp = "v=0\r\nm=audio 9 x 111\r\na=maxptime:60\r\na=maxptime:40.0\r\na=maxptime:x\r\n"
    assert answer_maxptime(sdp) == 40
    assert answer_maxptime("v=0\r\na=ptime:20\r\n") is None


def test_the_answer_max_message_size_is_stated_64_kib_by_default_or_unlimited_for_0() -> None:
    assert answer_max_message_size("v=0\r\na=max-message-size:262144\r\n") == 262144
    assert answer_max_message_size("v=0\r\na=sctp-port:5000\r\n") == 65536
    assert answer_max_message_size("v=0\r\na=max-message-size:0\r\n") is None


def test_a_smaller_answer_maxptime_lowers_the_packet_time_before_the_first_packet() -> None:
    track = OutboundAudioTrack(ptime_ms=60)
    track.set_ptime(40)
    assert track.ptime_ms == 40
    track.set_ptime(30)  # not an Opus packet time: ignored
    assert track.ptime_ms == 40


def test_usedtx_is_added_to_opus_fmtp_lines_only() -> None:
    sdp = "\r\n".join(
        [
            "a=rtpmap:111 opus/48000/2",
            "a=fmtp:111 minptime=10;useinbandfec=1",
            "a=rtpmap:0 PCMU/8000",
            "a=fmtp:0 x=1",
            "",
        ]
    )
    out = offer_with_opus_dtx(sdp).split("\r\n")
    assert out[1] == "a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1"
    assert out[3] == "a=fmtp:0 x=1"
    assert offer_with_opus_dtx("\r\n".join(out)) == "\r\n".join(out)  # idempotent
    bare = offer_with_opus_dtx("a=rtpmap:96 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n")
    assert bare.split("\r\n")[:3] == [
        "a=rtpmap:96 opus/48000/2",
        "a=fmtp:96 usedtx=1",
        "a=rtpmap:0 PCMU/8000",
    ]


def test_peak_is_the_largest_absolute_sample() -> None:
    assert peak(b"") == 0
    assert peak(np.array([3, -32768, 5], np.int16).tobytes()) == 32768
    assert peak(np.array([-3, 7], np.int16).tobytes()) == 7


class _RecordingTrack(OutboundAudioTrack):
    """Records, per packet sent, whether the host audio in it was loud."""

    def __init__(self) -> None:
        super().__init__()  # the defaults: ptime 20 ms, hangover 1 s, 2 s buffered
        self.loud: list[bool] = []

    def _encode(self, data: bytes, pts: int) -> av.Packet[Any]:
        self.loud.append(peak(data) > SILENCE_PEAK)
        return super()._encode(data, pts)


def test_speech_queued_behind_a_silence_longer_than_the_hangover_is_sent() -> None:
    """A host feeding ahead of real time (a file, the backlog after a reconnect): 200 ms of
    tone, 1.2 s of silence, 400 ms of tone, all queued at once. When the hangover expired
    the track cleared its whole buffer, so the second tone (20 packets) was never sent and
    not counted as dropped either. Suppression now waits until nothing loud is buffered."""
    track = _RecordingTrack()
    pcm = b"".join(f.pcm for f in _tone(200)) + bytes(1200 * 48)
    pcm += b"".join(f.pcm for f in _tone(400))
    for i in range(0, len(pcm), 960):
        track.feed(pcm[i : i + 960])

    async def pull_until_both_tones_are_out() -> None:
        while sum(track.loud) < 30:
            await track.recv()

    async def main() -> None:
        try:
            # 1.8 s of audio at real time; a suppressed track would wait for ever.
            await asyncio.wait_for(pull_until_both_tones_are_out(), timeout=6)
        finally:
            track.stop()

    asyncio.run(main())
    assert track.frames_dropped == 0
    # In order: the first tone, the silence (every packet of it: it was queued), the second.
    assert track.loud == [True] * 10 + [False] * 60 + [True] * 20
