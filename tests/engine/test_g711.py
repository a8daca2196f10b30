"""G.711 transcoding for WebRTC telephony calls (``engine/_g711.py``): steady 20 ms frames
both ways, anti-aliased, and a per-item to-host stream whose tail can be flushed or dropped."""

from __future__ import annotations

import warnings

import numpy

from duplex.engine._g711 import G711Transcoder
from duplex.protocol import AudioFrame

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


def tone(freq: float, rate: int, ms: int, amp: int = 9000) -> bytes:
    t = numpy.arange(rate * ms // 1000) / rate
    return (numpy.sin(2 * numpy.pi * freq * t) * amp).astype("<i2").tobytes()


def track_frames(pcm: bytes) -> list[AudioFrame]:
    return [AudioFrame(pcm[i : i + 960]) for i in range(0, len(pcm), 960)]  # 20 ms at 24 kHz


def decoded(ulaw: bytes) -> numpy.ndarray:
    return numpy.frombuffer(audioop.ulaw2lin(ulaw, 2), dtype="<i2")


def test_track_audio_reaches_the_host_as_steady_20ms_frames() -> None:
    """soxr's block resampler gave [0, 0, 0, 490, 0, 0, 489, …] samples per 20 ms frame:
    empty AudioOut for two frames in three, ~61 ms lumps for the rest."""
    g711 = G711Transcoder("pcmu")
    sizes = [len(g711.to_host(f).pcm) for f in track_frames(tone(440, 24000, 400))]
    assert sizes[0] < 160  # the filter fills (its delay is 25 ms)
    assert all(0 < size <= 160 for size in sizes[1:2])
    assert sizes[2:] == [160] * (len(sizes) - 2)


def test_host_g711_reaches_the_track_as_steady_20ms_frames() -> None:
    """The block resampler's 1468-sample lumps every third frame left the track with
    nothing to send in between: silent packets inside a continuous tone."""
    g711 = G711Transcoder("pcmu")
    ulaw = audioop.lin2ulaw(tone(300, 8000, 400), 2)
    sizes = [
        len(g711.to_track(AudioFrame(ulaw[i : i + 160], 8000, 1, "pcmu")).pcm) // 2
        for i in range(0, len(ulaw), 160)
    ]
    assert sizes[2:] == [480] * (len(sizes) - 2)
    assert sum(sizes[:2]) > 0


def test_an_items_flushed_tail_makes_it_whole() -> None:
    g711 = G711Transcoder("pcmu")
    pcm = tone(440, 24000, 200)
    out = b"".join(g711.to_host(f).pcm for f in track_frames(pcm)) + g711.flush_host().pcm
    assert len(out) == 200 * 8  # 200 ms in, 200 ms of 8 kHz μ-law out
    assert numpy.abs(decoded(out[-160:])).max() > 4000  # the end is the tone, not silence


def test_a_reset_drops_the_tail_so_the_next_stream_starts_clean() -> None:
    g711 = G711Transcoder("pcmu")
    for frame in track_frames(tone(440, 24000, 200)):
        g711.to_host(frame)
    g711.reset_host()
    quiet = numpy.zeros(480 * 10, dtype="<i2").tobytes()
    out = b"".join(g711.to_host(f).pcm for f in track_frames(quiet)) + g711.flush_host().pcm
    assert numpy.abs(decoded(out)).max() < 16  # nothing of the tone before the reset


def test_a_law_sessions_get_a_law() -> None:
    g711 = G711Transcoder("pcma")
    out = b"".join(g711.to_host(f).pcm for f in track_frames(tone(440, 24000, 100)))
    out += g711.flush_host().pcm
    assert len(out) == 800
    assert numpy.abs(numpy.frombuffer(audioop.alaw2lin(out, 2), dtype="<i2")).max() > 8000


def test_content_above_4khz_is_filtered_not_aliased_on_the_way_to_the_host() -> None:
    g711 = G711Transcoder("pcmu")
    out = b"".join(g711.to_host(f).pcm for f in track_frames(tone(6000, 24000, 400)))
    # A 6 kHz tone would alias to 2 kHz at full level without the anti-aliasing filter
    # (soxr's only other steady setting, QQ, has none); μ-law's own floor is a few LSBs.
    # The tone's abrupt start is broadband: judged once it is under way.
    assert numpy.abs(decoded(out)[400:]).max() < 64
