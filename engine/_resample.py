"""Host audio of any rate and channel count → the wire's mono PCM16 at the session rate.

Hosts hand the engine whatever their device produced (48 kHz stereo, 16 kHz mono, …). Frames
already in the wire format pass through untouched, with no third-party import, so the core
install needs nothing for them. Anything else is downmixed by averaging and resampled with
libsoxr (``soxr``, the optional ``duplex[resample]`` extra): a streaming, anti-aliased
resampler whose state carries across frames, so a stream fed in frames of any size joins
without clicks.

Invariants:
- Output is whole mono PCM16 samples at ``target_rate``; an odd trailing byte of a frame is
  carried into the next frame of the same stream, never dropped or shifted.
- A change of source rate or channel count starts a new resampler stream (the old one's
  filter tail is flushed first, so no audio is lost at the switch).
- Without the extra, ``check_supported`` names it before any frame is accepted.
- ``steady=True`` (the G.711 transcoding of a WebRTC call, ``_g711``): every chunk gives
  its share of output (20 ms in, 20 ms out once the filter has filled), never lumps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from duplex.protocol import WIRE_SAMPLE_RATE, AudioFrame

from ._errors import EngineError

if TYPE_CHECKING:
    import numpy

__all__ = ["HostAudioConverter", "ResamplerUnavailable"]

# libsoxr's "high quality": anti-aliased, a few ms of delay, ~12 µs per 20 ms frame here
# (see docs/perf/audio.md); the very-high setting costs the same but adds delay.
QUALITY: Final = "HQ"
# libsoxr's fixed-rate engine filters in DFT blocks: fed 20 ms at a time, 24 → 8 kHz gives
# [0, 0, 0, 490, 0, 0, 489, …] samples (LQ/MQ/VHQ lump the same way; QQ is steady but is a
# cubic interpolation with no anti-aliasing at all: a 6 kHz tone comes out at 0 dB). Its
# variable-rate engine (``vr=True``, soxr >= 1.1) is a polyphase filter that gives every
# chunk its share after a fixed delay (25 ms at 24 → 8 kHz, 30 ms at 8 → 24 kHz), and is
# still anti-aliased: flat to 3.8 kHz, >= 87 dB down from 4 kHz at int16. It costs ~20 µs
# more per 20 ms frame (docs/perf/audio.md), so only the paths that need steady output
# (a real-time track or a host's jitter buffer on the other side) use it.
STEADY: Final = {"quality": QUALITY, "vr": True}


class ResamplerUnavailable(EngineError, RuntimeError):
    """Host audio needs resampling and the optional ``duplex[resample]`` extra is missing."""


def _load() -> tuple[Any, Any]:
    try:
        import numpy
        import soxr
    except ImportError as exc:
        raise ResamplerUnavailable(
            "host audio at a rate or channel count other than the session's needs the "
            "optional resampler: pip install 'duplex[resample]' "
            f"(or send {WIRE_SAMPLE_RATE} Hz mono PCM16) — {exc}"
        ) from exc
    return numpy, soxr


class HostAudioConverter:
    """Stateful converter of one host audio stream to mono PCM16 at ``target_rate``."""

    def __init__(self, target_rate: int = WIRE_SAMPLE_RATE, *, steady: bool = False) -> None:
        if target_rate <= 0:
            raise ValueError(f"target rate must be positive, got {target_rate}")
        self.target_rate = target_rate
        self.steady = steady
        self._options: dict[str, Any] = dict(STEADY) if steady else {"quality": QUALITY}
        self._source: tuple[int, int] | None = None  # (rate, channels) of the open stream
        self._stream: Any = None
        self._carry = b""  # an odd trailing byte of the previous frame

    def needs_resampling(self, frame: AudioFrame) -> bool:
        return frame.sample_rate != self.target_rate or frame.channels != 1

    def check_supported(self, frame: AudioFrame) -> None:
        """Raise ``ResamplerUnavailable`` now if ``frame`` could not be converted later."""
        if self.needs_resampling(frame):
            _load()

    def passes_through(self, frame: AudioFrame) -> bool:
        """``convert(frame)`` would return ``frame.pcm`` unchanged (already at the target
        rate, mono, whole samples, the same source as before and nothing carried)."""
        return (
            frame.sample_rate == self.target_rate
            and frame.channels == 1
            and self._source == (frame.sample_rate, 1)
            and not self._carry
            and not len(frame.pcm) % 2
        )

    def convert(self, frame: AudioFrame) -> bytes:
        """``frame`` as mono PCM16 bytes at ``target_rate`` (may be empty while the filter
        fills)."""
        data = self._carry + frame.pcm if self._carry else frame.pcm
        key = (frame.sample_rate, frame.channels)
        flushed = b""
        if key != self._source:
            flushed = self.flush()
            self._source = key
        whole = len(data) - len(data) % (2 * frame.channels)
        self._carry = data[whole:]
        data = data[:whole]
        if not self.needs_resampling(frame):
            return flushed + data
        numpy, soxr = _load()
        samples = numpy.frombuffer(data, dtype="<i2")
        if frame.channels > 1:
            samples = self._downmix(numpy, samples, frame.channels)
        if self._stream is None:
            self._stream = soxr.ResampleStream(
                frame.sample_rate, self.target_rate, 1, dtype="int16", **self._options
            )
        out = self._stream.resample_chunk(samples)
        return flushed + bytes(out.astype("<i2", copy=False).tobytes())

    def flush(self) -> bytes:
        """The resampler's buffered tail (end of a stream or a format switch)."""
        stream, self._stream = self._stream, None
        if stream is None:
            return b""
        numpy, _ = _load()
        tail = stream.resample_chunk(numpy.zeros(0, dtype="int16"), last=True)
        return bytes(tail.astype("<i2", copy=False).tobytes())

    def reset(self) -> None:
        """Drop the buffered tail: what comes next is not a continuation (a barge-in cut the
        audio the tail belongs to)."""
        self._stream = None

    @staticmethod
    def _downmix(numpy: Any, samples: numpy.ndarray[Any, Any], channels: int) -> Any:
        frames = samples[: len(samples) - len(samples) % channels].reshape(-1, channels)
        return frames.mean(axis=1, dtype="float64").round().astype("int16")
