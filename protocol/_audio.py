"""Audio value type and the sample / base64 arithmetic both dialects share.

Invariants:
- ``AudioFrame.pcm`` is always *decoded* audio (never base64): signed 16-bit little-endian PCM
  (``encoding="pcm16"``, interleaved when ``channels > 1``) or, for telephony sessions, 8 kHz
  G.711 bytes (``"pcmu"`` μ-law / ``"pcma"`` A-law, one byte per sample) passed through
  untranscoded. Base64 exists only on the wire; nothing above the codec sees it.
- The default realtime wire format is 24 kHz mono PCM16 in both directions
  (openai-realtime-protocol.md §6), so ``WIRE_SAMPLE_RATE`` / ``WIRE_CHANNELS`` are the defaults;
  a G.711 session (``audio_format="pcmu" | "pcma"``) is 8 kHz mono both ways.
- Durations are computed from byte counts, never from clocks.
- Base64 goes through ``pybase64`` (the audio hot path: one decode per model audio delta).
"""

from __future__ import annotations

from typing import Final, final

import attrs
import pybase64

from ._errors import LocalProtocolError

__all__ = [
    "AUDIO_ENCODINGS",
    "BYTES_PER_SAMPLE",
    "G711_SAMPLE_RATE",
    "WIRE_CHANNELS",
    "WIRE_SAMPLE_RATE",
    "AudioFrame",
    "b64decode_pcm",
    "b64encode_pcm",
    "duration_ms",
    "encoding_of",
    "pcm_bytes_for_ms",
]

WIRE_SAMPLE_RATE: Final = 24_000
WIRE_CHANNELS: Final = 1
BYTES_PER_SAMPLE: Final = 2
G711_SAMPLE_RATE: Final = 8_000
#: ``audio_format`` / ``AudioFrame.encoding`` → (bytes per sample, wire sample rate)
AUDIO_ENCODINGS: Final[dict[str, tuple[int, int]]] = {
    "pcm16": (BYTES_PER_SAMPLE, WIRE_SAMPLE_RATE),
    "pcmu": (1, G711_SAMPLE_RATE),
    "pcma": (1, G711_SAMPLE_RATE),
}


def encoding_of(audio_format: str) -> tuple[int, int]:
    """(bytes per sample, sample rate) of ``"pcm16"``, ``"pcmu"`` or ``"pcma"``."""
    found = AUDIO_ENCODINGS.get(audio_format) if isinstance(audio_format, str) else None
    if found is None:
        names = ", ".join(repr(n) for n in AUDIO_ENCODINGS)
        raise LocalProtocolError(f"unknown audio format {audio_format!r}; expected one of {names}")
    return found


@final
@attrs.frozen(slots=True)
class AudioFrame:
    """A chunk of decoded audio: PCM16-LE by default, G.711 for telephony sessions.

    Attributes:
        pcm: the samples (PCM16 little-endian, interleaved for multi-channel audio; or G.711
            bytes when ``encoding`` says so — the name stays for compatibility).
        sample_rate: samples per second per channel.
        channels: number of interleaved channels.
        encoding: ``"pcm16"``, ``"pcmu"`` or ``"pcma"``.
    """

    pcm: bytes
    sample_rate: int = WIRE_SAMPLE_RATE
    channels: int = WIRE_CHANNELS
    encoding: str = "pcm16"

    @property
    def bytes_per_sample(self) -> int:
        """2 for PCM16, 1 for G.711."""
        return BYTES_PER_SAMPLE if self.encoding == "pcm16" else 1

    @property
    def samples_per_channel(self) -> int:
        """Number of sample frames (one sample per channel each)."""
        return len(self.pcm) // (self.bytes_per_sample * self.channels)

    @property
    def duration_ms(self) -> float:
        """Playback duration in milliseconds (what barge-in arithmetic counts)."""
        rate = self.sample_rate
        channels = self.channels
        if self.encoding == "pcm16" and rate > 0 and channels > 0:
            # ``duration_ms()`` for the common case without its call: every model frame's
            # path reads this twice (received, then delivered).
            return (len(self.pcm) // (BYTES_PER_SAMPLE * channels)) * 1000.0 / rate
        return duration_ms(len(self.pcm), rate, channels, self.encoding)


def duration_ms(
    n_bytes: int,
    sample_rate: int = WIRE_SAMPLE_RATE,
    channels: int = WIRE_CHANNELS,
    encoding: str = "pcm16",
) -> float:
    """Milliseconds of audio held in ``n_bytes`` (PCM16 by default, or G.711)."""
    if sample_rate <= 0 or channels <= 0:
        raise LocalProtocolError(f"invalid audio shape: {sample_rate} Hz, {channels} channels")
    width = BYTES_PER_SAMPLE if encoding == "pcm16" else encoding_of(encoding)[0]
    return (n_bytes // (width * channels)) * 1000.0 / sample_rate


def pcm_bytes_for_ms(
    ms: float,
    sample_rate: int = WIRE_SAMPLE_RATE,
    channels: int = WIRE_CHANNELS,
    encoding: str = "pcm16",
) -> int:
    """Whole-sample byte count of ``ms`` milliseconds of audio (PCM16 by default, or G.711)."""
    return int(sample_rate * ms / 1000.0) * encoding_of(encoding)[0] * channels


def b64encode_pcm(pcm: bytes) -> str:
    """Base64 text of raw PCM bytes, as the wire carries it."""
    return pybase64.b64encode(pcm).decode("ascii")


def b64decode_pcm(text: str) -> bytes:
    """Decode wire base64 into PCM bytes (``pybase64``: SIMD, ~8x the stdlib on a 20 ms
    delta; ``validate=True`` rejects anything but the alphabet and correct padding).

    Raises:
        ValueError: ``text`` is not valid base64 (``binascii.Error`` is a ``ValueError``).
    """
    return pybase64.b64decode(text, validate=True)
