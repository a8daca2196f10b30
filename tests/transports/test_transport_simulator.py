"""The transports against the real local simulator (issue #4 "Tests"), plus ``wss://`` success.

Every client transport — WebSocket v1, WebSocket v2, WebRTC data channel, WebRTC sideband —
runs the same cases against ``open_simulator``: connect and exchange events, audio both ways,
close from either side, and the simulator's faults (HTTP errors, bad ``Location``, garbage
answer SDP, a data channel that never opens, sideband refusals, oversized frames, close codes,
drops). The memory transport stays on its in-process peer (``test_transport_conformance.py``).

Audio tolerance: model audio must arrive as 24 kHz mono PCM16. On WebSocket the decoded
``output_audio.delta`` bytes must total ``synthesize(reply)``'s duration within
``WS_AUDIO_TOLERANCE_MS`` (40 ms, one delta chunk; in practice exact). On WebRTC the remote
track runs continuously (silence between turns), so the span from the first to the last
frame with a peak above ``RTC_LOUD_THRESHOLD`` must match the span of the non-silent samples
of ``synthesize(reply)`` within ``RTC_AUDIO_TOLERANCE_MS`` (100 ms = 5 frames; Opus smearing
and 20 ms framing; observed ≈ 10 ms).

``TransportEnded`` follows the one rule in ``transports/_abc.py``: a close with 1000/1001 is
``"closed"``, any other code or a drop is ``"error"`` with the code as a plain ``int``.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import attrs
import numpy as np
import pytest
import trio
from trio_websocket import WebSocketRequest, serve_websocket

from duplex.protocol import (
    call_session_payload,
    encode_client_event,
    realtime_headers,
    realtime_websocket_url,
    session_start_event,
)
from duplex.protocol._audio import AudioFrame
from duplex.simulator import (
    FaultConfig,
    Scenario,
    Simulator,
    SimulatorConfig,
    open_simulator,
    synthesize,
    tone,
)
from duplex.transports import (
    ConnectError,
    Inbound,
    Transport,
    TransportClosed,
    TransportEnded,
    WebRTCTransport,
    WebSocketTransport,
    connect_webrtc,
    connect_websocket,
)

from .._support import SelfSignedCert, wait_until
from ._poll import read_ahead

API_KEY = "sk-simulator-conformance"
WS_AUDIO_TOLERANCE_MS = 40.0
RTC_AUDIO_TOLERANCE_MS = 100.0
#: a 24 kHz frame counts as speech above this peak (Opus leaves a little noise in silence)
RTC_LOUD_THRESHOLD = 64


@attrs.frozen
class Kind:
    name: str
    transport: str  # "websocket" | "webrtc"
    version: str
    control: Literal["datachannel", "sideband"] = "datachannel"

    @property
    def close_codes(self) -> bool:
        return not (self.transport == "webrtc" and self.control == "datachannel")

    @property
    def over_websocket(self) -> bool:
        """Events travel on a WebSocket (where WebSocket-level faults apply)."""
        return self.close_codes


WS_V1 = Kind("websocket-v1", "websocket", "v1")
WS_V2 = Kind("websocket-v2", "websocket", "v2")
RTC_DC = Kind("webrtc-datachannel", "webrtc", "v2", "datachannel")
RTC_SB = Kind("webrtc-sideband", "webrtc", "v2", "sideband")
KINDS = [WS_V1, WS_V2, RTC_DC, RTC_SB]
WEBRTC = [RTC_DC, RTC_SB]
kinds = pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
webrtc_kinds = pytest.mark.parametrize("kind", WEBRTC, ids=lambda k: k.name)


@asynccontextmanager
async def simulator(**config: Any) -> AsyncIterator[Simulator]:
    async with open_simulator(SimulatorConfig(**config)) as sim:
        yield sim


async def connect(nursery: trio.Nursery, sim: Simulator, kind: Kind, **options: Any) -> Transport:
    """Connect ``kind`` to ``sim`` and send the dialect's session start event."""
    assert sim.base_url is not None
    start = session_start_event(kind.version, instructions="conformance")
    if kind.transport == "websocket":
        url = realtime_websocket_url(sim.base_url, version=kind.version, model="gpt-realtime")
        headers = realtime_headers(api_key=API_KEY, version=kind.version)
        transport: Transport = await connect_websocket(nursery, url, headers, **options)
        await transport.send_text(encode_client_event(start, kind.version))
        return transport
    return await connect_webrtc(
        nursery,
        base_url=sim.base_url,
        api_key=API_KEY,
        session=call_session_payload(start, "gpt-realtime"),
        control=kind.control,
        version=kind.version,
        **options,
    )


def user_text(text: str) -> str:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return json.dumps({"type": "conversation.item.create", "item": item})


def event_type(item: Inbound) -> str | None:
    if not isinstance(item, str):
        return None
    try:
        value = json.loads(item).get("type")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


async def receive_until(
    transport: Transport, type_: str, into: list[Inbound] | None = None
) -> list[Inbound]:
    """Receive until an event of ``type_`` (returned list ends with it)."""
    items: list[Inbound] = [] if into is None else into
    while True:
        for item in await transport.receive_batch():
            items.append(item)
            if event_type(item) == type_:
                return items
            assert not isinstance(item, TransportEnded), (type_, item, items[-5:])


async def receive_until_ended(transport: Transport) -> list[Inbound]:
    items: list[Inbound] = []
    while not items or not isinstance(items[-1], TransportEnded):
        items.extend(await transport.receive_batch())
    return items


async def ask(transport: Transport, kind: Kind, text: str) -> None:
    await transport.send_text(user_text(text))
    if kind.version == "v2":
        await transport.send_text('{"type":"response.create"}')


# ---- connect, exchange, close ----------------------------------------------------------


@kinds
async def test_exchange_events(kind: Kind) -> None:
    with trio.fail_after(15):
        async with simulator() as sim, trio.open_nursery() as nursery:
            transport = await connect(nursery, sim, kind)
            await ask(transport, kind, "hello simulator")
            items = await receive_until(transport, "response.done")
            types = [event_type(i) for i in items]
            assert types[0] == "session.created"
            assert any(t and t.endswith("audio_transcript.done") for t in types)
            record = await sim.wait_for_session(1)
            assert "conversation.item.create" in record.types()
            stats = transport.statistics()
            assert stats.messages_in >= len([i for i in items if isinstance(i, str)])
            assert stats.messages_out >= 2
            await transport.aclose()
            ended = (await receive_until_ended(transport))[-1]
            assert isinstance(ended, TransportEnded)
            assert ended.reason == "requested"
            with pytest.raises(TransportClosed):
                await transport.send_text("after close")
            with pytest.raises(TransportClosed):
                await transport.receive_batch()


@kinds
@pytest.mark.parametrize("code", [1001, 4000])
async def test_server_close_code(kind: Kind, code: int) -> None:
    faults = FaultConfig(close_after_events=1, close_code=code, close_reason="scripted close")
    with trio.fail_after(15):
        async with simulator(faults=faults) as sim, trio.open_nursery() as nursery:
            transport = await connect(nursery, sim, kind)
            items = await receive_until_ended(transport)
            assert event_type(items[0]) == "session.created"
            ended = items[-1]
            assert isinstance(ended, TransportEnded)
            # The rule in transports/_abc.py: 1001 is a graceful close, 4000 an error. A data
            # channel close carries no code: the call was hung up in order, so "closed" (the
            # simulator's error event before it tells the engine why).
            if code == 1001 or not kind.close_codes:
                assert (ended.reason, ended.error) == ("closed", None), ended
            else:
                assert ended.reason == "error", ended
            if kind.close_codes:
                assert ended.code == code
                assert type(ended.code) is int
                if code != 1001:
                    assert ended.error is not None
                    assert ended.error.endswith(f"code {code}: scripted close")
            with pytest.raises(TransportClosed):
                await transport.send_text("too late")
            await transport.aclose()


@kinds
async def test_server_drop_is_an_error(kind: Kind) -> None:
    # On WebRTC the simulator's drop silences the call (no DTLS close_notify: a hang-up is
    # "closed"), noticed by the liveness watch.
    with trio.fail_after(8):
        async with (
            simulator(faults=FaultConfig(drop_after_events=1)) as sim,
            trio.open_nursery() as nursery,
        ):
            transport = await connect(nursery, sim, kind)
            ended = (await receive_until_ended(transport))[-1]
            assert isinstance(ended, TransportEnded)
            if kind.over_websocket:
                assert (ended.reason, ended.code) == ("error", 1006)
            else:
                assert ended.reason == "error"
            await transport.aclose()


@kinds
async def test_local_close_is_prompt(kind: Kind) -> None:
    """``aclose()`` on a healthy connection completes the close handshake well inside the
    transports' 2 s close timeout, on every transport (sideband included)."""
    with trio.fail_after(10):
        async with simulator() as sim, trio.open_nursery() as nursery:
            transport = await connect(nursery, sim, kind)
            await receive_until(transport, "session.created")
            start = trio.current_time()
            await transport.aclose()
            assert trio.current_time() - start < 1.0


async def _until_buffered(transport: Transport, n: int) -> None:
    """Until ``n`` inbound text items wait client-side, unread (transport internals, as in
    ``test_transport_conformance.py``: the libraries underneath expose no event for it)."""
    if isinstance(transport, WebSocketTransport):
        await read_ahead(transport, n)
        return
    assert isinstance(transport, WebRTCTransport)
    inbox = transport._inbox
    await wait_until(lambda: sum(type(item) is str for item in inbox._items) >= n)


@kinds
async def test_burst_arrives_in_one_batch_in_order(kind: Kind) -> None:
    burst = tuple({"type": "conformance.burst", "n": n} for n in range(200))
    with trio.fail_after(15):
        async with simulator() as sim, trio.open_nursery() as nursery:
            sim.add_scenario(Scenario(on_connect=burst))
            transport = await connect(nursery, sim, kind)
            await _until_buffered(transport, 1 + len(burst))
            batch = [json.loads(i) for i in await transport.receive_batch() if isinstance(i, str)]
            assert batch[0]["type"] == "session.created"
            # (a v2 session.updated answering the start event may land anywhere in between)
            assert [e["n"] for e in batch if e["type"] == "conformance.burst"] == list(range(200))
            await transport.aclose()


# ---- audio both ways -------------------------------------------------------------------


def _append(pcm: bytes) -> str:
    return json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
    )


async def _send_speech(transport: Transport) -> None:
    pcm = b"\x00\x00" * 24 * 200 + tone(600) + b"\x00\x00" * 24 * 900
    step = 480 * 2  # 20 ms
    for i in range(0, len(pcm), step):
        chunk = pcm[i : i + step]
        if transport.audio_native:
            await transport.send_audio(AudioFrame(chunk))
            await trio.sleep(0.02)  # the RTP track is paced in real time
        else:
            await transport.send_text(_append(chunk))


@kinds
async def test_tone_reaches_simulator_vad(kind: Kind) -> None:
    with trio.fail_after(20):
        async with (
            simulator(speech_transcript="tone turn") as sim,
            trio.open_nursery() as nursery,
        ):
            transport = await connect(nursery, sim, kind)
            items = await receive_until(transport, "session.created")
            async with trio.open_nursery() as sender:
                sender.start_soon(_send_speech, transport)
                await receive_until(transport, "input_audio_buffer.speech_started", items)
                await receive_until(transport, "input_audio_buffer.speech_stopped", items)
            # the simulator heard it: VAD committed the speech as a user turn
            record = await sim.wait_for_session(1)
            if not transport.audio_native:
                assert "input_audio_buffer.append" in record.types()
            await transport.aclose()


def _audio_ms_ws(items: list[Inbound]) -> float:
    total = 0
    for item in items:
        type_ = event_type(item)
        if isinstance(item, str) and type_ is not None and type_.endswith("output_audio.delta"):
            total += len(base64.b64decode(json.loads(item)["delta"]))
    return total / 2 / 24  # 24 kHz mono PCM16


def _speech_span_ms(pcm: bytes, threshold: int = 0) -> float:
    """Milliseconds from the first to the last sample above ``threshold`` (24 kHz mono)."""
    loud = np.flatnonzero(np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32)) > threshold)
    return 0.0 if loud.size == 0 else float(loud[-1] + 1 - loud[0]) / 24


async def _rtc_speech_span_ms(transport: Transport, items: list[Inbound]) -> float:
    """Span of the model's speech on the remote track, from the first to the last loud frame;
    collected until 400 ms of quiet follow it. Checks every frame's rate and channels."""
    position = 0.0
    first: float | None = None
    last_end = 0.0
    frames = [i for i in items if isinstance(i, AudioFrame)]
    while True:
        for frame in frames:
            assert (frame.sample_rate, frame.channels) == (24000, 1)
            samples = np.frombuffer(frame.pcm, dtype="<i2").astype(np.int32)
            if samples.size and int(np.abs(samples).max()) > RTC_LOUD_THRESHOLD:
                if first is None:
                    first = position
                last_end = position + frame.duration_ms
            position += frame.duration_ms
        if first is not None and position - last_end >= 400:
            return last_end - first
        batch = await transport.receive_batch()
        assert not isinstance(batch[-1], TransportEnded), batch[-1]
        frames = [i for i in batch if isinstance(i, AudioFrame)]


@kinds
async def test_model_audio_rate_channels_duration(kind: Kind) -> None:
    text = "hi there"
    reply_pcm = synthesize(f"You said: {text}.")
    with trio.fail_after(20):
        async with (
            simulator(audio_speedup=4.0) as sim,
            trio.open_nursery() as nursery,
        ):
            transport = await connect(nursery, sim, kind)
            await ask(transport, kind, text)
            items = await receive_until(transport, "response.done")
            if not transport.audio_native:
                # WebSocket: 24 kHz mono PCM16 base64 deltas; the whole reply, exactly
                got_ms = _audio_ms_ws(items)
                expected_ms = len(reply_pcm) / 2 / 24
                assert abs(got_ms - expected_ms) <= WS_AUDIO_TOLERANCE_MS, (got_ms, expected_ms)
            else:
                # WebRTC: the track runs continuously (silence between turns), so compare the
                # span of the speech itself
                got_ms = await _rtc_speech_span_ms(transport, items)
                expected_ms = _speech_span_ms(reply_pcm)
                assert abs(got_ms - expected_ms) <= RTC_AUDIO_TOLERANCE_MS, (got_ms, expected_ms)
            await transport.aclose()


# ---- connect failures ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _connect_base(nursery: trio.Nursery, base: str, kind: Kind) -> Transport:
    if kind.transport == "websocket":
        url = realtime_websocket_url(base, version=kind.version, model="m")
        return await connect_websocket(nursery, url, {}, connect_timeout=5)
    return await connect_webrtc(
        nursery,
        base_url=base,
        api_key=API_KEY,
        session={},
        control=kind.control,
        connect_timeout=5,
    )


@kinds
async def test_connect_refused(kind: Kind) -> None:
    base = f"http://127.0.0.1:{_free_port()}/v1"
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            with pytest.raises(ConnectError):
                await _connect_base(nursery, base, kind)


@pytest.mark.parametrize("kind", [WS_V1, WS_V2], ids=lambda k: k.name)
@pytest.mark.parametrize("status", [401, 403])
async def test_websocket_http_4xx(kind: Kind, status: int) -> None:
    """401: a key the simulator does not accept; 403: an unknown path (the simulator closes the
    upgrade before accepting, which hypercorn answers with 403). The simulator has no 5xx
    fault for WebSocket upgrades; ``test_transport_websocket.py`` covers 503 in-test."""
    with trio.fail_after(10):
        async with (
            simulator(api_key="sk-the-right-one" if status == 401 else None) as sim,
            trio.open_nursery() as nursery,
        ):
            assert sim.base_url is not None
            base = sim.base_url if status == 401 else sim.base_url + "/nowhere"
            url = realtime_websocket_url(base, version=kind.version, model="gpt-realtime")
            headers = realtime_headers(api_key=API_KEY, version=kind.version)
            with pytest.raises(ConnectError) as info:
                await connect_websocket(nursery, url, headers)
            assert info.value.status == status
            assert API_KEY not in str(info.value)


@webrtc_kinds
@pytest.mark.parametrize("status", [400, 401, 500, 503])
async def test_webrtc_http_status(kind: Kind, status: int) -> None:
    with trio.fail_after(10):
        async with (
            simulator(faults=FaultConfig(calls_status=status)) as sim,
            trio.open_nursery() as nursery,
        ):
            with pytest.raises(ConnectError) as info:
                await connect(nursery, sim, kind)
            assert info.value.status == status
            assert API_KEY not in str(info.value)


@webrtc_kinds
@pytest.mark.parametrize("location", ["missing", "malformed"])
async def test_webrtc_bad_location(kind: Kind, location: Literal["missing", "malformed"]) -> None:
    with trio.fail_after(10):
        async with (
            simulator(faults=FaultConfig(calls_location=location)) as sim,
            trio.open_nursery() as nursery,
        ):
            with pytest.raises(ConnectError):
                await connect(nursery, sim, kind)


@webrtc_kinds
async def test_webrtc_garbage_answer_sdp(kind: Kind) -> None:
    with trio.fail_after(10):
        async with (
            simulator(faults=FaultConfig(calls_invalid_sdp=True)) as sim,
            trio.open_nursery() as nursery,
        ):
            with pytest.raises(ConnectError):
                await connect(nursery, sim, kind)


async def test_webrtc_datachannel_never_opens_is_bounded() -> None:
    with trio.fail_after(10):
        async with (
            simulator(faults=FaultConfig(datachannel_never_opens=True)) as sim,
            trio.open_nursery() as nursery,
        ):
            start = trio.current_time()
            with pytest.raises(ConnectError):
                await connect(nursery, sim, RTC_DC, datachannel_open_timeout=1.0)
            assert trio.current_time() - start < 6


# ---- sideband retries ------------------------------------------------------------------


async def test_sideband_retries_then_succeeds() -> None:
    with trio.fail_after(15):
        async with (
            simulator(faults=FaultConfig(sideband_refuse_first=2)) as sim,
            trio.open_nursery() as nursery,
        ):
            transport = await connect(
                nursery, sim, RTC_SB, sideband_retries=5, sideband_backoff=0.01
            )
            await ask(transport, RTC_SB, "queued while joining")  # queued until the join
            items = await receive_until(transport, "response.done")
            assert event_type(items[0]) == "session.created"
            await transport.aclose()


async def test_sideband_retries_exhausted_ends_with_error() -> None:
    with trio.fail_after(15):
        async with (
            simulator(faults=FaultConfig(sideband_refuse_first=100)) as sim,
            trio.open_nursery() as nursery,
        ):
            transport = await connect(
                nursery, sim, RTC_SB, sideband_retries=2, sideband_backoff=0.01
            )
            ended = (await receive_until_ended(transport))[-1]
            assert isinstance(ended, TransportEnded)
            assert ended.reason == "error"
            assert ended.error is not None
            assert "sideband" in ended.error
            assert API_KEY not in ended.error
            with pytest.raises(TransportClosed):
                await transport.send_text("{}")
            await transport.aclose()


# ---- garbage and oversized frames ------------------------------------------------------


@kinds
async def test_garbage_frames_do_not_end_the_transport(kind: Kind) -> None:
    faults = FaultConfig(garbage_after_created=("text", "binary", "non_object", "no_type"))
    with trio.fail_after(15):
        async with simulator(faults=faults) as sim, trio.open_nursery() as nursery:
            transport = await connect(nursery, sim, kind)
            await ask(transport, kind, "still alive")
            items = await receive_until(transport, "response.done")
            texts = [i for i in items if isinstance(i, str)]
            assert '{"event_id": "event_garbage"}' in texts  # passed up as-is: parsing is not ours
            # On webrtc-sideband the inner WebSocket drops the binary frame; the WebRTC
            # transport's statistics include it.
            assert transport.statistics().binary_frames_dropped == 1
            await transport.aclose()


@pytest.mark.parametrize("kind", [WS_V1, WS_V2, RTC_SB], ids=lambda k: k.name)
async def test_oversized_frame_ends_with_1009(kind: Kind) -> None:
    with trio.fail_after(20):
        async with (
            simulator(faults=FaultConfig(garbage_after_created=("oversized",))) as sim,
            trio.open_nursery() as nursery,
        ):
            transport = await connect(nursery, sim, kind)
            items = await receive_until_ended(transport)
            ended = items[-1]
            assert isinstance(ended, TransportEnded)
            assert (ended.reason, ended.code) == ("error", 1009), ended
            await transport.aclose()


# ---- TLS ---------------------------------------------------------------------------------


async def test_wss_with_trusted_self_signed_certificate_succeeds(
    self_signed: SelfSignedCert,
) -> None:
    server_ctx, client_ctx = self_signed.server_context(), self_signed.client_context()
    seen: list[tuple[str, list[tuple[bytes, bytes]]]] = []

    async def echo(request: WebSocketRequest) -> None:
        seen.append((request.path, list(request.headers)))
        ws = await request.accept()
        message = await ws.get_message()
        assert isinstance(message, str)
        await ws.send_message(f"echo {message}")
        await ws.aclose(4002, "bye")

    with trio.fail_after(10):
        async with trio.open_nursery() as server_nursery:
            server = await server_nursery.start(serve_websocket, echo, "127.0.0.1", 0, server_ctx)
            url = realtime_websocket_url(
                f"https://localhost:{server.port}/v1", version="v2", model="gpt-realtime"
            )
            assert url.startswith("wss://")
            async with trio.open_nursery() as nursery:
                transport = await connect_websocket(
                    nursery,
                    url,
                    realtime_headers(api_key=API_KEY, version="v2"),
                    ssl_context=client_ctx,
                )
                await transport.send_text('{"type":"ping"}')
                items = await receive_until_ended(transport)
                assert items[0] == 'echo {"type":"ping"}'
                ended = items[-1]
                assert isinstance(ended, TransportEnded)
                assert (ended.reason, ended.code) == ("error", 4002)
                assert ended.error is not None
                assert ended.error.endswith("code 4002: bye")
                await transport.aclose()
            assert seen[0][0].startswith("/v1/realtime")
            assert (b"authorization", f"Bearer {API_KEY}".encode()) in [
                (k.lower(), v) for k, v in seen[0][1]
            ]
            server_nursery.cancel_scope.cancel()


async def test_wss_pings_are_answered_while_the_consumer_is_away(
    self_signed: SelfSignedCert,
) -> None:
    # The idle reader over TLS: it answers the server's pings while nobody reads, and hands
    # reading back (its pending read cancelled) each time the consumer returns, losing and
    # reordering nothing.
    server_ctx, client_ctx = self_signed.server_context(), self_signed.client_context()
    rounds = 3
    pinged: list[float] = []

    async def pinger(request: WebSocketRequest) -> None:
        ws = await request.accept()
        for i in range(rounds):
            await ws.send_message(f"before {i}")
            began = trio.current_time()
            await ws.ping(f"ping {i}".encode())
            pinged.append(trio.current_time() - began)
            await ws.send_message(f"after {i}")
            await ws.get_message()  # the client's go-ahead for the next round

    with trio.fail_after(15):
        async with trio.open_nursery() as server_nursery:
            server = await server_nursery.start(serve_websocket, pinger, "127.0.0.1", 0, server_ctx)
            async with trio.open_nursery() as nursery:
                transport = await connect_websocket(
                    nursery,
                    f"wss://localhost:{server.port}/v1/realtime",
                    realtime_headers(api_key=API_KEY, version="v2"),
                    ssl_context=client_ctx,
                )
                for i in range(rounds):
                    # Away until the ping of this round was answered.
                    await _wait_for_count(pinged, i + 1)
                    received: list[object] = []
                    while len(received) < 2:
                        received.extend(await transport.receive_batch())
                    assert received == [f"before {i}", f"after {i}"]
                    await transport.send_text("next")
                await transport.aclose()
            server_nursery.cancel_scope.cancel()
    assert all(took < 1.5 for took in pinged), pinged


async def _wait_for_count(items: list[float], n: int) -> None:
    await wait_until(lambda: len(items) >= n)


async def test_wss_with_an_untrusted_certificate_says_so(self_signed: SelfSignedCert) -> None:
    server_ctx = self_signed.server_context()

    async def never(request: WebSocketRequest) -> None:
        raise AssertionError("the handshake must not get this far")

    with trio.fail_after(10):
        async with trio.open_nursery() as server_nursery:
            server = await server_nursery.start(serve_websocket, never, "127.0.0.1", 0, server_ctx)
            url = f"wss://localhost:{server.port}/v1/realtime"
            async with trio.open_nursery() as nursery:
                with pytest.raises(ConnectError) as info:
                    await connect_websocket(nursery, url, {})
            server_nursery.cancel_scope.cancel()
    message = str(info.value)
    assert message.startswith(f"TLS handshake with {url} failed"), message
    assert "SSLCertVerificationError" in message
    assert "self-signed certificate" in message
    assert isinstance(info.value.__cause__, trio.BrokenResourceError)
