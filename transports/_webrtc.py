"""The WebRTC transport, trio side: ``connect_webrtc()`` → ``WebRTCTransport``.

The peer connection lives on the asyncio bridge loop (``_rtc_asyncio``); this module never
touches an aiortc object directly. It only calls ``bridge.run``/``bridge.call_soon`` with
``RtcSession`` methods, and receives the session's output through the ``RtcSink`` methods
below, which ``TrioPort`` runs on the trio thread.

Start sequence (codex-realtime.md §8.2): offer (one sendrecv audio transceiver, plus the
``oai-events`` data channel in ``datachannel`` control) with ICE gathering complete →
``POST <base>/realtime/calls`` (``_calls``) → apply the answer → either wait for the data
channel to open or start joining the sideband WebSocket ``?call_id=…`` in the background
(``sideband``). All of it, the data channel included, runs under one ``connect_timeout``
deadline. The peer connection is always built with the caller's ``ice_servers`` (default
none: aiortc's own default would be a public STUN server).

Invariants:
- ``connect_webrtc`` either returns a connected transport or raises ``ConnectError`` after
  closing the peer connection; nothing leaks on failure.
- Sideband control: text sent before the join completes waits, in order, in a bounded
  queue of ``outbound_queue_size`` (default 256) events, enough for the handshake
  ``session.update`` plus the text and handoff replies of a slow (~1 s) join; when full,
  ``send_text`` waits (backpressure), it never drops a structural event. The join is tried
  ``1 + sideband_retries`` times with exponential backoff (``sideband_backoff * 2**n`` s);
  exhaustion ends the transport with ``TransportEnded("error", error=…)``. ``aclose()``
  during the join abandons it and emits nothing else.
- The end of the sideband WebSocket, the data channel closing, the peer connection
  reaching ``failed``/``closed``, or the liveness watch each end the transport (first one
  wins), by the rule in ``_abc``.
- ``send_text`` in datachannel control refuses an event larger than the answer's
  ``a=max-message-size`` (64 KiB when it states none) with ``MessageTooLarge``, before
  queueing it; the call goes on (``max_text_bytes``; the engine refuses such a host call
  with ``InvalidRequest`` before that).
- ``send_audio`` accepts 24 kHz mono PCM16 frames of any whole number of samples and
  refuses an odd byte count with ``ValueError`` (nothing queued, alignment kept); it never
  blocks (the outbound track buffers up to 2 s and counts the older audio it drops, in
  20 ms frames, as ``TransportStatistics.audio_out_dropped``). Host silence stops the RTP
  stream after ``silence_hangover_ms``; remote silence past ``remote_silence_hangover_ms``
  after the model's sound arrives as digital silence in batches of 100 ms, and a server's
  DTX pause is filled with digital silence for its wall time (the host side sees 20 ms
  frames in real time either way; ``_rtc_inbound``, ``docs/perf/webrtc.md``).
- Liveness: a watch task (in the caller's nursery) ends the transport with an error when
  no audio frame and no event arrived for ``liveness_timeout`` seconds (realtime servers
  stream RTP continuously, silence included, or a DTX keep-alive packet every ~400 ms;
  every received frame counts, also remote silence still held for its batch; silence
  filled in for a pause does not); ICE/DTLS
  ``failed`` ends it at once. A peer that hangs up in order (data channel or peer
  connection ``closed``) ends it with ``"closed"``. ``connect_timeout`` is one deadline
  for the whole start.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs
import trio

from duplex.protocol._audio import WIRE_SAMPLE_RATE, AudioFrame
from duplex.protocol._errors import LocalProtocolError
from duplex.protocol._urls import realtime_headers, realtime_websocket_url

from ._abc import (
    ENDED_CLOSED,
    ENDED_ERROR,
    ENDED_REQUESTED,
    Counters,
    Inbound,
    Transport,
    TransportEnded,
    TransportKind,
    TransportStatistics,
)
from ._bridge import AsyncioBridge, TrioPort, get_bridge
from ._calls import create_call
from ._errors import (
    ConnectError,
    MessageTooLarge,
    TransportClosed,
    describe,
    missing_extra,
    server_text,
)
from ._inbox import Inbox
from ._websocket import WebSocketTransport, connect_websocket

if TYPE_CHECKING:
    from ._rtc_asyncio import RtcSession

__all__ = ["WebRTCTransport", "connect_webrtc"]

CLOSE_TIMEOUT_S: Final = 2.0
DEFAULT_LIVENESS_TIMEOUT: Final = 5.0
#: The liveness watch wakes this many times per ``liveness_timeout``. Activity is seen at
#: tick granularity, so the peer counts as dead after ``liveness_timeout - tick`` of
#: observed quiet: between ``(1 - 1 / LIVENESS_TICKS)`` and 1 ``liveness_timeout`` after
#: the last thing it sent, never later.
LIVENESS_TICKS: Final = 10
ControlChannel = Literal["datachannel", "sideband"]


class WebRTCTransport(Transport):
    """A connected WebRTC call. Create with ``connect_webrtc``."""

    def __init__(
        self, bridge: AsyncioBridge, control: ControlChannel, outbound_queue_size: int
    ) -> None:
        self._bridge = bridge
        self._control: ControlChannel = control
        self._counters = Counters()
        self._inbox = Inbox(self._counters)
        self._rtc: RtcSession  # set by connect_webrtc
        self.call_id: str = ""
        self._closing = False
        self._opened = trio.Event()  # data channel open, or a failure before it
        self._failure: str | None = None
        # sideband state
        self._outbound_send, self._outbound_recv = trio.open_memory_channel[str](
            outbound_queue_size
        )
        self._sideband: WebSocketTransport | None = None
        self._sideband_scope = trio.CancelScope()
        self._liveness_scope = trio.CancelScope()

    # --- Transport -------------------------------------------------------------------------

    @property
    def kind(self) -> TransportKind:
        return "webrtc"

    @property
    def audio_native(self) -> bool:
        return True

    @property
    def control(self) -> ControlChannel:
        """Where events travel: ``"datachannel"`` or ``"sideband"``."""
        return self._control

    def _check_open(self) -> None:
        if self._closing or self._inbox.ended:
            raise TransportClosed("the WebRTC transport has ended")

    @property
    def max_text_bytes(self) -> int | None:
        # Datachannel control: the answer's SCTP limit (aiortc fails a larger send, which
        # used to end the call). Sideband events travel on a WebSocket: no such limit.
        return self._rtc.max_message_size if self._control == "datachannel" else None

    async def send_text(self, text: str) -> None:
        self._check_open()
        if self._control == "datachannel":
            limit = self._rtc.max_message_size
            if limit is not None and len(text) > limit // 4 and len(text.encode()) > limit:
                raise MessageTooLarge(
                    f"a {len(text.encode())}-byte event is larger than the {limit}-byte "
                    "message limit of the WebRTC data channel (the answer's "
                    "a=max-message-size): not sent"
                )
            await trio.lowlevel.checkpoint()
            self._bridge.call_soon(self._rtc.send_text, text)
        else:
            try:
                await self._outbound_send.send(text)
            except trio.ClosedResourceError:
                raise TransportClosed("the WebRTC transport has ended") from None
        counters = self._counters
        counters.messages_out += 1
        counters.bytes_out += len(text)

    async def send_audio(self, frame: AudioFrame) -> None:
        if frame.sample_rate != WIRE_SAMPLE_RATE or frame.channels != 1:
            raise ValueError(
                f"send_audio takes 24 kHz mono PCM16, got {frame.sample_rate} Hz "
                f"× {frame.channels} channels"
            )
        if len(frame.pcm) % 2:
            # Whole samples only: one stray byte would shift every later sample on the
            # track by a byte (noise for the rest of the call). Refused, not carried: a
            # carry byte keeps alignment only when the host split a sample on purpose,
            # and turns a single bad frame into a misaligned stream.
            raise ValueError(f"send_audio takes whole PCM16 samples: {len(frame.pcm)} bytes is odd")
        self._check_open()
        await trio.lowlevel.checkpoint()
        self._feed(frame.pcm)

    def offer_audio(self, frame: AudioFrame) -> bool:
        if (
            frame.sample_rate != WIRE_SAMPLE_RATE
            or frame.channels != 1
            or len(frame.pcm) % 2
            or self._closing
            or self._inbox.ended
        ):
            return False  # send_audio refuses it with the reason
        self._feed(frame.pcm)
        return True

    def _feed(self, pcm: bytes) -> None:
        # Straight into the track's thread-safe queue: no wakeup of the bridge loop per frame
        # (the track drains the queue on its own tick, and wakes itself only when suppressed).
        self._rtc.track.feed(pcm)
        self._counters.audio_frames_out += 1

    @property
    def remote_frames_missing(self) -> int:
        """Remote audio frames lost on the way: gaps in the RTP timestamps of the model's
        track after sound (a gap after silence is the server's DTX pause, not a loss). A
        benchmark figure."""
        return self._rtc.inbound.frames_missing

    async def receive_batch(self) -> list[Inbound]:
        return await self._inbox.get_batch()

    async def aclose(self) -> None:
        if self._closing:
            await trio.lowlevel.checkpoint()
            return
        self._closing = True
        self._inbox.end(TransportEnded(ENDED_REQUESTED, None, None))
        self._outbound_send.close()
        self._liveness_scope.cancel()
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
            if self._sideband is not None:
                await self._sideband.aclose()
            self._sideband_scope.cancel()
            await self._bridge.run(self._rtc.close)

    def statistics(self) -> TransportStatistics:
        self._counters.audio_out_dropped = self._rtc.track.frames_dropped
        queued = self._outbound_send.statistics().current_buffer_used
        snapshot = self._counters.snapshot("webrtc", outbound_queued=queued)
        # Every remote frame the peer sent counts, also silence still held for its batch
        # (the bridge counts a frame before handing it over).
        received = self._rtc.inbound.frames_received
        if received > snapshot.audio_frames_in:
            snapshot = attrs.evolve(snapshot, audio_frames_in=received)
        if self._sideband is not None:
            # In sideband control the events travel on the inner WebSocket, which counts
            # the binary frames it drops; they belong to this transport's contract too.
            dropped = self._sideband.statistics().binary_frames_dropped
            snapshot = attrs.evolve(
                snapshot, binary_frames_dropped=snapshot.binary_frames_dropped + dropped
            )
        return snapshot

    # --- RtcSink: called on the trio thread through TrioPort --------------------------------

    def on_text(self, text: str) -> None:
        self._inbox.put_text(text)

    def on_binary(self) -> None:
        self._counters.binary_frames_dropped += 1

    def on_audio(self, frame: AudioFrame) -> None:
        self._inbox.put_audio(frame)

    def on_audio_batch(self, frames: tuple[AudioFrame, ...]) -> None:
        put = self._inbox.put_audio
        for frame in frames:
            put(frame)

    def on_audio_fill(self, frames: tuple[AudioFrame, ...]) -> None:
        self._inbox.put_filler(frames)

    def on_channel_open(self) -> None:
        self._opened.set()

    def on_channel_closed(self) -> None:
        if not self._opened.is_set():  # still connecting: a failed start, not a hang-up
            self.on_failed("the peer closed the connection before it was established")
            return
        self._end(TransportEnded(ENDED_CLOSED, None, None))  # the peer hung up in order

    def on_failed(self, error: str) -> None:
        if self._failure is None:
            self._failure = error
        self._opened.set()
        self._end(TransportEnded(ENDED_ERROR, None, error))

    def _end(self, ended: TransportEnded) -> None:
        if self._closing:
            return
        self._inbox.end(ended)
        self._outbound_send.close()
        self._liveness_scope.cancel()

    # --- liveness ----------------------------------------------------------------------------

    def _activity(self) -> int:
        # Everything that proves the peer is there, from counters the hot path keeps anyway.
        c = self._counters
        return c.messages_in + self._rtc.inbound.frames_received + c.audio_in_dropped

    async def _watch_liveness(self, liveness_timeout: float) -> None:
        """End the transport when the peer sent nothing for ``liveness_timeout`` (module
        docstring). Runs in the caller's nursery until the transport ends."""
        tick = liveness_timeout / LIVENESS_TICKS
        with self._liveness_scope:
            last = self._activity()
            quiet_since = trio.current_time()
            while not self._closing and not self._inbox.ended:
                await trio.sleep(tick)
                now = trio.current_time()
                activity = self._activity()
                if activity != last:
                    last, quiet_since = activity, now
                elif now - quiet_since >= liveness_timeout - tick:
                    self.on_failed(
                        f"no audio and no event from the peer for {liveness_timeout:g} s "
                        "(liveness_timeout): the peer is gone"
                    )
                    return

    # --- sideband ----------------------------------------------------------------------------

    async def _run_sideband(
        self,
        url: str,
        headers: Mapping[str, str],
        retries: int,
        backoff: float,
        connect_timeout: float,
        liveness_timeout: float = DEFAULT_LIVENESS_TIMEOUT,
    ) -> None:
        # Runs in the caller's nursery: nothing may escape from here, every failure becomes
        # the transport's TransportEnded.
        try:
            with self._sideband_scope:
                async with trio.open_nursery() as nursery:
                    ws = await self._join_sideband(
                        nursery, url, headers, retries, backoff, connect_timeout, liveness_timeout
                    )
                    if ws is None:
                        return
                    nursery.start_soon(self._sideband_writer, ws)
                    await self._sideband_reader(ws)
                    nursery.cancel_scope.cancel()
        except Exception as exc:
            self._end(
                TransportEnded(ENDED_ERROR, None, server_text(f"sideband failed: {describe(exc)}"))
            )

    async def _join_sideband(
        self,
        nursery: trio.Nursery,
        url: str,
        headers: Mapping[str, str],
        retries: int,
        backoff: float,
        connect_timeout: float,
        liveness_timeout: float,
    ) -> WebSocketTransport | None:
        for attempt in range(retries + 1):
            try:
                ws = await connect_websocket(
                    nursery,
                    url,
                    headers,
                    connect_timeout=connect_timeout,
                    liveness_timeout=liveness_timeout,
                )
            except ConnectError as exc:
                if attempt == retries:
                    error = f"sideband join failed after {attempt + 1} attempts: {exc.message}"
                    self._end(TransportEnded(ENDED_ERROR, None, error))
                    return None
                await trio.sleep(backoff * 2**attempt)
            else:
                self._sideband = ws
                if self._closing:  # aclose() raced the last connect attempt
                    await ws.aclose()
                    return None
                return ws
        return None

    async def _sideband_reader(self, ws: WebSocketTransport) -> None:
        inbox = self._inbox
        while True:
            for item in await ws.receive_batch():
                if type(item) is str:
                    inbox.put_text(item)
                elif isinstance(item, TransportEnded):
                    self._end(item)
                    await ws.aclose()
                    return

    async def _sideband_writer(self, ws: WebSocketTransport) -> None:
        async for text in self._outbound_recv:
            try:
                await ws.send_text(text)
            except TransportClosed:
                return  # the reader reports how the sideband ended


async def connect_webrtc(
    nursery: trio.Nursery,
    *,
    base_url: str,
    api_key: str,
    session: Mapping[str, Any],
    control: ControlChannel = "datachannel",
    version: str = "v2",
    sideband_base_url: str | None = None,
    headers: Mapping[str, str] | None = None,
    connect_timeout: float = 10.0,
    datachannel_open_timeout: float | None = None,
    sideband_retries: int = 5,
    sideband_backoff: float = 0.05,
    outbound_queue_size: int = 256,
    ice_servers: Sequence[str | Mapping[str, Any]] = (),
    liveness_timeout: float = DEFAULT_LIVENESS_TIMEOUT,
    ptime_ms: int = 20,
    silence_hangover_ms: int | None = 1000,
    remote_silence_hangover_ms: int | None = 500,
) -> WebRTCTransport:
    """Start a WebRTC call with a realtime server.

    ``session`` is the initial session JSON posted with the offer (ignored with an ``ek_``
    key, whose session was fixed when it was minted). ``sideband_base_url`` defaults to
    ``base_url``; the sideband URL is ``realtime_websocket_url(…, call_id=<call id>)``.
    ``connect_timeout`` is one deadline for offer + POST + answer + the data channel opening
    (``datachannel_open_timeout``, when given, bounds that last wait further; it never
    extends the deadline). Background work (sideband join, liveness watch) runs in
    ``nursery``. ``liveness_timeout``: a peer that sends no audio and no event for this many
    seconds is dead (realtime servers stream RTP continuously, silence included, or send a
    DTX keepalive packet every ~400 ms), and so is
    a connection whose ICE/DTLS state becomes ``failed``: the transport ends with an error.
    ``ice_servers`` (STUN/TURN URLs, or mappings with ``urls``/``username``/``credential``)
    are passed to the peer connection as they are; the default is none (host candidates
    only: nothing is sent beyond this machine's own interfaces).

    Media (``docs/perf/webrtc.md``): host audio goes out as Opus packets of ``ptime_ms``
    (20, 40 or 60; lowered to the answer's ``a=maxptime``). After ``silence_hangover_ms`` of
    host silence (peak ≤ -60 dBFS, or no audio at all) the track stops sending until the
    host sends sound again; the hangover must exceed the server VAD's
    ``silence_duration_ms`` with margin (``None``: always send, silence included). Remote
    silence is resampled and delivered frame by frame for ``remote_silence_hangover_ms``
    after the model's last sound, then delivered as digital silence, 100 ms per hand-over
    (``None``: every frame resampled and handed over on its own).

    Raises:
        ConnectError: the offer, the POST (``status`` set for HTTP errors), the answer, or the
            data channel failed or timed out.
        ValueError: an ``ice_servers`` entry is malformed, ``liveness_timeout`` is not
            positive, or ``ptime_ms`` is not 20, 40 or 60.
    """
    if ptime_ms not in (20, 40, 60):
        raise ValueError(f"ptime_ms must be 20, 40 or 60, not {ptime_ms!r}")
    if not liveness_timeout > 0:
        raise ValueError(f"liveness_timeout must be > 0 seconds, not {liveness_timeout!r}")
    try:
        # aiortc and av are the optional `webrtc` extra: loaded on first use, so a
        # WebSocket-only host never imports them.
        from ._rtc_asyncio import RtcSession, ice_configuration
    except ImportError as exc:
        raise missing_extra("the WebRTC transport", "webrtc", exc) from exc
    configuration = ice_configuration(ice_servers)
    bridge = get_bridge()
    transport = WebRTCTransport(bridge, control, outbound_queue_size)
    rtc = RtcSession(
        TrioPort.current(),
        transport,
        data_channel=control == "datachannel",
        configuration=configuration,
        ptime_ms=ptime_ms,
        silence_hangover_ms=silence_hangover_ms,
        remote_silence_hangover_frames=None
        if remote_silence_hangover_ms is None
        else -(-remote_silence_hangover_ms // 20),
    )
    transport._rtc = rtc
    connected = False
    # One deadline for everything (issue 12.6): offer, POST, answer and, in datachannel
    # control, the data channel opening. ``step`` names what was in progress for the message.
    step = "creating the offer"
    try:
        try:
            with trio.fail_after(connect_timeout):
                try:
                    offer = await bridge.run(rtc.create_offer)
                except Exception as exc:
                    raise ConnectError(
                        f"creating the WebRTC offer failed: {describe(exc)}"
                    ) from exc
                step = "POST /realtime/calls"
                answer = await create_call(
                    base_url=base_url,
                    api_key=api_key,
                    offer_sdp=offer,
                    session=session,
                    headers=headers,
                    version=version,
                    http_timeout=connect_timeout,
                )
                step = "applying the answer"
                try:
                    await bridge.run(rtc.apply_answer, answer.sdp)
                except Exception as exc:
                    raise ConnectError(f"the answer SDP was rejected: {describe(exc)}") from exc
                transport.call_id = answer.call_id
                if control == "datachannel":
                    step = "waiting for the oai-events data channel to open"
                    channel_wait = (
                        math.inf if datachannel_open_timeout is None else datachannel_open_timeout
                    )
                    with trio.move_on_after(channel_wait):
                        await transport._opened.wait()
                    if transport._failure is not None:
                        raise ConnectError(f"WebRTC connection failed: {transport._failure}")
                    if not transport._opened.is_set():
                        raise ConnectError(
                            f"the oai-events data channel did not open within {channel_wait:g} s"
                        )
        except trio.TooSlowError:
            raise ConnectError(
                f"WebRTC connect timed out after {connect_timeout:g} s ({step})"
            ) from None
        if control == "sideband":
            try:
                url = realtime_websocket_url(
                    sideband_base_url or base_url, version=version, call_id=answer.call_id
                )
                sideband_headers = realtime_headers(api_key=api_key, extra=headers, version=version)
            except LocalProtocolError as exc:
                raise ConnectError(f"sideband: {exc.message}") from None
            nursery.start_soon(
                transport._run_sideband,
                url,
                sideband_headers,
                sideband_retries,
                sideband_backoff,
                connect_timeout,
                liveness_timeout,
            )
        nursery.start_soon(transport._watch_liveness, liveness_timeout)
        transport._opened.set()  # sideband: established from here on
        connected = True
        return transport
    finally:
        if not connected:
            transport._closing = True
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
                await bridge.run(rtc.close)
