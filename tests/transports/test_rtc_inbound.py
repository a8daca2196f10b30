"""``RemoteAudio``: the model's track turned into the engine's real-time frames, without I/O
(frames and wall times in, deliveries out; ``transports/_rtc_inbound.py``)."""

from __future__ import annotations

import fractions

import av
import numpy as np

from duplex.protocol._audio import AudioFrame
from duplex.transports._rtc_inbound import PAUSE_GRACE_S, QUIET_BATCH, RemoteAudio

RATE = 48_000
SAMPLES = 960  # 20 ms at 48 kHz, what aiortc's Opus decoder hands out
FRAME_S = 0.02


def decoded(index: int, *, loud: bool) -> av.AudioFrame:
    """Frame ``index`` of a 48 kHz stereo track (pts on the RTP clock), a tone or silence."""
    t = np.arange(SAMPLES) / RATE
    mono = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2") if loud else np.zeros(SAMPLES, "<i2")
    frame = av.AudioFrame(format="s16", layout="stereo", samples=SAMPLES)
    frame.planes[0].update(np.repeat(mono, 2).tobytes())
    frame.sample_rate = RATE
    frame.pts = index * SAMPLES
    frame.time_base = fractions.Fraction(1, RATE)
    return frame


class Out:
    """What ``RemoteAudio`` delivered, in order: ("one"|"batch"|"fill", frames)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, tuple[AudioFrame, ...]]] = []

    def audio(self, hangover: int | None = 3) -> RemoteAudio:
        return RemoteAudio(
            lambda f: self.log.append(("one", (f,))),
            lambda fs: self.log.append(("batch", fs)),
            lambda fs: self.log.append(("fill", fs)),
            hangover_frames=hangover,
        )

    def count(self, kind: str) -> int:
        return sum(len(frames) for k, frames in self.log if k == kind)

    def total_ms(self) -> float:
        return sum(f.duration_ms for _, frames in self.log for f in frames)


def stream(audio: RemoteAudio, first: int, loud: list[bool], at: float) -> float:
    """Feed frames ``first…`` on time (one per 20 ms from ``at``); return the next time."""
    for offset, is_loud in enumerate(loud):
        audio.on_frame(decoded(first + offset, loud=is_loud), at)
        at += FRAME_S
    return at


def test_a_pause_after_silence_is_filled_with_the_wall_time_that_passed() -> None:
    out = Out()
    audio = out.audio()
    now = stream(audio, 0, [True] * 5 + [False] * 6, 10.0)
    last = now - FRAME_S
    audio.fill(last + 0.2)  # 200 ms without a frame: the sender paused
    expected = round((0.2 - PAUSE_GRACE_S) / FRAME_S)
    assert out.count("fill") == expected == audio.frames_filled
    filled = [f for kind, fs in out.log if kind == "fill" for f in fs]
    assert all(not any(f.pcm) and (f.sample_rate, f.duration_ms) == (24_000, 20) for f in filled)
    audio.fill(last + 0.5)  # a later tick goes on from where the last one stopped
    assert out.count("fill") == round((0.5 - PAUSE_GRACE_S) / FRAME_S)
    # Made-up frames are not the peer's: liveness reads frames_received.
    assert audio.frames_received == 11


def test_frames_that_arrive_on_time_are_never_pre_empted() -> None:
    out = Out()
    audio = out.audio()
    now = 10.0
    for index in range(100):  # a server streaming silence, a tick between every two frames
        audio.on_frame(decoded(index, loud=False), now)
        audio.fill(now + 0.019)
        now += FRAME_S
    assert audio.frames_filled == 0
    audio.end()
    assert abs(out.total_ms() - 100 * 20) < 1  # all of it (less the resampler's delay)


def test_a_stall_after_sound_is_not_filled() -> None:
    out = Out()
    audio = out.audio()
    now = stream(audio, 0, [True] * 5, 10.0)
    audio.fill(now + 1.0)  # packets lost mid-speech: nothing to make up
    assert out.count("fill") == 0


def test_late_quiet_frames_of_a_filled_stretch_are_dropped_but_sound_never_is() -> None:
    out = Out()
    audio = out.audio()
    now = stream(audio, 0, [True] * 3 + [False] * 2, 10.0)
    audio.fill(now + 0.3)  # the jitter buffer held frames 5…8 through the pause
    filled = out.count("fill")
    assert filled > 4
    for index in range(5, 9):
        audio.on_frame(decoded(index, loud=False), now + 0.4)
    assert audio.frames_superseded == 4
    assert out.count("fill") == filled  # …and nothing more was delivered for them
    delivered = len(out.log)
    audio.on_frame(decoded(9, loud=True), now + 0.41)  # sound inside the filled stretch
    assert len(out.log) == delivered + 1
    assert out.log[-1][0] == "one"
    assert audio.frames_received == 3 + 2 + 4 + 1


def test_an_rtp_gap_after_silence_is_a_pause_and_after_sound_is_loss() -> None:
    out = Out()
    audio = out.audio()
    now = stream(audio, 0, [False] * 3, 10.0)
    now = stream(audio, 23, [False], now + 0.4)  # a DTX keepalive, 20 frames later
    assert (audio.frames_paused, audio.frames_missing) == (20, 0)
    now = stream(audio, 24, [True], now)
    stream(audio, 27, [True], now)  # two frames lost mid-speech
    assert (audio.frames_paused, audio.frames_missing) == (20, 2)


def test_streamed_silence_past_the_hangover_goes_in_batches_after_the_sound() -> None:
    out = Out()
    audio = out.audio(hangover=2)
    stream(audio, 0, [True] + [False] * (2 + QUIET_BATCH) + [True], 10.0)
    kinds = [kind for kind, _ in out.log]
    # the sound, the hangover's two frames one by one, one batch, the next sound
    assert kinds == ["one", "one", "one", "batch", "one"]
    assert out.count("batch") == QUIET_BATCH == audio.frames_batched
    assert audio.frames_filled == 0


def test_the_end_delivers_held_silence() -> None:
    out = Out()
    audio = out.audio(hangover=0)
    stream(audio, 0, [False] * 2, 10.0)
    assert out.log == []
    audio.end()
    assert out.count("batch") == 2
