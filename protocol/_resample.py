"""Converting host audio of any rate and channel count to the wire's 24 kHz mono PCM16.

Hosts hand the engine whatever their device produced (48 kHz stereo, 16 kHz mono, …). This is
the small, dependency-free converter for that: downmix by averaging, then linear
interpolation, carrying the fractional phase and the last sample across calls so consecutive
frames join without clicks. It is not a studio resampler (no anti-aliasing filter): speech
models are robust to it, and hosts that care can resample before calling the engine.

Invariants:
- Output is always whole PCM16 mono samples at ``target_rate``.
- Feeding a stream in frames of any size yields the same samples as feeding it at once, up
  to the final partial interpolation step (the phase is carried, not restarted).
"""

from __future__ import annotations

import sys
from array import array

from ._audio import WIRE_SAMPLE_RATE, AudioFrame
from ._errors import LocalProtocolError

__all__ = ["Resampler"]

_BIG_ENDIAN = sys.byteorder == "big"


class Resampler:
    """Stateful converter of one input stream to mono PCM16 at ``target_rate``."""

    def __init__(self, target_rate: int = WIRE_SAMPLE_RATE) -> None:
        if target_rate <= 0:
            raise LocalProtocolError(f"target rate must be positive, got {target_rate}")
        self.target_rate = target_rate
        self._source_rate: int | None = None
        self._position = 0.0  # next output position, in input samples relative to _last
        self._last: int | None = None  # last input sample of the previous call

    def convert(self, frame: AudioFrame) -> AudioFrame:
        """``frame`` as mono PCM16 at ``target_rate`` (returned as-is when it already is)."""
        if frame.channels == 1 and frame.sample_rate == self.target_rate:
            return frame
        if frame.sample_rate <= 0 or frame.channels <= 0:
            raise LocalProtocolError(
                f"invalid audio shape: {frame.sample_rate} Hz, {frame.channels} channels"
            )
        if frame.sample_rate != self._source_rate:
            # A new input rate restarts the stream (a device change): no phase to carry.
            self._source_rate = frame.sample_rate
            self._position = 0.0
            self._last = None
        mono = _downmix(frame.pcm, frame.channels)
        if frame.sample_rate == self.target_rate:
            out = mono
        else:
            out = self._interpolate(mono, frame.sample_rate)
        if _BIG_ENDIAN:
            out.byteswap()
        return AudioFrame(out.tobytes(), self.target_rate, 1)

    def _interpolate(self, samples: array[int], source_rate: int) -> array[int]:
        if self._last is not None:
            src = array("h", [self._last])
            src.extend(samples)
        else:
            src = samples
        step = source_rate / self.target_rate
        pos = self._position
        out = array("h")
        limit = len(src) - 1
        while pos < limit:
            i = int(pos)
            frac = pos - i
            a = src[i]
            out.append(int(a + (src[i + 1] - a) * frac))
            pos += step
        if len(src):
            self._last = src[-1]
            self._position = pos - limit
        return out


def _downmix(pcm: bytes, channels: int) -> array[int]:
    samples = array("h")
    usable = len(pcm) - len(pcm) % (2 * channels)
    samples.frombytes(pcm[:usable])
    if _BIG_ENDIAN:
        samples.byteswap()
    if channels == 1:
        return samples
    mono = array("h", bytes(2 * (len(samples) // channels)))
    for i in range(len(mono)):
        base = i * channels
        mono[i] = sum(samples[base : base + channels]) // channels
    return mono
