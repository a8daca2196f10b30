"""A small WebRTC answerer for transport tests: ``POST /v1/realtime/calls`` over hypercorn
(trio) and an aiortc peer connection on the duplex asyncio bridge loop.

``serve_answerer()`` yields an ``AnswerServer``; each accepted call becomes an ``AnswerPeer``
the test drives from trio: send/receive data channel text, close the channel, go silent
(``go_silent_bl``), read the audio
the client sent, and (always) stream a tone to the client: ``tone_hz`` for ``tone_ms``, then
silence. Fault knobs on ``AnswerServer``: ``status`` (non-201), ``location`` (``None`` omits
the header), ``garbage_sdp`` (answer with nonsense), ``dead`` (answer, then close the peer
connection so nothing ever connects).

This is test support, so it may use asyncio directly: everything below marked "bridge loop"
runs on ``transports._bridge``'s loop, exactly like the transport's own asyncio side.
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import av
import numpy as np
import orjson
import trio
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from hypercorn.config import Config
from hypercorn.trio import serve

from duplex.transports._bridge import TrioPort, get_bridge

PEER_RATE = 48_000
PEER_FRAME = 960  # 20 ms at 48 kHz
_ids = itertools.count(1)


class ToneTrack(MediaStreamTrack):
    """48 kHz mono: ``tone_hz`` for ``tone_ms``, then silence; paced in real time."""

    kind = "audio"

    def __init__(self, tone_hz: float, tone_ms: int) -> None:
        super().__init__()
        self._tone_samples = tone_ms * PEER_RATE // 1000
        self._hz = tone_hz
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            self._pts += PEER_FRAME
            delay = self._start + self._pts / PEER_RATE - now
            if delay > 0:
                await asyncio.sleep(delay)
        n = np.arange(self._pts, self._pts + PEER_FRAME)
        samples = (np.sin(2 * np.pi * self._hz * n / PEER_RATE) * 8000).astype(np.int16)
        samples[n >= self._tone_samples] = 0
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = PEER_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, PEER_RATE)
        return frame


class AnswerPeer:
    """One answered call. Methods without ``_bl`` run on trio."""

    def __init__(self, port: TrioPort, tone_hz: float, tone_ms: int) -> None:
        self.call_id = f"rtc_test_{next(_ids)}"
        self._port = port
        self._tone = ToneTrack(tone_hz, tone_ms)
        self._texts_send, self._texts_recv = trio.open_memory_channel[str](1000)
        self.channel_open = trio.Event()
        self.audio_frames: list[np.ndarray] = []  # what the client sent, per frame (bridge loop)
        self.audio_formats: set[tuple[int, str]] = set()
        self._pc: RTCPeerConnection | None = None
        self._channel: RTCDataChannel | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def answer_bl(self, offer: str) -> str:
        # No ICE servers: aiortc's default is a public STUN server (nothing leaves loopback).
        pc = self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        port = self._port

        @pc.on("datachannel")
        def _datachannel(channel: RTCDataChannel) -> None:
            self._channel = channel
            port.call(self.channel_open.set)

            @channel.on("message")
            def _message(message: str | bytes) -> None:
                if isinstance(message, str):
                    port.call(self._texts_send.send_nowait, message)

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            task = asyncio.ensure_future(self._consume_bl(track))
            self._tasks.add(task)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        pc.addTrack(self._tone)
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def _consume_bl(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, av.AudioFrame)
            self.audio_formats.add((frame.sample_rate, frame.layout.name))
            data = frame.to_ndarray().reshape(-1)
            channels = len(frame.layout.channels)
            self.audio_frames.append(data[::channels].copy())

    def _send_bl(self, text: str) -> None:
        assert self._channel is not None
        self._channel.send(text)

    def go_silent_bl(self) -> None:
        """Stop sending anything (RTP and data) while the connection stays up: a peer that
        hung or died behind a path that still answers ICE consent checks."""
        self._tone.stop()

    def _close_channel_bl(self) -> None:
        if self._channel is not None:
            self._channel.close()

    async def close_bl(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tone.stop()
        if self._pc is not None:
            await self._pc.close()

    # --- trio side ---------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        await self.channel_open.wait()
        get_bridge().call_soon(self._send_bl, text)

    async def receive_text(self) -> str:
        return await self._texts_recv.receive()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        get_bridge().call_soon(self._close_channel_bl)
        await trio.lowlevel.checkpoint()

    def received_audio(self) -> np.ndarray:
        """Everything the client sent, mono, at the decoder's rate (48 kHz)."""
        frames = list(self.audio_frames)
        return np.concatenate(frames) if frames else np.zeros(0, np.int16)


class AnswerServer:
    def __init__(self) -> None:
        self.base_url = ""
        self.status = 201
        self.error_body = b'{"error":{"message":"scripted failure"}}'
        self.location: str | None = "auto"
        self.garbage_sdp = False
        self.dead = False
        self.tone_hz = 660.0
        self.tone_ms = 400
        self.requests: list[dict[str, Any]] = []
        self.peers: list[AnswerPeer] = []
        self._send, self._recv = trio.open_memory_channel[AnswerPeer](100)

    async def accept(self) -> AnswerPeer:
        return await self._recv.receive()

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        content_type = headers.get("content-type", "")
        offer, session = _parse_offer(content_type, body)
        self.requests.append(
            {"path": scope["path"], "headers": headers, "session": session, "offer": offer}
        )
        if scope["method"] != "POST" or scope["path"] != "/v1/realtime/calls":
            await _respond(send, 404, b"not found", [])
            return
        if self.status >= 300:
            await _respond(send, self.status, self.error_body, [])
            return
        peer = AnswerPeer(TrioPort.current(), self.tone_hz, self.tone_ms)
        self.peers.append(peer)
        if self.garbage_sdp:
            answer = "this is not an SDP answer"
        else:
            answer = await get_bridge().run(peer.answer_bl, offer)
            if self.dead:
                await get_bridge().run(peer.close_bl)
        extra: list[tuple[bytes, bytes]] = []
        location = (
            f"/v1/realtime/calls/{peer.call_id}" if self.location == "auto" else self.location
        )
        if location is not None:
            extra.append((b"location", location.encode()))
        await _respond(send, self.status, answer.encode(), extra, b"application/sdp")
        await self._send.send(peer)


def _parse_offer(content_type: str, body: bytes) -> tuple[str, dict[str, Any] | None]:
    if content_type.startswith("application/sdp"):
        return body.decode(), None
    boundary = content_type.split("boundary=", 1)[1].strip('"')
    offer, session = "", None
    for part in body.split(b"--" + boundary.encode()):
        head, _, content = part.partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        if b'name="sdp"' in head:
            offer = content.decode()
        elif b'name="session"' in head:
            session = orjson.loads(content)
    return offer, session


async def _respond(
    send: Any,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    content_type: bytes = b"application/json",
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def serve_answerer() -> AsyncIterator[AnswerServer]:
    server = AnswerServer()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    shutdown = trio.Event()

    async def trigger() -> None:
        await shutdown.wait()

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            lambda task_status: serve(
                cast(Any, server.app), config, shutdown_trigger=trigger, task_status=task_status
            )
        )
        server.base_url = binds[0] + "/v1"
        try:
            yield server
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(3):
                for peer in server.peers:
                    await get_bridge().run(peer.close_bl)
            shutdown.set()
            nursery.cancel_scope.cancel()
