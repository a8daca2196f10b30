"""The asyncio side of the WebRTC transport: everything that touches aiortc objects.

Only this module and ``_bridge`` import asyncio. Every function and method here runs on the
bridge loop (through ``AsyncioBridge.run``/``call_soon``); results travel back to trio only
through ``TrioPort.call`` into the ``RtcSink`` the trio side supplied.

Media policy (SPEC §4, §7; figures and method in ``docs/perf/webrtc.md``):
- **Outbound.** ``OutboundAudioTrack`` is fed host PCM (24 kHz mono PCM16, any chunk length,
  from any thread: ``feed`` appends to a deque, so a host frame costs no wakeup of the
  bridge loop) and returns one Opus ``av.Packet`` every ``ptime_ms`` (20/40/60, default 20,
  lowered to the answer's ``a=maxptime``) of wall time. It encodes itself, inline, with
  libopus at 24 kHz mono: aiortc sends a packet a track returns as it is (documented
  ``MediaStreamTrack.recv`` result), so there is no resampling to 48 kHz stereo, no
  thread-pool hop and no per-sample audio-level loop per packet. The offer lists Opus only.
- **Outbound silence.** When less than a packet is buffered the track sends silence rather
  than waiting (a partial remainder is held one tick, then flushed padded with zeros, so the
  tail of an utterance is never stuck). Host silence (peak ≤ ``SILENCE_PEAK``, or no audio)
  is sent for ``silence_hangover_ms`` (default 1 s: more than the server VAD's
  ``silence_duration_ms``, so the server hears the turn end), then the track sends no RTP
  until a loud frame arrives; that frame goes out at once and the RTP timestamp jumps by
  the silent wall time. Suppression starts only when no loud audio is buffered: speech
  queued behind a long silence (a host feeding ahead of real time) is sent, not dropped.
  ``None`` sends silence for ever.
- **Outbound bound.** At most ``max_buffered_ms`` (default 2 s) of host audio waits; older
  audio beyond that is dropped and counted in 20 ms frames (a host feeding faster than real
  time would otherwise grow latency without bound).
- **Inbound.** Every frame of the remote track is consumed (aiortc queues unread frames
  without bound) and handed to ``_rtc_inbound.RemoteAudio``: sound is resampled to 24 kHz
  mono, streamed silence past a hangover is batched, and a server's pause (Opus DTX, which
  the offer asks for with ``usedtx=1``) is filled with the wall time's digital silence, so
  the engine's frame clock keeps real time either way (policy and invariants there).

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
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from duplex.protocol._audio import AudioFrame

from ._bridge import TrioPort
from ._rtc_inbound import SAMPLE_RATE, SILENCE_PEAK, RemoteAudio, consume_remote_audio, peak

__all__ = [
    "IceServers",
    "OutboundAudioTrack",
    "RtcSession",
    "RtcSink",
    "answer_max_message_size",
    "ice_configuration",
]

FRAME_SAMPLES: Final = 480  # 20 ms at 24 kHz
FRAME_BYTES: Final = FRAME_SAMPLES * 2
FRAME_S: Final = FRAME_SAMPLES / SAMPLE_RATE
#: Packet times the outbound track can use (Opus frame durations ≥ 20 ms).
PTIMES_MS: Final = (20, 40, 60)
DEFAULT_PTIME_MS: Final = 20
#: Keep sending silence this long after the host's last loud frame before stopping: it must
#: exceed the server VAD's ``silence_duration_ms`` (500 ms by default on the realtime API,
#: 200 ms in the simulator) with margin, or the server never hears the turn end.
DEFAULT_SILENCE_HANGOVER_MS: Final = 1000
#: Remote silence frames delivered one by one (resampled) after the model's last loud frame
#: (500 ms); later silence is delivered as digital silence, ``QUIET_BATCH`` frames at a time.
DEFAULT_REMOTE_SILENCE_HANGOVER_FRAMES: Final = 25
OPUS_BITRATE: Final = 32_000
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


def offer_with_opus_dtx(sdp: str) -> str:
    """``sdp`` with ``usedtx=1`` in every Opus ``a=fmtp`` line: the receiver's consent
    (RFC 7587 §6.1) for the server to stop sending while the model is silent. Only what is
    sent to the server changes; aiortc's own description stays as it made it (the parameter
    concerns what *we* receive, and aiortc's decoder takes DTX streams as they come)."""
    lines = sdp.split("\r\n")
    opus = [
        line.split()[0].partition(":")[2]
        for line in lines
        if line.startswith("a=rtpmap:") and " opus/" in line.lower()
    ]
    with_fmtp = {line.split()[0][7:] for line in lines if line.startswith("a=fmtp:")}
    out = []
    for line in lines:
        pt, _, params = line.partition(" ")
        if line.startswith("a=fmtp:") and pt[7:] in opus and "usedtx=" not in params:
            line = f"{line};usedtx=1"
        out.append(line)
        if line.startswith("a=rtpmap:") and pt[9:] in opus and pt[9:] not in with_fmtp:
            out.append(f"a=fmtp:{pt[9:]} usedtx=1")  # aiortc states no Opus parameters
    return "\r\n".join(out)


def answer_maxptime(sdp: str) -> int | None:
    """The smallest ``a=maxptime`` of the answer's audio sections, if it states one."""
    values = []
    for line in sdp.splitlines():
        if line.startswith("a=maxptime:"):
            try:
                values.append(int(float(line.partition(":")[2].strip())))
            except ValueError:
                continue  # a malformed attribute states nothing
    return min(values) if values else None


#: The peer's SCTP message limit when its answer states none (RFC 8841 §6).
DEFAULT_MAX_MESSAGE_SIZE: Final = 65536


def answer_max_message_size(sdp: str) -> int | None:
    """The largest data-channel message the answerer takes: its ``a=max-message-size``,
    64 KiB when it states none, ``None`` for 0 (RFC 8841: no limit). aiortc refuses a larger
    ``send`` with ``ValueError``; knowing the limit lets the trio side refuse it first."""
    for line in sdp.splitlines():
        if line.startswith("a=max-message-size:"):
            try:
                size = int(line.partition(":")[2].strip())
            except ValueError:
                break  # malformed: the default, as aiortc's parser would leave it
            return size if size > 0 else None
    return DEFAULT_MAX_MESSAGE_SIZE


class RtcSink(Protocol):
    """Trio-side receiver of what the peer connection produces (called on the trio thread)."""

    def on_text(self, text: str) -> None: ...

    def on_binary(self) -> None: ...

    def on_audio(self, frame: AudioFrame) -> None: ...

    def on_audio_batch(self, frames: tuple[AudioFrame, ...]) -> None: ...

    def on_audio_fill(self, frames: tuple[AudioFrame, ...]) -> None:
        """Silence made up for the sender's pause (``RemoteAudio.fill``): not the peer's."""

    def on_channel_open(self) -> None: ...

    def on_channel_closed(self) -> None:
        """The peer hung up in order: its data channel or the peer connection closed."""

    def on_failed(self, error: str) -> None: ...


class OutboundAudioTrack(MediaStreamTrack):
    """The local audio track: host PCM in, one paced Opus packet out per ``recv()``.

    ``feed`` may be called from any thread (the trio thread calls it directly: appending to
    a deque is atomic, so a host frame costs no wakeup of the bridge loop while the track is
    sending); everything else runs on the bridge loop. See the module docstring for the
    policy (ptime, silence suppression and its hangover).
    """

    kind = "audio"

    def __init__(
        self,
        max_buffered_ms: int = 2000,
        *,
        ptime_ms: int = DEFAULT_PTIME_MS,
        silence_hangover_ms: int | None = DEFAULT_SILENCE_HANGOVER_MS,
        silence_peak: int = SILENCE_PEAK,
    ) -> None:
        super().__init__()
        if ptime_ms not in PTIMES_MS:
            raise ValueError(f"ptime_ms must be one of {PTIMES_MS}, not {ptime_ms!r}")
        self._pending: deque[bytes] = deque()  # fed from any thread, drained on the loop
        self._buffer = bytearray()
        self._cap = max_buffered_ms * SAMPLE_RATE // 1000 * 2
        self._held = False  # a partial packet already waited one tick
        self._start: float | None = None
        self._pts = 0  # samples at 24 kHz since the first packet (the RTP clock, halved)
        self._hangover_ms = silence_hangover_ms
        self._silence_peak = silence_peak
        self._quiet_ms = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._encoder: Any = None
        self.ptime_ms = ptime_ms
        #: The track sends nothing until a loud frame arrives (set on the loop, read by feed).
        self.suppressed = False
        self._parked = False
        # Read from the trio thread for statistics (ints: atomic).
        self.frames_dropped = 0  # 20 ms frames of host audio dropped over the buffer cap
        self.packets_sent = 0
        self.packets_suppressed = 0  # ptime-long packets of silence never encoded or sent

    def set_ptime(self, ptime_ms: int) -> None:
        """Change the packet time before the first packet (the answer's ``maxptime``)."""
        if self._encoder is None and ptime_ms in PTIMES_MS:
            self.ptime_ms = ptime_ms

    def feed(self, pcm: bytes) -> None:
        """Queue host PCM (any thread). While the track is suppressed, quiet audio is
        dropped right here and only a loud frame wakes the bridge loop."""
        if self.suppressed and peak(pcm) <= self._silence_peak:
            return
        self._pending.append(pcm)
        if self._parked and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake_up)

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _drain(self) -> None:
        pending, buffer = self._pending, self._buffer
        while pending:
            buffer += pending.popleft()
        excess = len(buffer) - self._cap
        if excess > 0:
            excess = -(-excess // FRAME_BYTES) * FRAME_BYTES  # whole frames, keep alignment
            del buffer[:excess]
            self.frames_dropped += excess // FRAME_BYTES

    def _open_encoder(self) -> Any:
        # Opus straight from 24 kHz mono: libopus codes it natively, so there is no
        # resampling to 48 kHz stereo (what aiortc's own encoder does) and no thread hop.
        encoder = av.CodecContext.create("libopus", "w")
        encoder.sample_rate = SAMPLE_RATE
        encoder.layout = "mono"
        encoder.format = "s16"
        encoder.bit_rate = OPUS_BITRATE
        encoder.time_base = _TIME_BASE
        encoder.options = {"application": "voip", "frame_duration": str(self.ptime_ms)}
        encoder.open()
        return encoder

    async def _resume(self) -> None:
        """Wait, sending nothing, until loud host audio is pending; restart the clock."""
        loop = self._loop
        assert loop is not None
        if self._wake is None:
            self._wake = asyncio.Event()
        self._parked = True
        try:
            while not self._pending:
                self._wake.clear()
                if self._pending:  # fed between the check and the clear
                    break
                await self._wake.wait()
                if self.readyState != "live":
                    raise MediaStreamError
        finally:
            self._parked = False
        self.suppressed = False
        self._quiet_ms = 0
        self._held = False
        # The RTP timestamp jumps by the wall time spent silent, so the receiver's jitter
        # buffer sees a pause, not a burst of late packets.
        assert self._start is not None
        now = loop.time()
        elapsed = round((now - self._start) * SAMPLE_RATE)
        self._pts = max(self._pts + self.ptime_ms * SAMPLE_RATE // 1000, elapsed)
        self._start = now - self._pts / SAMPLE_RATE

    async def recv(self) -> av.Packet[Any]:  # aiortc: Frame | Packet
        if self.readyState != "live":
            raise MediaStreamError
        loop = self._loop = self._loop or asyncio.get_running_loop()
        ptime_samples = self.ptime_ms * SAMPLE_RATE // 1000
        packet_bytes = ptime_samples * 2
        while True:
            if self.suppressed:
                await self._resume()
                pts = self._pts
            elif self._start is None:
                self._start = loop.time()
                pts = 0
            else:
                pts = self._pts + ptime_samples
                delay = self._start + pts / SAMPLE_RATE - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            self._pts = pts
            self._drain()
            buffer = self._buffer
            if len(buffer) >= packet_bytes:
                data = bytes(buffer[:packet_bytes])
                del buffer[:packet_bytes]
                self._held = False
            elif buffer and self._held:
                data = bytes(buffer).ljust(packet_bytes, b"\x00")
                buffer.clear()
                self._held = False
            else:
                self._held = bool(buffer)
                data = b""
            if data and peak(data) > self._silence_peak:
                self._quiet_ms = 0
            else:
                self._quiet_ms += self.ptime_ms
                hangover = self._hangover_ms
                if (
                    hangover is not None
                    and self._quiet_ms > hangover
                    and not self._held
                    and peak(memoryview(buffer)) <= self._silence_peak
                ):
                    # Past the hangover: stop sending until the host sends a loud frame. Only
                    # when nothing loud waits: a host that sends ahead of real time (a file,
                    # the backlog after a reconnect) may have speech queued behind a long
                    # silence, and that must go out, in order, not be thrown away with it.
                    self.suppressed = True
                    self.packets_suppressed += 1 + -(-len(buffer) // packet_bytes)
                    buffer.clear()  # quiet audio only: suppressed, as feed() drops it now
                    continue
            return self._encode(data or bytes(packet_bytes), pts)

    def _encode(self, data: bytes, pts: int) -> av.Packet[Any]:
        if self._encoder is None:
            self._encoder = self._open_encoder()
        samples = len(data) // 2
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(data)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = pts
        frame.time_base = _TIME_BASE
        packets = self._encoder.encode(frame)
        packet: av.Packet[Any] = packets[0]
        # libopus reports pts shifted by its pre-skip; aiortc's RTP timestamp is this pts
        # (converted to the 48 kHz RTP clock), so it must be the track's own clock.
        packet.pts = pts
        packet.time_base = _TIME_BASE
        self.packets_sent += 1
        return packet

    def stop(self) -> None:
        super().stop()
        if self._loop is not None:
            self._wake_up()  # a suppressed recv() returns with MediaStreamError


class RtcSession:
    """One peer connection with its local track, optional data channel and remote consumer."""

    def __init__(
        self,
        port: TrioPort,
        sink: RtcSink,
        *,
        data_channel: bool,
        configuration: RTCConfiguration | None = None,
        ptime_ms: int = DEFAULT_PTIME_MS,
        silence_hangover_ms: int | None = DEFAULT_SILENCE_HANGOVER_MS,
        remote_silence_hangover_frames: int | None = DEFAULT_REMOTE_SILENCE_HANGOVER_FRAMES,
    ) -> None:
        self._port = port
        # Never None at the RTCPeerConnection: None would mean aiortc's public STUN server.
        self._configuration = configuration or RTCConfiguration(iceServers=[])
        self._sink = sink
        self._want_channel = data_channel
        self.pc: RTCPeerConnection | None = None
        self.track = OutboundAudioTrack(ptime_ms=ptime_ms, silence_hangover_ms=silence_hangover_ms)
        # The model's track, inbound (written on the bridge loop; its counters are read by
        # the trio side). Deliveries hop to the trio thread, one call per frame or batch.
        self.inbound = RemoteAudio(
            lambda frame: port.call(sink.on_audio, frame),
            lambda frames: port.call(sink.on_audio_batch, frames),
            lambda frames: port.call(sink.on_audio_fill, frames),
            hangover_frames=remote_silence_hangover_frames,
        )
        self.channel: RTCDataChannel | None = None
        #: The answer's data-channel message limit in bytes (``None``: none), set with it.
        self.max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def create_offer(self) -> str:
        """Build the offer (one sendrecv audio transceiver, optionally ``oai-events``) and
        return its SDP after ICE gathering completed (aiortc has no trickle ICE)."""
        pc = self.pc = RTCPeerConnection(configuration=self._configuration)
        port, sink = self._port, self._sink
        transceiver = pc.addTransceiver(self.track, direction="sendrecv")
        # The track hands aiortc Opus packets (it encodes them itself), so Opus is the only
        # codec offered: a PCMU/PCMA answer would otherwise carry Opus payloads.
        capabilities = RTCRtpSender.getCapabilities("audio")
        transceiver.setCodecPreferences(
            [c for c in capabilities.codecs if c.mimeType.lower() == "audio/opus"]
        )
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
                task = asyncio.ensure_future(consume_remote_audio(track, self.inbound))
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
        return offer_with_opus_dtx(str(pc.localDescription.sdp))

    async def apply_answer(self, sdp: str) -> None:
        assert self.pc is not None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self.max_message_size = answer_max_message_size(sdp)
        maxptime = answer_maxptime(sdp)
        if maxptime is not None and maxptime < self.track.ptime_ms:
            self.track.set_ptime(max((p for p in PTIMES_MS if p <= maxptime), default=20))

    def send_text(self, text: str) -> None:
        channel = self.channel
        if channel is None or channel.readyState != "open":
            return  # the trio side already reported the end; nothing to deliver to
        try:
            channel.send(text)
        except Exception as exc:  # aiortc raises InvalidStateError et al. on a dying channel
            if not self._closed:
                self._port.call(self._sink.on_failed, f"data channel send failed: {exc}")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        self.track.stop()
        if self.pc is not None:
            await self.pc.close()
