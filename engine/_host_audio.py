"""The host-audio path's small pieces, for ``Conversation``'s audio mux and reader.

- ``AudioInbox``: the mux's end of the host audio channel, which also says when every frame
  submitted so far has been handed on (a commit or clear must follow the audio before it);
- ``PcmAligner``: whole PCM16 samples only, a frame's odd tail carried to the next one;
- ``check_frame_shape`` / ``check_host_frame`` / ``check_played_ms``: what a host call
  refuses before anything is queued (the state machine and ``duplex.aio`` share them);
- ``to_host_g711``: the WebRTC track's PCM16 → the host's G.711, in place, one resampler
  stream per item;
- ``chain``: a backlog of frames, then a stream of them (a resumed connection's replay).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, Final

import trio

from duplex.protocol import (
    G711_SAMPLE_RATE,
    WIRE_SAMPLE_RATE,
    AudioFrame,
    AudioInterrupted,
    AudioOut,
    OutputAudioDone,
)
from duplex.protocol._audio import BYTES_PER_SAMPLE

from ._errors import InvalidAudioFrame, InvalidRequest
from ._g711 import G711Transcoder

__all__ = [
    "FLUSH",
    "AudioInbox",
    "PcmAligner",
    "chain",
    "check_frame_shape",
    "check_host_frame",
    "check_played_ms",
    "to_host_g711",
]


def check_frame_shape(frame: AudioFrame) -> None:
    rate, channels = frame.sample_rate, frame.channels
    if not isinstance(rate, int) or rate <= 0:
        raise InvalidAudioFrame(f"sample_rate must be a positive int, got {rate!r}")
    if not isinstance(channels, int) or channels <= 0:
        raise InvalidAudioFrame(f"channels must be a positive int, got {channels!r}")


def check_host_frame(frame: AudioFrame, audio_format: str) -> None:
    """What ``send_audio`` refuses before queueing, from the frame and the session's
    ``audio_format`` alone: a shape that is not real, an encoding that is not the
    session's, G.711 that is not 8 kHz mono (``duplex.aio`` checks it on the caller's
    side of the bridge with this same function)."""
    check_frame_shape(frame)
    if frame.encoding != audio_format:
        raise InvalidAudioFrame(
            f"this session's audio_format is {audio_format!r}; got a {frame.encoding!r} frame"
        )
    rate, channels = frame.sample_rate, frame.channels
    if audio_format != "pcm16" and (rate, channels) != (G711_SAMPLE_RATE, 1):
        raise InvalidAudioFrame(
            f"{audio_format} audio is 8000 Hz mono; got {rate} Hz × {channels} channels"
        )


def check_played_ms(ms: object) -> None:
    """``audio_played``'s position: a real, non-negative number of milliseconds."""
    if (
        isinstance(ms, bool)
        or not isinstance(ms, int | float)
        or ms != ms  # NaN
        or ms < 0
    ):
        raise InvalidRequest(f"ms must be a non-negative number of milliseconds, got {ms!r}")


async def chain(
    first: list[AudioFrame], rest: AsyncIterable[AudioFrame]
) -> AsyncIterator[AudioFrame]:
    for frame in first:
        yield frame
    async for frame in rest:
        yield frame


def to_host_g711(g711: G711Transcoder, forward: list[Any], is_cut: Callable[[str], bool]) -> None:
    """The track's PCM16 audio → the host's G.711, in place (WebRTC telephony sessions).

    The resampler holds the last 25 ms it was fed (``_g711``), so its stream is one item's:
    at the item's ``OutputAudioDone`` that tail becomes the item's last ``AudioOut``, before
    the end (or is dropped if the item was cut: ``is_cut``, the state machine's ledger — a
    host-called ``interrupt()`` sends its ``AudioInterrupted`` past this function); at an
    ``AudioInterrupted`` it is dropped; audio of another item starts a new stream. A frame
    that gives no G.711 yet (the filter filling) is not forwarded: no empty ``AudioOut``."""
    out: list[Any] = []
    for event in forward:
        kind = type(event)
        if kind is AudioOut:
            if event.frame.encoding != "pcm16":
                out.append(event)
                continue
            item_id = event.item_id
            if item_id != g711.host_item:
                # The previous item ended without its OutputAudioDone reaching here (the
                # contract sends one): what the filter holds is not this item's.
                g711.reset_host()
                g711.host_item = item_id
            frame = g711.to_host(event.frame)
            if frame.pcm:
                out.append(AudioOut(frame, item_id, event.response_id))
            continue
        if kind is OutputAudioDone:
            item_id = event.item_id
            if item_id is not None and item_id == g711.host_item:
                g711.host_item = None
                if is_cut(item_id):
                    g711.reset_host()
                else:
                    tail = g711.flush_host()
                    if tail.pcm:
                        out.append(AudioOut(tail, item_id, event.response_id))
        elif kind is AudioInterrupted:
            g711.host_item = None
            g711.reset_host()  # the host flushes its playback: the cut item's tail goes too
        out.append(event)
    forward[:] = out


#: Queued behind the host's frames by ``AudioInbox.drained``: the mux sends what its
#: resamplers hold (their filter's tail) — the end of the turn the host is committing.
FLUSH: Final = AudioFrame(b"", WIRE_SAMPLE_RATE, 1)


class AudioInbox:
    """The audio-mux's end of the host audio channel, which also tells when every frame
    submitted so far has been handed on (``drained``): a commit or clear must follow the
    audio sent before it, a resampler's buffered tail included. ``busy()`` is called with
    each submitted frame; the mux marks the inbox idle whenever it comes back for more and
    the channel is empty."""

    __slots__ = ("_idle", "_recv", "_send", "_stopped", "parked")

    def __init__(
        self,
        recv: trio.MemoryReceiveChannel[AudioFrame],
        send: trio.MemorySendChannel[AudioFrame] | None = None,
    ) -> None:
        self._recv = recv
        self._send = send  # the channel's other end, for ``FLUSH`` (None: nothing to flush)
        self._idle = trio.Event()
        self._idle.set()
        self._stopped = False
        #: The mux waits here with the channel empty and no frame in hand: a frame handed
        #: to the transport right now cannot overtake one submitted before it.
        self.parked = False

    def busy(self) -> None:
        self.parked = False  # a frame is on its way to the mux: later ones queue behind it
        if self._idle.is_set() and not self._stopped:
            self._idle = trio.Event()

    async def drained(self) -> None:
        """Every frame submitted so far has been handed on, and what the resamplers held of
        them (soxr keeps its filter's last few ms until more audio or a flush: 400 ms of
        48 kHz audio reached the wire as 380 ms before the commit, the rest in the next
        turn)."""
        send = self._send
        if send is not None and not self._stopped:
            self.busy()  # first: the mux may take FLUSH and come back before send returns
            try:
                send.send_nowait(FLUSH)
            except trio.WouldBlock:
                await send.send(FLUSH)  # behind a full channel, in order
        await self._idle.wait()

    def release(self) -> None:
        """The mux has stopped: nothing more will be handed on; stop every wait."""
        self._stopped = True
        self._idle.set()

    def receive_nowait(self) -> AudioFrame:
        return self._recv.receive_nowait()

    def __aiter__(self) -> AudioInbox:
        return self

    async def __anext__(self) -> AudioFrame:
        if self._recv.statistics().current_buffer_used == 0:
            self._idle.set()
            self.parked = True
        try:
            return await self._recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        finally:
            self.parked = False


class PcmAligner:
    """Whole PCM16 sample frames only: a frame whose length is not a multiple of
    ``2 × channels`` keeps its tail for the next frame, so one odd frame cannot shift every
    later sample by a byte (issue 12 item 9). A change of rate or channel count starts over."""

    __slots__ = ("_carry", "_shape")

    def __init__(self) -> None:
        self._carry = b""
        self._shape = (0, 0)

    @property
    def empty(self) -> bool:
        """No partial sample is carried: the next whole-sample frame passes unchanged."""
        return not self._carry

    def align(self, frame: AudioFrame) -> AudioFrame:
        width = BYTES_PER_SAMPLE * frame.channels
        shape = (frame.sample_rate, frame.channels)
        carry = self._carry
        if not carry and len(frame.pcm) % width == 0:
            self._shape = shape
            return frame  # the common case: whole samples, nothing carried
        if shape != self._shape:
            carry = b""
            self._shape = shape
        pcm = carry + frame.pcm
        cut = len(pcm) - len(pcm) % width
        self._carry = pcm[cut:]
        return AudioFrame(pcm[:cut], frame.sample_rate, frame.channels)
