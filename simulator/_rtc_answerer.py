"""The asyncio side of the simulator's WebRTC answerer (aiortc), run on the bridge loop.

This is the one simulator module that imports asyncio (SPEC §1: asyncio is confined to the
bridge and to this documented module). Everything in ``RtcAnswerer`` runs on
``transports._bridge``'s loop: ``answer`` through ``bridge.run``, the other methods through
``bridge.call_soon``. It talks back to the trio side only through a ``TrioPort`` whose targets
are the session's synchronous ``feed`` / ``feed_audio`` / ``attach`` methods.

What it does, per call:
- answers the offer (one send/recv audio transceiver, the ``oai-events`` data channel);
- consumes every inbound audio frame, converts it to 24 kHz mono PCM16 and hands it to the
  session's VAD;
- plays model audio on an outbound track, paced in real time in 20 ms frames (silence when
  idle); aiortc encodes it as Opus;
- carries JSON events both ways on ``oai-events``.

Invariants:
- no trio object is touched here except through ``TrioPort.call``;
- no STUN/TURN: the peer connection gets an explicit empty ``iceServers`` (aiortc's default is a
  public STUN server); host candidates only;
- ``ignore_datachannel`` (the "data channel never opens" fault) is done in the SDP, with
  aiortc's public API only: the answering peer connection is given the offer without its
  ``m=application`` section, so it has no SCTP endpoint, and the answer gets that section back
  (same transport, bundled). The offerer's SCTP INIT then arrives over DTLS where nothing
  listens and is dropped: the association never comes up and the channel stays
  ``connecting``, while the audio leg works.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable
from typing import Any, Final

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from duplex.transports import TrioPort

from ._audio import SAMPLE_RATE, to_wire_pcm
from ._sdp import ApplicationSection, give_back_application, take_application

__all__ = ["RtcAnswerer"]

_FRAME_SAMPLES: Final = SAMPLE_RATE // 50  # 20 ms
_FRAME_BYTES: Final = _FRAME_SAMPLES * 2


class _ModelAudioTrack(MediaStreamTrack):
    """Outbound audio: queued model PCM, paced at real time, silence when empty."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._buffer = bytearray()
        self._start: float | None = None
        self._timestamp = 0
        self.frames_sent = 0

    def push(self, pcm: bytes) -> None:
        self._buffer.extend(pcm)

    def clear(self) -> None:
        self._buffer.clear()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._timestamp += _FRAME_SAMPLES
            wait = self._start + self._timestamp / SAMPLE_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        chunk = bytes(self._buffer[:_FRAME_BYTES])
        del self._buffer[:_FRAME_BYTES]
        chunk = chunk.ljust(_FRAME_BYTES, b"\x00")
        frame = av.AudioFrame(format="s16", layout="mono", samples=_FRAME_SAMPLES)
        frame.planes[0].update(chunk)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._timestamp
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self.frames_sent += 1
        return frame


class RtcAnswerer:
    """One WebRTC call's peer connection. Construct and use on the bridge loop only."""

    def __init__(
        self,
        port: TrioPort,
        *,
        on_message: Callable[[str | bytes], None],
        on_audio: Callable[[bytes], None],
        on_open: Callable[[], None],
        on_closed: Callable[[], None],
        ignore_datachannel: bool = False,
    ) -> None:
        self._port = port
        self._on_message = on_message
        self._on_audio = on_audio
        self._on_open = on_open
        self._on_closed = on_closed
        self._ignore_datachannel = ignore_datachannel
        self._pc: RTCPeerConnection | None = None
        self._channel: Any = None
        self._track = _ModelAudioTrack()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._resampler: Any = None

    async def answer(self, offer_sdp: str) -> str:
        """Apply the offer and return the answer SDP (raises ``ValueError`` on a bad offer)."""
        # No ICE servers, explicitly: aiortc's default configuration gathers through a public
        # STUN server, and the simulator never sends a packet beyond this machine (SPEC §8).
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._pc = pc

        @pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            if channel.label != "oai-events":
                return
            self._channel = channel

            @channel.on("message")  # type: ignore[untyped-decorator]
            def on_message(message: str | bytes) -> None:
                self._port.call(self._on_message, message)

            self._port.call(self._on_open)

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "audio":
                task = asyncio.ensure_future(self._consume(track))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close()

        offer = offer_sdp
        application: ApplicationSection | None = None
        if self._ignore_datachannel:
            offer, application = take_application(offer_sdp)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except Exception as exc:
            await pc.close()
            raise ValueError(f"invalid offer SDP: {exc}") from exc
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio":
                transceiver.sender.replaceTrack(self._track)
                transceiver.direction = "sendrecv"
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        sdp = str(pc.localDescription.sdp)
        if application is not None:
            sdp = give_back_application(sdp, application)
        return sdp

    async def _consume(self, track: Any) -> None:
        """Read every inbound frame (so aiortc never buffers) and feed the VAD."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if frame.format.name == "s16":
                # aiortc's Opus decoder: packed s16, 48 kHz stereo — the cheap numpy path.
                channels = len(frame.layout.channels)
                pcm = bytes(frame.planes[0])[: frame.samples * channels * 2]
                wire = to_wire_pcm(pcm, frame.sample_rate, channels)
            else:
                # Any other decoder output: let libav convert it.
                if self._resampler is None:
                    self._resampler = av.AudioResampler(
                        format="s16", layout="mono", rate=SAMPLE_RATE
                    )
                wire = b"".join(
                    bytes(f.planes[0])[: f.samples * 2] for f in self._resampler.resample(frame)
                )
            self._port.call(self._on_audio, wire)

    @property
    def connection_state(self) -> str:
        """The peer connection's state (``"new"`` before ``answer``)."""
        return "new" if self._pc is None else str(self._pc.connectionState)

    def send(self, text: str | bytes) -> None:
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            channel.send(text)

    def push_audio(self, pcm: bytes) -> None:
        self._track.push(pcm)

    def clear_audio(self) -> None:
        self._track.clear()

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        current = asyncio.current_task()
        for task in list(self._tasks):
            # abort() runs close() as one of these tasks: cancelling itself would cancel
            # pc.close() below and leave the call up (the drop fault never dropped a call).
            if task is not current:
                task.cancel()
        if self._pc is not None:
            await self._pc.close()
        self._port.call(self._on_closed)

    def abort(self) -> None:
        task = asyncio.ensure_future(self.close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
