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
- plays model audio on an outbound track, paced in real time in 20 ms frames, encoded here
  (libopus, 24 kHz mono) and handed to aiortc as packets; silence when idle, or, when the
  offer asks for Opus DTX (``usedtx=1``) and ``SimulatorConfig.webrtc_dtx`` allows it, a
  libwebrtc sender's DTX: no RTP from 200 ms into a silence but one packet per 400 ms;
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
import contextlib
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

from ._audio import SAMPLE_RATE, peak, to_wire_pcm
from ._sdp import ApplicationSection, give_back_application, take_application, wants_opus_dtx

__all__ = ["RtcAnswerer"]

_FRAME_SAMPLES: Final = SAMPLE_RATE // 50  # 20 ms
_FRAME_BYTES: Final = _FRAME_SAMPLES * 2
#: Opus DTX as libopus runs it: the encoder goes discontinuous after 200 ms of silence...
DTX_ONSET_FRAMES: Final = 10
#: ...and then emits one packet per 400 ms (a receiver's liveness and jitter buffer rely on it).
DTX_KEEPALIVE_FRAMES: Final = 20
#: A frame whose samples all stay within ±QUIET_PEAK (≈ -60 dBFS) is silence for DTX.
QUIET_PEAK: Final = 32
_TIME_BASE: Final = fractions.Fraction(1, SAMPLE_RATE)


class _ModelAudioTrack(MediaStreamTrack):
    """Outbound audio: queued model PCM, paced at real time, silence when empty.

    With ``dtx`` (the offer asked for it) the track sends as an Opus DTX sender does: after
    ``DTX_ONSET_FRAMES`` quiet frames it stops, sends one frame every ``DTX_KEEPALIVE_FRAMES``
    while the model stays silent, and resumes with the first loud frame; the RTP timestamp
    keeps counting wall time across the pause.
    """

    kind = "audio"

    def __init__(self, *, dtx: bool = False) -> None:
        super().__init__()
        self._buffer = bytearray()
        self._start: float | None = None
        self._timestamp = 0
        self._dtx = dtx
        self._quiet = 0  # quiet frames in a row (DTX)
        self._pushed: asyncio.Event | None = None  # set by push while a DTX pause waits
        self._encoder: Any = None
        self.frames_sent = 0

    def push(self, pcm: bytes) -> None:
        self._buffer.extend(pcm)
        if self._pushed is not None:
            self._pushed.set()

    def clear(self) -> None:
        self._buffer.clear()

    async def recv(self) -> av.Packet[Any]:  # aiortc: Frame | Packet
        while True:
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
            if self._dtx and not await self._send_in_dtx(chunk):
                continue
            self.frames_sent += 1
            return self._encode(chunk)

    def _encode(self, chunk: bytes) -> av.Packet[Any]:
        # The track encodes (libopus, 24 kHz mono) and hands aiortc packets stamped with its
        # own clock: aiortc's encoder would resample to 48 kHz first, and its buffering moves
        # a DTX pause's timestamp jump one or two packets later, past the resumed sound.
        if self._encoder is None:
            self._encoder = encoder = av.CodecContext.create("libopus", "w")
            encoder.sample_rate = SAMPLE_RATE
            encoder.layout = "mono"
            encoder.format = "s16"
            encoder.bit_rate = 32_000
            encoder.time_base = _TIME_BASE
            encoder.options = {"application": "voip", "frame_duration": "20"}
            encoder.open()
        frame = av.AudioFrame(format="s16", layout="mono", samples=_FRAME_SAMPLES)
        frame.planes[0].update(chunk)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._timestamp
        frame.time_base = _TIME_BASE
        packet: av.Packet[Any] = self._encoder.encode(frame)[0]
        packet.pts = self._timestamp
        packet.time_base = _TIME_BASE
        return packet

    async def _send_in_dtx(self, chunk: bytes) -> bool:
        """Whether this frame goes out under DTX. While paused with nothing queued, wait for
        model audio or the next keepalive without a wakeup per frame."""
        if peak(chunk) > QUIET_PEAK:
            self._quiet = 0
            return True
        self._quiet += 1
        paused = self._quiet - DTX_ONSET_FRAMES
        if paused <= 0 or paused % DTX_KEEPALIVE_FRAMES == 0:
            return True
        if self._buffer:
            return False
        # Nothing queued: sleep until audio is pushed or the keepalive is due, then skip the
        # frames that passed (they were silence) by moving the clock, not by looping.
        assert self._start is not None
        due = DTX_KEEPALIVE_FRAMES - paused % DTX_KEEPALIVE_FRAMES
        self._pushed = pushed = asyncio.Event()
        try:
            await asyncio.wait_for(pushed.wait(), due * _FRAME_SAMPLES / SAMPLE_RATE)
        except TimeoutError:
            pass
        finally:
            self._pushed = None
        now_frames = int((time.monotonic() - self._start) * SAMPLE_RATE) // _FRAME_SAMPLES
        skipped = max(0, min(now_frames - 1 - self._timestamp // _FRAME_SAMPLES, due - 1))
        self._timestamp += skipped * _FRAME_SAMPLES
        self._quiet += skipped
        return False


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
        dtx: bool = True,
    ) -> None:
        self._port = port
        self._on_message = on_message
        self._on_audio = on_audio
        self._on_open = on_open
        self._on_closed = on_closed
        self._ignore_datachannel = ignore_datachannel
        self._pc: RTCPeerConnection | None = None
        self._channel: Any = None
        self._dtx = dtx
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

        if self._dtx and wants_opus_dtx(offer_sdp):
            self._track = _ModelAudioTrack(dtx=True)
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

    async def _drop(self) -> None:
        # A network drop, not a hang-up: the ICE transports stop first, so neither the SCTP
        # abort nor the DTLS close_notify of close() reaches the client, which must notice
        # the silence (liveness) as it would on a real network.
        pc = self._pc
        if pc is not None and not self._closed:
            ice = {t.receiver.transport.transport for t in pc.getTransceivers()}
            if pc.sctp is not None:
                ice.add(pc.sctp.transport.transport)
            for transport in ice:
                with contextlib.suppress(Exception):
                    await transport.stop()
        await self.close()

    def abort(self) -> None:
        task = asyncio.ensure_future(self._drop())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
