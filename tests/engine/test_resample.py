"""Host audio conversion: pass-through for wire-format audio, anti-aliased resampling and
downmixing for everything else, whole samples across odd frame boundaries."""

from __future__ import annotations

import sys

import numpy
import pytest

from duplex.engine._resample import HostAudioConverter, ResamplerUnavailable
from duplex.protocol import AudioFrame


def tone(freq: float, rate: int, seconds: float, channels: int = 1, amp: int = 8000) -> bytes:
    t = numpy.arange(int(rate * seconds)) / rate
    mono = (numpy.sin(2 * numpy.pi * freq * t) * amp).astype("<i2")
    return numpy.repeat(mono, channels).astype("<i2").tobytes()


def frames(pcm: bytes, size: int, rate: int, channels: int) -> list[AudioFrame]:
    return [AudioFrame(pcm[i : i + size], rate, channels) for i in range(0, len(pcm), size)]


def run(converter: HostAudioConverter, chunks: list[AudioFrame]) -> numpy.ndarray:
    out = b"".join(converter.convert(frame) for frame in chunks) + converter.flush()
    return numpy.frombuffer(out, dtype="<i2")


def peak_hz(samples: numpy.ndarray, rate: int) -> float:
    spectrum = numpy.abs(numpy.fft.rfft(samples.astype("float64")))
    return float(numpy.fft.rfftfreq(len(samples), 1 / rate)[int(spectrum.argmax())])


def test_wire_format_audio_passes_through_unchanged() -> None:
    pcm = tone(440, 24000, 0.1)
    converter = HostAudioConverter()
    assert converter.convert(AudioFrame(pcm, 24000, 1)) == pcm
    assert converter.flush() == b""


def test_passes_through_only_when_convert_would_change_nothing() -> None:
    converter = HostAudioConverter()
    wire = AudioFrame(bytes(960), 24000, 1)
    assert not converter.passes_through(wire)  # no stream yet: the first frame opens it
    converter.convert(wire)
    assert converter.passes_through(wire)
    assert not converter.passes_through(AudioFrame(bytes(961), 24000, 1))  # half a sample
    assert not converter.passes_through(AudioFrame(bytes(640), 16000, 1))  # another rate
    converter.convert(AudioFrame(bytes(961), 24000, 1))  # a byte is now carried
    assert not converter.passes_through(wire)
    converter.convert(AudioFrame(bytes(961), 24000, 1))
    assert converter.passes_through(wire)
    converter.convert(AudioFrame(bytes(640), 16000, 1))  # the resampler holds a tail
    assert not converter.passes_through(wire)


def test_48k_stereo_becomes_24k_mono_with_the_same_pitch() -> None:
    pcm = tone(440, 48000, 1.0, channels=2)
    out = run(HostAudioConverter(), frames(pcm, 1920 * 2, 48000, 2))
    assert abs(len(out) - 24000) <= 48
    assert abs(peak_hz(out, 24000) - 440) < 2


def test_content_above_the_new_nyquist_is_filtered_not_aliased() -> None:
    # 20 kHz at 48 kHz: a plain interpolation folds it to 4 kHz at nearly full amplitude.
    pcm = tone(20000, 48000, 0.5, amp=10000)
    out = run(HostAudioConverter(), frames(pcm, 1920, 48000, 1))
    steady = out[len(out) // 4 : -len(out) // 4].astype("float64")
    assert numpy.sqrt(numpy.mean(steady**2)) < 100  # input RMS ≈ 7071


def test_odd_frame_boundaries_keep_sample_alignment() -> None:
    pcm = tone(440, 16000, 0.5)
    whole = run(HostAudioConverter(), [AudioFrame(pcm, 16000, 1)])
    odd = run(HostAudioConverter(), frames(pcm, 641, 16000, 1))
    assert len(odd) == len(whole)
    # Chunked filtering rounds differently by a count or two; a byte shift would be noise.
    assert numpy.max(numpy.abs(odd.astype(int) - whole.astype(int))) <= 4


def test_odd_frames_at_the_wire_rate_are_realigned() -> None:
    pcm = tone(440, 24000, 0.1)
    converter = HostAudioConverter()
    out = b"".join(converter.convert(f) for f in frames(pcm, 961, 24000, 1))
    assert out == pcm[: len(out)]
    assert len(pcm) - len(out) < 2


def test_a_format_switch_flushes_the_previous_stream() -> None:
    converter = HostAudioConverter()
    first = converter.convert(AudioFrame(tone(440, 16000, 0.2), 16000, 1))
    second = converter.convert(AudioFrame(tone(440, 24000, 0.1), 24000, 1))
    # All of the 16 kHz stream (0.2 s → 4 800 samples at 24 kHz) comes out by the switch.
    assert abs((len(first) + len(second)) // 2 - 4800 - 2400) <= 24


def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "soxr", None)
    converter = HostAudioConverter()
    converter.check_supported(AudioFrame(b"\0\0" * 480, 24000, 1))  # no resampling needed
    with pytest.raises(ResamplerUnavailable, match=r"duplex\[resample\]"):
        converter.check_supported(AudioFrame(b"\0\0" * 320, 16000, 1))
