"""WebRTC transport against a loopback aiortc answerer (``_rtc_peer``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import pytest
import trio
from aioice import stun
from aiortc import RTCIceGatherer, RTCIceServer

from duplex.protocol._audio import AudioFrame
from duplex.transports import (
    ConnectError,
    TransportClosed,
    TransportEnded,
    WebRTCTransport,
    connect_webrtc,
)
from duplex.transports._bridge import get_bridge

from ._poll import wait_for
from ._rtc_peer import AnswerServer, serve_answerer
from ._ws_server import serve

API_KEY = "sk-test-webrtc-secret-0001"
SESSION = {"type": "realtime", "model": "gpt-realtime", "instructions": "be brief"}


async def _connect(
    nursery: trio.Nursery, server: AnswerServer, **kwargs: object
) -> WebRTCTransport:
    return await connect_webrtc(
        nursery,
        base_url=server.base_url,
        api_key=kwargs.pop("api_key", API_KEY),  # type: ignore[arg-type]
        session=SESSION,
        **kwargs,  # type: ignore[arg-type]
    )


def _dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


async def test_datachannel_text_both_ways_and_call_post() -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            t0 = time.perf_counter()
            transport = await _connect(nursery, server)
            opened_s = time.perf_counter() - t0
            peer = await server.accept()
            assert transport.audio_native
            assert transport.kind == "webrtc"
            assert transport.call_id == peer.call_id
            request = server.requests[0]
            assert request["headers"]["content-type"].startswith("multipart/form-data")
            assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
            assert request["session"] == SESSION
            assert "m=application" in request["offer"]
            assert request["offer"].count("m=audio") == 1
            assert "a=sendrecv" in request["offer"]
            await transport.send_text('{"type":"session.update"}')
            assert await peer.receive_text() == '{"type":"session.update"}'
            await peer.send_text('{"type":"session.updated"}')
            items: list[object] = []
            while '{"type":"session.updated"}' not in items:
                items.extend(await transport.receive_batch())
            print(f"offer -> data channel open: {opened_s * 1000:.0f} ms")
            assert transport.statistics().messages_in >= 1
            await transport.aclose()


async def test_tone_from_client_reaches_answerer() -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            transport = await _connect(nursery, server)
            peer = await server.accept()
            n = np.arange(24_000)  # one second at 24 kHz
            tone = (np.sin(2 * np.pi * 440 * n / 24_000) * 8000).astype(np.int16).tobytes()
            # odd chunk sizes (7 ms = 168 samples): the track re-chunks to 20 ms
            chunk = 168 * 2
            for offset in range(0, len(tone), chunk):
                await transport.send_audio(AudioFrame(tone[offset : offset + chunk]))
            assert transport.statistics().audio_frames_out == -(-len(tone) // chunk)

            def loud_samples() -> int:
                audio = peer.received_audio()
                return int(np.count_nonzero(np.abs(audio) > 2000))

            await wait_for(lambda: loud_samples() > 30_000, 0.02)  # ~0.8 s of the tone
            audio = peer.received_audio()
            assert all(rate == 48_000 for rate, _ in peer.audio_formats)
            loud = audio[np.abs(audio) > 0]
            assert abs(_dominant_hz(loud[2000:30_000], 48_000) - 440) < 5
            with pytest.raises(ValueError, match="24 kHz mono"):
                await transport.send_audio(AudioFrame(b"\x00" * 960, sample_rate=48_000))
            await transport.aclose()


async def test_audio_from_answerer_arrives_as_24k_mono_in_real_time_silence_batched() -> None:
    # The peer plays a 400 ms tone, then streams silence for ever. Delivered: every frame,
    # as 24 kHz mono, in real time: the tone and 500 ms of its trailing silence frame by
    # frame, then digital silence handed over 5 frames at a time (the audio received may
    # differ from the wall time between the first and the last frame by at most 150 ms:
    # loopback jitter plus one batch).
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            server.tone_ms = 400
            transport = await _connect(nursery, server)
            frames: list[AudioFrame] = []
            arrivals: list[float] = []
            batches: list[int] = []
            while sum(f.duration_ms for f in frames) < 1500:
                batch = [i for i in await transport.receive_batch() if isinstance(i, AudioFrame)]
                frames.extend(batch)
                arrivals.extend([time.perf_counter()] * len(batch))
                batches.append(len(batch))
            assert {(f.sample_rate, f.channels) for f in frames} == {(24_000, 1)}
            total_ms = sum(f.duration_ms for f in frames)
            wall_ms = (arrivals[-1] - arrivals[0]) * 1000 + frames[0].duration_ms
            assert abs(total_ms - wall_ms) < 150, (total_ms, wall_ms)
            pcm = np.frombuffer(b"".join(f.pcm for f in frames), np.int16)
            loud = np.flatnonzero(np.abs(pcm) > 2000)
            assert len(loud) > 0.3 * 24_000  # most of the 400 ms tone
            tone = pcm[loud[0] : loud[-1]]
            assert abs(_dominant_hz(tone, 24_000) - 660) < 10
            assert int(np.abs(tone).max()) < 12_000  # downmix kept the level (tone peak 8000)
            assert not pcm[-24 * 300 :].any()  # past the hangover: digital silence
            assert transport._rtc.inbound.frames_batched >= 5
            assert max(batches) >= 5  # one hand-over brought a batch of silence
            assert transport.statistics().audio_frames_in >= len(frames)
            await transport.aclose()


async def test_every_remote_frame_is_delivered_without_remote_silence_hangover() -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            server.tone_ms = 100
            transport = await _connect(nursery, server, remote_silence_hangover_ms=None)
            frames: list[AudioFrame] = []
            while sum(f.duration_ms for f in frames) < 1000:  # 0.9 s of silence after the tone
                for item in await transport.receive_batch():
                    if isinstance(item, AudioFrame):
                        frames.append(item)
            await transport.aclose()


async def test_ephemeral_key_posts_raw_sdp() -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            transport = await _connect(nursery, server, api_key="ek_test_ephemeral_1234")
            request = server.requests[0]
            assert request["headers"]["content-type"] == "application/sdp"
            assert request["offer"].startswith("v=0")
            assert request["session"] is None
            await transport.aclose()


@pytest.mark.parametrize("status", [401, 500])
async def test_http_error_is_connect_error_with_status(status: int) -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            server.status = status
            # real servers echo (part of) a wrong key in the error message
            server.error_body = f'{{"error":{{"message":"Incorrect API key: {API_KEY}"}}}}'.encode()
            with pytest.raises(ConnectError) as info:
                await _connect(nursery, server)
            assert info.value.status == status
            assert "Incorrect API key" in str(info.value)
            assert API_KEY not in str(info.value)
            assert "sk-test" not in str(info.value)


@pytest.mark.parametrize(
    ("location", "message"),
    [
        (None, "realtime call response missing Location"),
        ("/v1/realtime/calls/nope", "realtime call Location does not contain a call id"),
    ],
)
async def test_bad_location_is_connect_error(location: str | None, message: str) -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            server.location = location
            with pytest.raises(ConnectError, match=message):
                await _connect(nursery, server)


async def test_garbage_answer_sdp_is_connect_error() -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            server.garbage_sdp = True
            with pytest.raises(ConnectError, match="answer SDP"):
                await _connect(nursery, server)


async def test_datachannel_never_opening_times_out() -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            server.dead = True
            t0 = time.perf_counter()
            with pytest.raises(ConnectError, match=r"did not open within 0\.5 s|failed"):
                await _connect(nursery, server, datachannel_open_timeout=0.5)
            assert time.perf_counter() - t0 < 3


async def test_connection_refused_is_connect_error() -> None:
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            with pytest.raises(ConnectError):
                await connect_webrtc(
                    nursery, base_url="http://127.0.0.1:1/v1", api_key=API_KEY, session=SESSION
                )


async def test_sideband_join_after_refusals_flushes_queue_in_order() -> None:
    with trio.fail_after(15):
        async with (
            serve_answerer() as server,
            serve(reject_first=3) as sideband,
            trio.open_nursery() as nursery,
        ):
            transport = await _connect(
                nursery,
                server,
                control="sideband",
                sideband_base_url=f"http://127.0.0.1:{sideband.port}/v1",
                sideband_backoff=0.01,
            )
            assert "m=application" not in server.requests[0]["offer"]
            for i in range(5):
                await transport.send_text(f"queued {i}")
            conn = await sideband.accept()
            assert conn.path == f"/v1/realtime?call_id={transport.call_id}"
            assert [await conn.ws.get_message() for _ in range(5)] == [
                f"queued {i}" for i in range(5)
            ]
            assert len(sideband.requests) == 4
            _path, headers = sideband.requests[-1]
            assert (b"authorization", f"Bearer {API_KEY}".encode()) in headers
            await conn.ws.send_message("from sideband")
            items: list[object] = []
            while "from sideband" not in items:
                items.extend(await transport.receive_batch())
            await transport.aclose()


async def test_sideband_exhaustion_ends_with_error() -> None:
    with trio.fail_after(15):
        async with (
            serve_answerer() as server,
            serve(reject_first=100) as sideband,
            trio.open_nursery() as nursery,
        ):
            transport = await _connect(
                nursery,
                server,
                control="sideband",
                sideband_base_url=f"http://127.0.0.1:{sideband.port}/v1",
                sideband_retries=2,
                sideband_backoff=0.01,
            )
            await transport.send_text("never delivered")
            items: list[object] = []
            while not items or not isinstance(items[-1], TransportEnded):
                items.extend(await transport.receive_batch())
            ended = items[-1]
            assert isinstance(ended, TransportEnded)
            assert ended.reason == "error"
            assert ended.error is not None
            assert "after 3 attempts" in ended.error
            assert "HTTP 503" in ended.error
            assert API_KEY not in ended.error
            assert len(sideband.requests) == 3
            await transport.aclose()


async def test_peer_hangup_ends_transport_once() -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            transport = await _connect(nursery, server)
            peer = await server.accept()
            await get_bridge().run(peer.close_bl)
            items: list[object] = []
            while not items or not isinstance(items[-1], TransportEnded):
                items.extend(await transport.receive_batch())
            ended = [item for item in items if isinstance(item, TransportEnded)]
            assert len(ended) == 1
            # A peer that hangs up in order is a graceful end (the rule in _abc), whichever of
            # the data channel or the peer connection reports it first.
            assert ended[0] == TransportEnded("closed", None, None)
            with pytest.raises(TransportClosed):
                await transport.send_text("gone")
            with pytest.raises(TransportClosed):
                await transport.send_audio(AudioFrame(b"\x00\x00" * 480))
            await transport.aclose()


async def test_close_while_sideband_joining_abandons_the_join() -> None:
    with trio.fail_after(15):
        async with (
            serve_answerer() as server,
            serve(reject_first=1000) as sideband,
            trio.open_nursery() as nursery,
        ):
            transport = await _connect(
                nursery,
                server,
                control="sideband",
                sideband_base_url=f"http://127.0.0.1:{sideband.port}/v1",
                sideband_retries=1000,
                sideband_backoff=0.01,
            )
            await wait_for(lambda: len(sideband.requests) >= 2)
            await transport.aclose()
            attempts = len(sideband.requests)
            assert await transport.receive_batch() == [TransportEnded("requested", None, None)]
            await trio.sleep(0.2)
            assert len(sideband.requests) == attempts  # no join attempt after close


class _StunServer:
    """A loopback STUN server: records every binding request and answers it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[tuple[str, int]] = []


@asynccontextmanager
async def _stun_server() -> AsyncIterator[_StunServer]:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    server = _StunServer(sock.getsockname()[1])

    async def answer() -> None:
        while True:
            data, addr = await sock.recvfrom(2048)
            try:
                request = stun.parse_message(data)
            except ValueError:
                continue
            server.requests.append(addr)
            response = stun.Message(
                message_method=stun.Method.BINDING,
                message_class=stun.Class.RESPONSE,
                transaction_id=request.transaction_id,
            )
            response.attributes["XOR-MAPPED-ADDRESS"] = addr
            await sock.sendto(bytes(response), addr)

    with sock:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer)
            yield server
            nursery.cancel_scope.cancel()


async def test_no_stun_server_is_contacted_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # aiortc falls back to RTCIceGatherer.getDefaultIceServers() (a public STUN server) when
    # a peer connection gets no configuration. Point that default at a loopback STUN server:
    # the transport must never contact it, because it passes its own (empty) list.
    async with _stun_server() as stun_server:
        default = [f"stun:127.0.0.1:{stun_server.port}"]
        monkeypatch.setattr(
            RTCIceGatherer,
            "getDefaultIceServers",
            classmethod(lambda cls: [RTCIceServer(u) for u in default]),
        )
        with trio.fail_after(15):
            async with serve_answerer() as server, trio.open_nursery() as nursery:
                transport = await _connect(nursery, server)
                # The offer was sent after ICE gathering completed: any STUN request would
                # already have been made.
                assert "srflx" not in server.requests[0]["offer"]
                await transport.aclose()
        assert stun_server.requests == []


@pytest.mark.parametrize("form", ["url", "mapping"])
async def test_ice_servers_are_passed_through(form: str) -> None:
    async with _stun_server() as stun_server:
        url = f"stun:127.0.0.1:{stun_server.port}"
        ice_servers = [url] if form == "url" else [{"urls": [url]}]
        with trio.fail_after(15):
            async with serve_answerer() as server, trio.open_nursery() as nursery:
                transport = await _connect(nursery, server, ice_servers=ice_servers)
                await transport.aclose()
        assert stun_server.requests  # the gatherer asked our server


async def test_malformed_ice_servers_are_refused_before_connecting() -> None:
    async with trio.open_nursery() as nursery:
        with pytest.raises(ValueError, match="ice_servers"):
            await connect_webrtc(
                nursery,
                base_url="http://127.0.0.1:1/v1",
                api_key=API_KEY,
                session=SESSION,
                ice_servers=[{"url": "stun:127.0.0.1:3478"}],
            )


async def test_connect_timeout_is_one_deadline_for_the_whole_start() -> None:
    # ICE can never connect (the answerer closed its side): the start fails at
    # connect_timeout, not at a hard-coded data channel timeout on top of it.
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            server.dead = True
            began = trio.current_time()
            with pytest.raises(ConnectError, match=r"timed out after 1 s \(waiting for the oai"):
                await _connect(nursery, server, connect_timeout=1.0)
            took = trio.current_time() - began
            assert 1.0 <= took < 1.5, took


async def test_a_silent_peer_ends_the_transport_within_liveness_timeout() -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            transport = await _connect(nursery, server, liveness_timeout=0.5)
            peer = await server.accept()
            items: list[object] = []
            while not any(isinstance(item, AudioFrame) for item in items):
                items.extend(await transport.receive_batch())  # media flows
            get_bridge().call_soon(peer.go_silent_bl)
            silent_at = trio.current_time()
            while not isinstance(items[-1], TransportEnded):
                items.extend(await transport.receive_batch())
            took = trio.current_time() - silent_at
            ended = items[-1]
            assert isinstance(ended, TransportEnded)
            assert ended.reason == "error"
            assert ended.error is not None
            assert "liveness_timeout" in ended.error
            # within the timeout (plus the audio already in flight and scheduling)
            assert 0.4 <= took < 0.5 + 0.25, took
            await transport.aclose()


async def test_a_live_peer_is_not_ended_by_the_liveness_watch() -> None:
    # The peer's silence (batched past the 500 ms hangover) keeps it alive: 100 frames
    # (2 s) span more than three liveness periods.
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            server.tone_ms = 100
            transport = await _connect(nursery, server, liveness_timeout=0.6)
            items: list[object] = []

            async def read() -> None:
                while True:
                    items.extend(await transport.receive_batch())

            nursery.start_soon(read)
            await wait_for(lambda: transport.statistics().audio_frames_in >= 100, 0.02)
            assert not any(isinstance(item, TransportEnded) for item in items), items
            nursery.cancel_scope.cancel()
            await transport.aclose()


async def test_odd_length_audio_is_refused_and_alignment_kept() -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            transport = await _connect(nursery, server)
            with pytest.raises(ValueError, match="odd"):
                await transport.send_audio(AudioFrame(b"\x00" * 961))
            assert transport.statistics().audio_frames_out == 0
            await transport.aclose()


async def test_outbound_drops_are_counted_in_transport_statistics() -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            transport = await _connect(nursery, server)
            # 5 s of audio at once: the track keeps 2 s and drops the older 3 s (150 frames
            # of 20 ms, give or take the frames it already sent meanwhile).
            for _ in range(250):
                await transport.send_audio(AudioFrame(b"\x00\x00" * 480))
            await wait_for(lambda: transport.statistics().audio_out_dropped >= 140)
            stats = transport.statistics()
            assert stats.audio_frames_out == 250
            assert 140 <= stats.audio_out_dropped <= 150
            await transport.aclose()


async def test_call_error_body_is_escaped_and_redacted() -> None:
    with trio.fail_after(15):
        async with serve_answerer() as server, trio.open_nursery() as nursery:
            server.status = 400
            server.error_body = f"bad\r\nFORGED: {API_KEY}\x1b[2J\x00".encode()
            with pytest.raises(ConnectError) as info:
                await _connect(nursery, server)
            message = str(info.value)
            for raw in ("\r", "\n", "\x1b", "\x00"):
                assert raw not in message
            assert API_KEY not in message
            assert "bad\\x0d\\x0aFORGED: [redacted]\\x1b[2J\\x00" in message
