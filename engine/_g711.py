"""G.711 on an Opus track: transcoding for telephony hosts over WebRTC (SPEC §3.4).

Over WebSocket a ``pcmu``/``pcma`` session carries G.711 both ways and the engine passes the
bytes through untouched. A WebRTC track is Opus, so there the engine transcodes, once per
direction, with stream state carried across frames:

- host → server: G.711 8 kHz → PCM16 8 kHz (``audioop``) → 24 kHz (``HostAudioConverter``,
  soxr, anti-aliased) → the track;
- server → host: the track's 24 kHz PCM16 → 8 kHz (soxr) → G.711.

Both resamplers are soxr's steady kind (``_resample.STEADY``): 20 ms in gives 20 ms out once
the filter has filled. (The block kind gave 0 or ~61 ms per 20 ms frame: empty host frames,
and gaps on the outbound track between its lumps.) The filter holds the last 25 ms of what
it was fed, so the to-host stream is per item (``to_host_g711``): flushed into the item's
last frame at its ``OutputAudioDone``, dropped at a barge-in, never carried into another
item. The host → track stream is flushed when a turn is committed (``flush_track``).

The codec is the standard library's ``audioop`` (the ``audioop-lts`` package provides it from
Python 3.13); its import warning is silenced here, once. Durations are unchanged by the
transcoding (20 ms in, 20 ms out), so barge-in milliseconds stay right.
"""

from __future__ import annotations

import warnings
from typing import Final

from duplex.protocol import G711_SAMPLE_RATE, WIRE_SAMPLE_RATE, AudioFrame

from ._resample import HostAudioConverter

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = ["G711_FORMATS", "G711Transcoder"]

G711_FORMATS: Final = frozenset({"pcmu", "pcma"})


class G711Transcoder:
    """One call's G.711 ↔ 24 kHz PCM16 conversion, both directions (see the module)."""

    def __init__(self, audio_format: str) -> None:
        if audio_format not in G711_FORMATS:
            raise ValueError(f"not a G.711 format: {audio_format!r}")
        self.audio_format = audio_format
        self._ulaw = audio_format == "pcmu"
        self._up = HostAudioConverter(WIRE_SAMPLE_RATE, steady=True)
        self._down = HostAudioConverter(G711_SAMPLE_RATE, steady=True)
        #: The item whose audio the to-host stream holds (``to_host_g711`` keeps it).
        self.host_item: str | None = None

    def check_supported(self) -> None:
        """Raise ``ResamplerUnavailable`` now when the resampler extra is missing."""
        self._up.check_supported(AudioFrame(b"", G711_SAMPLE_RATE, 1))

    def to_track(self, frame: AudioFrame) -> AudioFrame:
        """Host G.711 (8 kHz) → 24 kHz mono PCM16 for the track."""
        data = frame.pcm
        linear = audioop.ulaw2lin(data, 2) if self._ulaw else audioop.alaw2lin(data, 2)
        pcm = self._up.convert(AudioFrame(linear, frame.sample_rate, frame.channels))
        return AudioFrame(pcm, WIRE_SAMPLE_RATE, 1)

    def flush_track(self) -> bytes:
        """The host → track resampler's buffered tail (24 kHz PCM16): the end of a turn."""
        return self._up.flush()

    def to_host(self, frame: AudioFrame) -> AudioFrame:
        """The track's 24 kHz PCM16 → G.711 8 kHz for the host (empty while the filter
        fills, at the start of each item)."""
        return self._encode(self._down.convert(frame))

    def flush_host(self) -> AudioFrame:
        """The to-host resampler's buffered tail as G.711 (the end of an item); the next
        ``to_host`` starts a new stream."""
        return self._encode(self._down.flush())

    def reset_host(self) -> None:
        """Drop the to-host resampler's buffered tail (a barge-in cut its item)."""
        self._down.reset()

    def _encode(self, pcm8: bytes) -> AudioFrame:
        data = audioop.lin2ulaw(pcm8, 2) if self._ulaw else audioop.lin2alaw(pcm8, 2)
        return AudioFrame(data, G711_SAMPLE_RATE, 1, self.audio_format)
