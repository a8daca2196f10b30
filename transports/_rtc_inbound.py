"""The model's track, inbound: decoded remote frames in, the engine's 20 ms frames out.

``RemoteAudio`` is the policy, a synchronous object (frames and wall times in, deliveries
out, no I/O, no clock of its own); ``consume_remote_audio`` is the bridge-loop task that
feeds it every frame aiortc decodes and a tick every ``PAUSE_TICK_S``.

The engine's audio contract (``engine/_audio_contract.py``) counts the track's frames as its
clock: it ends an item after a run of quiet frames, and falls back on frame counts when the
server sends no buffer events. So the frames the host side gets must keep real time, also
while the model is silent. Two kinds of remote silence reach this module:

- **Streamed silence** (a server that sends RTP continuously). Sound, and the first
  ``hangover_frames`` of silence after it, are downmixed and resampled to 24 kHz mono PCM16
  and delivered one hand-over each. Later silence is delivered as digital silence of the
  same length, without resampling, ``QUIET_BATCH`` frames per hand-over (one wakeup of the
  trio loop per 100 ms instead of five); sound flushes the batch first, so order is kept.
- **Paused silence** (a server honouring the offer's Opus DTX request, ``usedtx=1``: it
  stops sending 200 ms into a silence and then sends one packet per 400 ms). aiortc's audio
  jitter buffer releases a frame only when four newer ones have arrived, so the last
  frames before a pause stay inside it until the next packets come, and the frame clock
  would stall for up to a second (``ResponseDone`` is held back that long). So once the
  last frame out was quiet and no frame came for ``PAUSE_GRACE_S``, the wall time that
  passes is filled with digital silence (``fill``), one batch per tick. A quiet frame that
  arrives later for a stretch already filled is dropped (``frames_superseded``); sound is
  never dropped.

Invariants:
- Sound is delivered once, in order; only quiet frames are replaced or dropped.
- ``frames_received`` counts what the peer sent (the liveness watch reads it); filled
  frames are counted apart (``frames_filled``) and never count as the peer's activity.
- An RTP timestamp gap after a quiet frame is a sender's pause (``frames_paused``); after a
  loud frame it is loss (``frames_missing``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from duplex.protocol._audio import AudioFrame

__all__ = [
    "PAUSE_GRACE_S",
    "PAUSE_TICK_S",
    "QUIET_BATCH",
    "SAMPLE_RATE",
    "SILENCE_PEAK",
    "RemoteAudio",
    "consume_remote_audio",
    "peak",
]

SAMPLE_RATE: Final = 24_000
#: Audio whose peak is at most this (≈ -60 dBFS) counts as silence (host audio outbound,
#: decoded remote audio inbound).
SILENCE_PEAK: Final = 32
#: Frames of remote silence per hand-over to trio past the hangover (100 ms: the most the
#: engine's frame clock lags while the model is silent; sound flushes the batch at once).
QUIET_BATCH: Final = 5
#: No frame for this long after a quiet one: the sender has paused (three frame times: more
#: than the decoder's own jitter on a loaded machine, well under the engine's end-of-item run).
PAUSE_GRACE_S: Final = 0.06
#: How often the consumer checks for a pause (a timer on the bridge loop, 20 wakeups/s).
PAUSE_TICK_S: Final = 0.05


def peak(pcm: bytes | memoryview) -> int:
    """The largest absolute sample of PCM16 ``pcm`` (0 for an empty buffer)."""
    samples = np.frombuffer(pcm, np.int16, count=len(pcm) // 2)
    if not samples.size:
        return 0
    return max(int(samples.max()), -int(samples.min()))


class RemoteAudio:
    """The inbound policy of the module docstring, for one remote track.

    ``deliver`` takes one frame (sound, and silence inside the hangover), ``deliver_batch``
    a tuple of the peer's silent frames, ``deliver_fill`` a tuple of silent frames made up
    for a pause; all are called synchronously from ``on_frame``/``fill``/``end``.
    """

    def __init__(
        self,
        deliver: Callable[[AudioFrame], None],
        deliver_batch: Callable[[tuple[AudioFrame, ...]], None],
        deliver_fill: Callable[[tuple[AudioFrame, ...]], None],
        *,
        hangover_frames: int | None,
    ) -> None:
        self._deliver = deliver
        self._deliver_batch = deliver_batch
        self._deliver_fill = deliver_fill
        self._hangover = hangover_frames
        self._resampler: Any = None
        self._quiet_run = 0
        self._held: list[AudioFrame] = []  # streamed silence, delivered QUIET_BATCH at a time
        self._silences: dict[int, AudioFrame] = {}  # frozen frames: one per length is shared
        self._next_pts: int | None = None  # RTP clock: where the next frame should start
        self._covered: int | None = None  # RTP clock: how far frames were delivered or filled
        self._last_quiet = False  # the last frame delivered from the peer was silence
        self._anchor_at: float | None = None  # wall time of that frame...
        self._anchor_pts = 0  # ...and its end on the RTP clock
        self._ticks_per_s = 48_000  # the RTP clock rate (the decoded frames' rate)
        self._samples = 960  # the frames' length on that clock
        # Read from the trio thread (ints: atomic).
        self.frames_received = 0  # every frame the peer sent, delivered or not
        self.frames_batched = 0  # streamed silence delivered in batches
        self.frames_missing = 0  # frames lost on the way (RTP gaps after sound)
        self.frames_paused = 0  # frames the sender paused for (RTP gaps after silence)
        self.frames_filled = 0  # digital silence delivered for a pause's wall time
        self.frames_superseded = 0  # late quiet frames for a stretch already filled

    # ---- input ----------------------------------------------------------------------------

    def on_frame(self, frame: av.AudioFrame, now: float) -> None:
        """One decoded frame from the peer, at wall time ``now``."""
        self.frames_received += 1
        quiet = frame.format.name == "s16" and peak(memoryview(frame.planes[0])) <= SILENCE_PEAK
        pts = frame.pts
        if pts is not None:
            # aiortc stamps decoded audio with the RTP clock, which for Opus is the decoded
            # rate (time base 1 / sample_rate): a frame spans ``samples`` ticks.
            self._ticks_per_s, self._samples = frame.sample_rate, frame.samples
            end = pts + self._samples
            if self._next_pts is not None and pts > self._next_pts:
                gap = (pts - self._next_pts) // self._samples
                if self._last_quiet:
                    self.frames_paused += gap
                else:
                    self.frames_missing += gap
            self._next_pts = end
            covered = self._covered
            if quiet and covered is not None and end <= covered:
                # Held in the jitter buffer through a pause whose time was already filled.
                self.frames_superseded += 1
                return
            self._covered = end if covered is None else max(covered, end)
            self._anchor_at, self._anchor_pts = now, self._covered
        self._last_quiet = quiet
        if self._hangover is not None:
            if quiet:
                self._quiet_run += 1
                if self._quiet_run > self._hangover:
                    self._hold(self._silence(frame.samples * SAMPLE_RATE // frame.sample_rate))
                    self.frames_batched += 1
                    return
            else:
                self._quiet_run = 0
        self._flush()  # order: the silence before this frame goes first
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        for out in self._resampler.resample(frame):
            self._deliver(AudioFrame(out.to_ndarray().tobytes(), SAMPLE_RATE, 1))

    def fill(self, now: float) -> None:
        """A tick: if the peer paused after a quiet frame, deliver silence for the wall time
        that passed since, less ``PAUSE_GRACE_S`` (the filled clock runs that much behind the
        wall, so a frame the peer sends on time is never pre-empted by a filled one)."""
        anchor_at, covered = self._anchor_at, self._covered
        if not self._last_quiet or anchor_at is None or covered is None:
            return
        silent_s = now - anchor_at - PAUSE_GRACE_S
        count = (self._anchor_pts + round(silent_s * self._ticks_per_s) - covered) // self._samples
        if count <= 0:
            return
        self._covered = covered + count * self._samples
        self.frames_filled += count
        self._quiet_run += count
        self._flush()
        silence = self._silence(self._samples * SAMPLE_RATE // self._ticks_per_s)
        self._deliver_fill((silence,) * count)

    def end(self) -> None:
        """The track ended: deliver what is still held."""
        self._flush()

    # ---- helpers --------------------------------------------------------------------------

    def _silence(self, samples: int) -> AudioFrame:
        silence = self._silences.get(samples)
        if silence is None:
            silence = self._silences[samples] = AudioFrame(bytes(samples * 2), SAMPLE_RATE, 1)
        return silence

    def _hold(self, silence: AudioFrame) -> None:
        self._held.append(silence)
        if len(self._held) >= QUIET_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._held:
            self._deliver_batch(tuple(self._held))
            self._held.clear()


async def consume_remote_audio(track: MediaStreamTrack, audio: RemoteAudio) -> None:
    """Feed ``audio`` every frame of ``track`` and a pause check every ``PAUSE_TICK_S``,
    until the track ends (run on the bridge loop; a dead track would otherwise busy-loop)."""
    loop = asyncio.get_running_loop()

    async def tick() -> None:
        while True:
            await asyncio.sleep(PAUSE_TICK_S)
            audio.fill(loop.time())

    ticker = asyncio.ensure_future(tick())
    try:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.AudioFrame):
                audio.on_frame(frame, loop.time())
    finally:
        ticker.cancel()
        audio.end()
