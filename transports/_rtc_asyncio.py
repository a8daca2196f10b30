"""The asyncio side of the WebRTC transport: everything that touches aiortc objects.

Only this module and ``_bridge`` import asyncio. Every function and method here runs on the
bridge loop (through ``AsyncioBridge.run``/``call_soon``); results travel back to trio only
through ``TrioPort.call`` into the ``RtcSink`` the trio side supplied.

Media policy (SPEC §4):
- **Outbound.** ``OutboundAudioTrack`` is fed host PCM (24 kHz mono PCM16, any chunk length)
  and hands aiortc one 20 ms frame (480 samples) every 20 ms of wall time. aiortc's Opus
  encoder owns a resampler to 48 kHz stereo (``aiortc.codecs.opus.OpusEncoder``), so the
  24 kHz → 48 kHz conversion happens exactly once, there; resampling here too would add a
  second filter pass for nothing.
- **Silence.** When less than 20 ms is buffered the track emits silence instead of waiting:
  RTP timing stays regular and the server's VAD hears the pause that ends a turn. A partial
  remainder is held for one tick (more may be coming) and then flushed padded with zeros,
  so the tail of an utterance is never stuck.
- **Outbound bound.** At most ``max_buffered_ms`` (default 2 s) of host audio waits; older
  audio beyond that is dropped and counted in 20 ms frames (a host feeding faster than real
  time would otherwise grow latency without bound).
- **Inbound.** Every frame of the remote track is consumed (aiortc queues unread frames
  without bound), downmixed (Opus decodes to stereo) and resampled to 24 kHz mono PCM16 by
  one ``av.AudioResampler``, then delivered to trio as ``AudioFrame``s.

aiortc quirks (peer-libraries.md §3.4) and how they are handled here:
- SCTP MTU: aiortc 1.16 (installed here) already caps SCTP packets at 1189 bytes, so the
  data channel fits a 1280-byte IPv6/VPN path; no monkey-patching is needed.
- Unbounded remote frame queue: every frame is consumed as soon as it is decoded.
- No transient "disconnected" state: ``failed``/``closed`` connection states and the data
  channel closing are the liveness signals; each ends the transport.
- Offered direction not respected: the transceiver is created ``sendrecv`` explicitly.
- Dead track busy-loop: the consumer returns on the first ``MediaStreamError``.
- Stereo Opus decode: the resampler converts the layout as well as the rate.
- Default STUN server: ``RTCPeerConnection()`` without a configuration gathers against
  ``stun.l.google.com`` (``RTCIceGatherer.getDefaultIceServers``). The peer connection here
  is always built with an explicit ``RTCConfiguration(iceServers=[...])`` from the caller's
  ``ice_servers``; the default is an empty list, so nothing leaves this machine (SPEC §8).
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from duplex.protocol._audio import AudioFrame

from ._bridge import TrioPort

__all__ = ["IceServers", "OutboundAudioTrack", "RtcSession", "RtcSink", "ice_configuration"]

SAMPLE_RATE: Final = 24_000
FRAME_SAMPLES: Final = 480  # 20 ms at 24 kHz
FRAME_BYTES: Final = FRAME_SAMPLES * 2
FRAME_S: Final = FRAME_SAMPLES / SAMPLE_RATE
_SILENCE: Final = bytes(FRAME_BYTES)
_TIME_BASE: Final = fractions.Fraction(1, SAMPLE_RATE)
DATA_CHANNEL_LABEL: Final = "oai-events"


#: What ``connect_webrtc(ice_servers=...)`` takes: a URL (``"stun:host:port"``,
#: ``"turn:host"``) or a mapping with ``urls`` (a URL or a list of them) and, for TURN,
#: ``username`` and ``credential``.
IceServers = Sequence[str | Mapping[str, Any]]


def ice_configuration(ice_servers: IceServers) -> RTCConfiguration:
    """The explicit configuration for a peer connection: exactly ``ice_servers``, never
    aiortc's default public STUN server (an empty list means host candidates only).

    Raises:
        ValueError: an entry is neither a URL string nor a mapping with ``urls``.
    """
    servers: list[RTCIceServer] = []
    for entry in ice_servers:
        if isinstance(entry, str):
            servers.append(RTCIceServer(urls=entry))
            continue
        if not isinstance(entry, Mapping) or "urls" not in entry:
            raise ValueError(
                f"ice_servers entries are URL strings or mappings with 'urls', got {entry!r}"
            )
        urls = entry["urls"]
        if not isinstance(urls, str) and not (
            isinstance(urls, Sequence) and all(isinstance(u, str) for u in urls)
        ):
            raise ValueError(f"ice_servers 'urls' must be a string or a list of strings: {urls!r}")
        servers.append(
            RTCIceServer(
                urls=urls if isinstance(urls, str) else list(urls),
                username=entry.get("username"),
                credential=entry.get("credential"),
            )
        )
    return RTCConfiguration(iceServers=servers)


class RtcSink(Protocol):
    """Trio-side receiver of what the peer connection produces (called on the trio thread)."""

    def on_text(self, text: str) -> None: ...

    def on_binary(self) -> None: ...

    def on_audio(self, frame: AudioFrame) -> None: ...

    def on_channel_open(self) -> None: ...

    def on_channel_closed(self) -> None:
        """The peer hung up in order: its data channel or the peer connection closed."""

    def on_failed(self, error: str) -> None: ...


class OutboundAudioTrack(MediaStreamTrack):
    """The local audio track: host PCM in, one paced 20 ms frame out per ``recv()``."""

    kind = "audio"

    def __init__(self, max_buffered_ms: int = 2000) -> None:
        super().__init__()
        self._buffer = bytearray()
        self._cap = max_buffered_ms * SAMPLE_RATE // 1000 * 2
        self._held = False  # a partial frame already waited one tick
        self._start: float | None = None
        self._pts = 0
        self.frames_dropped = 0  # read from the trio thread for statistics (an int: atomic)

    def feed(self, pcm: bytes) -> None:
        buffer = self._buffer
        buffer += pcm
        excess = len(buffer) - self._cap
        if excess > 0:
            excess = -(-excess // FRAME_BYTES) * FRAME_BYTES  # whole frames, keep alignment
            del buffer[:excess]
            self.frames_dropped += excess // FRAME_BYTES

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            self._pts += FRAME_SAMPLES
            delay = self._start + self._pts / SAMPLE_RATE - now
            if delay > 0:
                await asyncio.sleep(delay)
        buffer = self._buffer
        if len(buffer) >= FRAME_BYTES:
            data = bytes(buffer[:FRAME_BYTES])
            del buffer[:FRAME_BYTES]
            self._held = False
        elif buffer and self._held:
            data = bytes(buffer).ljust(FRAME_BYTES, b"\x00")
            buffer.clear()
            self._held = False
        else:
            self._held = bool(buffer)
            data = _SILENCE
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(data)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = _TIME_BASE
        return frame


async def _consume_remote_audio(
    track: MediaStreamTrack, deliver: Callable[[AudioFrame], None]
) -> None:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return  # the track ended; stop (a dead track would otherwise busy-loop)
        if not isinstance(frame, av.AudioFrame):
            continue
        for out in resampler.resample(frame):
            deliver(AudioFrame(out.to_ndarray().tobytes(), SAMPLE_RATE, 1))


class RtcSession:
    """One peer connection with its local track, optional data channel and remote consumer."""

    def __init__(
        self,
        port: TrioPort,
        sink: RtcSink,
        *,
        data_channel: bool,
        configuration: RTCConfiguration | None = None,
    ) -> None:
        self._port = port
        # Never None at the RTCPeerConnection: None would mean aiortc's public STUN server.
        self._configuration = configuration or RTCConfiguration(iceServers=[])
        self._sink = sink
        self._want_channel = data_channel
        self.pc: RTCPeerConnection | None = None
        self.track = OutboundAudioTrack()
        self.channel: RTCDataChannel | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def create_offer(self) -> str:
        """Build the offer (one sendrecv audio transceiver, optionally ``oai-events``) and
        return its SDP after ICE gathering completed (aiortc has no trickle ICE)."""
        pc = self.pc = RTCPeerConnection(configuration=self._configuration)
        port, sink = self._port, self._sink
        pc.addTransceiver(self.track, direction="sendrecv")
        if self._want_channel:
            channel = self.channel = pc.createDataChannel(DATA_CHANNEL_LABEL)

            @channel.on("open")
            def _open() -> None:
                port.call(sink.on_channel_open)

            @channel.on("message")
            def _message(message: str | bytes) -> None:
                if isinstance(message, str):
                    port.call(sink.on_text, message)
                else:
                    port.call(sink.on_binary)

            @channel.on("close")
            def _close() -> None:
                if not self._closed:
                    port.call(sink.on_channel_closed)

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            # A track event racing close() must not start a consumer nobody will cancel.
            if track.kind == "audio" and not self._closed:
                deliver: Callable[[AudioFrame], None] = lambda f: port.call(sink.on_audio, f)  # noqa: E731
                task = asyncio.ensure_future(_consume_remote_audio(track, deliver))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        @pc.on("connectionstatechange")
        def _state() -> None:
            if self._closed:
                return
            state = pc.connectionState
            if state == "failed":  # ICE consent lost or DTLS failed: an error
                port.call(sink.on_failed, "WebRTC connection failed (ICE/DTLS)")
            elif state == "closed":  # the peer hung up in order (DTLS close_notify)
                port.call(sink.on_channel_closed)

        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)

    async def apply_answer(self, sdp: str) -> None:
        assert self.pc is not None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    def send_text(self, text: str) -> None:
        channel = self.channel
        if channel is None or channel.readyState != "open":
            return  # the trio side already reported the end; nothing to deliver to
        try:
            channel.send(text)
        except Exception as exc:  # aiortc raises InvalidStateError et al. on a dying channel
            if not self._closed:
                self._port.call(self._sink.on_failed, f"data channel send failed: {exc}")

    def feed_audio(self, pcm: bytes) -> None:
        self.track.feed(pcm)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        self.track.stop()
        if self.pc is not None:
            await self.pc.close()
