"""Audio for the simulator: deterministic speech-like synthesis, energy VAD, resampling.

Pure functions and one small state machine; no I/O, no clocks. Time is counted in samples of
the 24 kHz mono PCM16 wire format (openai-realtime-protocol.md §6).

Invariants:
- ``synthesize`` is a pure function of its text: same text, same bytes. Its output is a whole
  number of samples and never clips.
- ``EnergyVad`` counts time from the first sample it was ever fed (the session's first audio),
  so ``audio_start_ms``/``audio_end_ms`` are session-absolute like the real server's.
- ``to_wire_pcm`` turns any PCM16 layout (e.g. WebRTC's 48 kHz stereo) into 24 kHz mono.
- G.711 (``audio/pcmu`` μ-law, ``audio/pcma`` A-law) is 8 kHz, one byte per sample: 8 000
  bytes/s. ``G711Decoder`` turns a stream of it into 24 kHz PCM16 (carrying the resampler
  state across chunks); ``encode_g711`` turns a whole 24 kHz PCM16 reply into it.

The G.711 codec and its 8 ↔ 24 kHz rate change come from the standard library's ``audioop``
(present in Python 3.11 and 3.12; deprecated, and removed in 3.13, where the drop-in
``audioop-lts`` package provides the same module). Its import warning is silenced here, once.
"""

from __future__ import annotations

import warnings
from typing import Final, Literal

import attrs
import numpy as np
import numpy.typing as npt

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = [
    "FRAME_MS",
    "G711_RATE",
    "SAMPLE_RATE",
    "EnergyVad",
    "G711Decoder",
    "G711Law",
    "encode_g711",
    "g711_law",
    "peak",
    "VadEdge",
    "synthesize",
    "to_wire_pcm",
    "tone",
]

SAMPLE_RATE: Final = 24_000
FRAME_MS: Final = 20
_FRAME_SAMPLES: Final = SAMPLE_RATE * FRAME_MS // 1000
G711_RATE: Final = 8_000
_CHAR_MS: Final = 55

#: ``"ulaw"`` for ``audio/pcmu``, ``"alaw"`` for ``audio/pcma``
G711Law = Literal["ulaw", "alaw"]


def g711_law(format_type: object) -> G711Law | None:
    """The G.711 law of a GA ``format.type``, or ``None`` for PCM (or anything else)."""
    if format_type == "audio/pcmu":
        return "ulaw"
    if format_type == "audio/pcma":
        return "alaw"
    return None


class G711Decoder:
    """A stream of G.711 8 kHz bytes → 24 kHz mono PCM16, chunk by chunk."""

    def __init__(self, law: G711Law) -> None:
        self.law = law
        self._state: tuple[int, tuple[tuple[int, int], ...]] | None = None

    def decode(self, data: bytes) -> bytes:
        if not data:
            return b""
        pcm8 = audioop.ulaw2lin(data, 2) if self.law == "ulaw" else audioop.alaw2lin(data, 2)
        pcm24, self._state = audioop.ratecv(pcm8, 2, 1, G711_RATE, SAMPLE_RATE, self._state)
        return pcm24


def encode_g711(pcm: bytes, law: G711Law) -> bytes:
    """24 kHz mono PCM16 → G.711 8 kHz (one byte per output sample)."""
    if not pcm:
        return b""
    pcm8, _ = audioop.ratecv(pcm, 2, 1, SAMPLE_RATE, G711_RATE, None)
    return audioop.lin2ulaw(pcm8, 2) if law == "ulaw" else audioop.lin2alaw(pcm8, 2)


_VOWELS: Final = "aeiouyAEIOUY"


def tone(ms: int, freq: float = 440.0, amplitude: float = 0.3) -> bytes:
    """``ms`` of a sine tone as PCM16 (handy for tests that need "speech")."""
    n = SAMPLE_RATE * ms // 1000
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    return (wave * 32767).astype("<i2").tobytes()


def synthesize(text: str) -> bytes:
    """Vowel-like audio for ``text``: one 55 ms segment per character.

    Vowels are a 130 Hz glottal buzz shaped by two formants, consonants a quieter deterministic
    noise burst, spaces and punctuation silence. Each segment has a raised-cosine envelope so
    segment joins do not click. This is not speech; it only has to sound like *something*
    and be deterministic.
    """
    seg = SAMPLE_RATE * _CHAR_MS // 1000
    t = np.arange(seg, dtype=np.float64) / SAMPLE_RATE
    env = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(seg) / seg)
    out = np.zeros(seg * max(1, len(text)), dtype=np.float64)
    for i, ch in enumerate(text):
        code = ord(ch)
        if ch in _VOWELS:
            f1 = 300.0 + (code % 7) * 90.0
            f2 = 900.0 + (code % 11) * 140.0
            buzz = np.sin(2 * np.pi * 130.0 * t)
            wave = 0.5 * buzz + 0.3 * np.sin(2 * np.pi * f1 * t) + 0.2 * np.sin(2 * np.pi * f2 * t)
            amp = 0.35
        elif ch.isalnum():
            # Seeded by the character: deterministic noise (PCG64 streams are stable).
            wave = np.random.default_rng(code).uniform(-1.0, 1.0, seg)
            amp = 0.12
        else:
            continue
        out[i * seg : (i + 1) * seg] = amp * env * wave
    return (np.clip(out, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def peak(pcm: bytes) -> int:
    """The largest absolute sample of PCM16 ``pcm`` (0 when empty)."""
    return int(audioop.max(pcm[: len(pcm) - len(pcm) % 2], 2))


def to_wire_pcm(pcm: bytes, sample_rate: int, channels: int) -> bytes:
    """Convert interleaved PCM16 at any rate/channel count to 24 kHz mono PCM16."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % (2 * channels)], dtype="<i2")
    mono: npt.NDArray[np.float64]
    if channels > 1:
        mono = samples.reshape(-1, channels).astype(np.float64).mean(axis=1)
    else:
        mono = samples.astype(np.float64)
    if sample_rate == SAMPLE_RATE:
        resampled = mono
    elif sample_rate == 2 * SAMPLE_RATE:
        # The WebRTC case (48 kHz): average sample pairs, a cheap low-pass + decimate.
        even = mono[: len(mono) - len(mono) % 2]
        resampled = even.reshape(-1, 2).mean(axis=1)
    else:
        n_out = len(mono) * SAMPLE_RATE // sample_rate
        x_out = np.arange(n_out, dtype=np.float64) * (sample_rate / SAMPLE_RATE)
        resampled = np.interp(x_out, np.arange(len(mono), dtype=np.float64), mono)
    return np.clip(resampled, -32768, 32767).astype("<i2").tobytes()


@attrs.frozen
class VadEdge:
    """A speech boundary: ``kind`` is ``"start"`` or ``"stop"``; ``ms`` is session-absolute.

    ``buffer_ms`` is where the edge falls in the current input buffer (for commits).
    """

    kind: str
    ms: int


class EnergyVad:
    """Server VAD by frame energy, with the real server's knobs.

    A 20 ms frame is speech when its RMS exceeds ``rms_threshold``. Speech starts at the first
    speech frame (reported ``prefix_padding_ms`` earlier, clamped at 0); it stops once
    ``silence_duration_ms`` of non-speech frames have followed (reported at the end of that
    silence, like the real server's ``audio_end_ms``).
    """

    def __init__(
        self, *, rms_threshold: float, prefix_padding_ms: int, silence_duration_ms: int
    ) -> None:
        self.rms_threshold = rms_threshold
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_duration_ms = silence_duration_ms
        self._pending = b""
        self._samples_seen = 0
        self._in_speech = False
        self._silence_ms = 0

    @property
    def total_ms(self) -> int:
        """Milliseconds of audio fed so far (whole frames only)."""
        return self._samples_seen * 1000 // SAMPLE_RATE

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def reset_turn(self) -> None:
        """Forget an unfinished turn (``input_audio_buffer.clear``)."""
        self._in_speech = False
        self._silence_ms = 0

    def feed(self, pcm: bytes) -> list[VadEdge]:
        """Feed 24 kHz mono PCM16; return the edges it completes, in order."""
        data = self._pending + pcm
        usable = len(data) - len(data) % (2 * _FRAME_SAMPLES)
        self._pending = data[usable:]
        edges: list[VadEdge] = []
        if usable == 0:
            return edges
        frames = np.frombuffer(data[:usable], dtype="<i2").reshape(-1, _FRAME_SAMPLES)
        rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
        for value in rms:
            frame_start_ms = self._samples_seen * 1000 // SAMPLE_RATE
            self._samples_seen += _FRAME_SAMPLES
            if value > self.rms_threshold:
                self._silence_ms = 0
                if not self._in_speech:
                    self._in_speech = True
                    edges.append(VadEdge("start", max(0, frame_start_ms - self.prefix_padding_ms)))
            elif self._in_speech:
                self._silence_ms += FRAME_MS
                if self._silence_ms >= self.silence_duration_ms:
                    self._in_speech = False
                    self._silence_ms = 0
                    edges.append(VadEdge("stop", frame_start_ms + FRAME_MS))
        return edges
