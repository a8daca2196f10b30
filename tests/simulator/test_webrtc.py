"""WebRTC: a plain aiortc client following the browser flow, sideband joins, call faults.

The client's aiortc objects live on the shared asyncio bridge loop (as the library's own
WebRTC transport does); the test drives them with ``bridge.run`` / ``bridge.call_soon`` and
receives data-channel messages through a trio memory channel.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import re
import time
from typing import Any

import av
import httpx
import numpy as np
import pydantic
import pytest
import trio
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from openai.types.realtime import RealtimeServerEvent
from trio_websocket import ConnectionClosed, ConnectionRejected

from duplex.simulator import FaultConfig, Simulator, SimulatorConfig, open_simulator
from duplex.transports._bridge import TrioPort, get_bridge
from duplex.transports._rtc_asyncio import offer_with_opus_dtx

from ._simhelpers import close_code, connect, recv, recv_until, send, user_text

_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RealtimeServerEvent)


class _MicTrack(MediaStreamTrack):
    """20 ms frames at 48 kHz: silence, then a tone while ``speaking`` is set."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.speaking = False
        self._ts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._ts += 960
            wait = self._start + self._ts / 48000 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        t = (np.arange(960) + self._ts) / 48000
        amp = 0.3 if self.speaking else 0.0
        samples = (amp * 32767 * np.sin(2 * math.pi * 440 * t)).astype("<i2")
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = 48000
        frame.pts = self._ts
        frame.time_base = fractions.Fraction(1, 48000)
        return frame


class RtcClient:
    """The browser flow with aiortc. Construct in trio; methods marked (asyncio) run there."""

    def __init__(self, *, datachannel: bool = True, dtx: bool = False) -> None:
        self.port = TrioPort.current()
        self.dtx = dtx  # the offer asks for Opus DTX (usedtx=1), as duplex's does
        self.messages_send, self.messages = trio.open_memory_channel[str](math.inf)
        self.opened = trio.Event()
        self.pc_closed = trio.Event()
        self.with_channel = datachannel
        self.pc: Any = None
        self.channel: Any = None
        self.mic = _MicTrack()
        self.audio_frames = 0
        self.loud_frames = 0
        self.frames_changed = trio.Event()
        self._tasks: set[asyncio.Future[None]] = set()

    async def offer(self) -> str:  # (asyncio)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: loopback only
        self.pc = pc
        pc.addTrack(self.mic)
        if self.with_channel:
            channel = pc.createDataChannel("oai-events")
            self.channel = channel
            channel.on("open", lambda: self.port.call(self.opened.set))
            channel.on("message", lambda m: self.port.call(self.messages_send.send_nowait, m))

        @pc.on("track")
        def on_track(track: Any) -> None:
            task = asyncio.ensure_future(self._consume(track))
            self._tasks.add(task)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "closed":
                self.port.call(self.pc_closed.set)

        await pc.setLocalDescription(await pc.createOffer())
        sdp = str(pc.localDescription.sdp)
        return offer_with_opus_dtx(sdp) if self.dtx else sdp

    async def _consume(self, track: Any) -> None:  # (asyncio)
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            self.audio_frames += 1
            pcm = np.frombuffer(bytes(frame.planes[0]), dtype="<i2")
            if pcm.size and np.abs(pcm).max() > 1000:
                self.loud_frames += 1
            self.port.call(self._notify)

    def _notify(self) -> None:
        self.frames_changed.set()
        self.frames_changed = trio.Event()

    async def wait_frames(self, *, loud: int = 0, total: int = 0) -> None:
        while self.loud_frames < loud or self.audio_frames < total:
            await self.frames_changed.wait()

    async def apply(self, answer: str) -> None:  # (asyncio)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:  # (asyncio)
        for task in self._tasks:
            task.cancel()
        if self.pc is not None:
            await self.pc.close()

    def send(self, event: dict[str, Any]) -> None:
        get_bridge().call_soon(self.channel.send, json.dumps(event))

    async def recv(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(await self.messages.receive())
        return event

    async def recv_until(self, type_: str, into: list[dict[str, Any]]) -> dict[str, Any]:
        while True:
            event = await self.recv()
            into.append(event)
            if event["type"] == type_:
                return event


async def _post_raw(sim: Simulator, sdp: str, key: str = "ek_test") -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{sim.base_url}/realtime/calls",
            content=sdp.encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"},
        )


async def _post_multipart(sim: Simulator, sdp: str, session: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{sim.base_url}/realtime/calls",
            files={
                "sdp": (None, sdp.encode(), "application/sdp"),
                "session": (None, json.dumps(session).encode(), "application/json"),
            },
            headers={"Authorization": "Bearer sk-test"},
        )


async def _connect_call(sim: Simulator, client: RtcClient) -> str:
    bridge = get_bridge()
    offer = await bridge.run(client.offer)
    response = await _post_raw(sim, offer)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/sdp")
    call_id = response.headers["location"].rsplit("/", 1)[-1]
    assert call_id.startswith("rtc_u1_")
    assert len(call_id) == 7 + 32
    await bridge.run(client.apply, response.text)
    return call_id


async def test_browser_flow_text_turn_and_model_audio() -> None:
    bridge = get_bridge()
    with trio.fail_after(20):
        async with open_simulator(SimulatorConfig(audio_speedup=4.0)) as sim:
            client = RtcClient()
            try:
                await _connect_call(sim, client)
                await client.opened.wait()
                events: list[dict[str, Any]] = [await client.recv()]
                assert events[0]["type"] == "session.created"
                client.send(user_text("hello over webrtc"))
                client.send({"type": "response.create"})
                await client.recv_until("output_audio_buffer.stopped", events)
                types = [e["type"] for e in events]
                assert "response.output_audio.delta" not in types  # audio is on the track
                assert "output_audio_buffer.started" in types
                transcript = next(
                    e for e in events if e["type"] == "response.output_audio_transcript.done"
                )
                assert transcript["transcript"] == "You said: hello over webrtc."
                for event in events:
                    _ADAPTER.validate_python(event)
                # Model audio is paced in real time; wait for it to arrive as RTP.
                await client.wait_frames(loud=10)
                record = sim.sessions[0]
                assert record.transport == "webrtc"
                assert [e.source for e in record.events] == ["datachannel", "datachannel"]
            finally:
                await bridge.run(client.close)


async def test_spoken_turn_over_rtp() -> None:
    bridge = get_bridge()
    cfg = SimulatorConfig(speech_transcript="spoken words")
    with trio.fail_after(20):
        async with open_simulator(cfg) as sim:
            client = RtcClient()
            try:
                await _connect_call(sim, client)
                await client.opened.wait()
                assert (await client.recv())["type"] == "session.created"
                # Real-time audio is the behaviour: the live mic track carries 0.4 s of
                # silence, then 0.6 s of speech, then silence until the reply.
                await trio.sleep(0.4)
                spoke_at = time.monotonic_ns()
                client.mic.speaking = True
                await trio.sleep(0.6)
                client.mic.speaking = False
                events: list[dict[str, Any]] = []
                await client.recv_until("response.done", events)
                # The debug route stamps the arrival of the one voiced onset (the benchmark's
                # one-way latency): after the client started speaking, within the turn.
                async with httpx.AsyncClient() as http:
                    reply = await http.get(
                        f"{sim.base_url}/realtime/calls/audio_onsets",
                        headers={"authorization": "Bearer sk-test"},
                    )
                onsets = [t for stamps in reply.json().values() for t in stamps]
                assert len(onsets) == 1
                assert 0 < onsets[0] - spoke_at < 600_000_000
                types = [e["type"] for e in events]
                assert types[:3] == [
                    "input_audio_buffer.speech_started",
                    "input_audio_buffer.speech_stopped",
                    "input_audio_buffer.committed",
                ]
                done = next(
                    e for e in events if e["type"] == "response.output_audio_transcript.done"
                )
                assert done["transcript"] == "You said: spoken words."
            finally:
                await bridge.run(client.close)


@pytest.mark.parametrize(
    ("asks", "honours", "paused"),
    [(True, True, True), (True, False, False), (False, True, False)],
    ids=["dtx", "server-streams-anyway", "offer-without-dtx"],
)
async def test_an_idle_model_track_pauses_only_when_the_offer_asks_for_dtx(
    asks: bool, honours: bool, paused: bool
) -> None:
    """RFC 7587 ``usedtx=1`` in the offer: the simulator, like a libwebrtc server, stops the
    track's RTP 200 ms into the model's silence and then sends one packet per 400 ms."""
    bridge = get_bridge()
    async with open_simulator(SimulatorConfig(webrtc_dtx=honours)) as sim:
        client = RtcClient(dtx=asks)
        try:
            with trio.fail_after(20):
                await _connect_call(sim, client)
                await client.wait_frames(total=1)
            # A rate is measured over a window of wall time: past the DTX onset, then 1 s of
            # the idle model (a streaming track sends 50 frames in it, a paused one 2 or 3).
            await trio.sleep(0.5)
            before = client.audio_frames
            await trio.sleep(1.0)
            frames = client.audio_frames - before
            assert frames <= 6 if paused else frames >= 35, frames
        finally:
            await bridge.run(client.close)


async def test_sideband_join_shares_the_call() -> None:
    bridge = get_bridge()
    cfg = SimulatorConfig(faults=FaultConfig(sideband_refuse_first=2))
    with trio.fail_after(20):
        async with open_simulator(cfg) as sim:
            client = RtcClient()
            try:
                offer = await bridge.run(client.offer)
                response = await _post_multipart(
                    sim, offer, {"type": "realtime", "model": "gpt-realtime", "instructions": "hi"}
                )
                assert response.status_code == 201
                call_id = response.headers["location"].rsplit("/", 1)[-1]
                await bridge.run(client.apply, response.text)
                await client.opened.wait()
                assert (await client.recv())["session"]["instructions"] == "hi"
                for _ in range(2):
                    with pytest.raises(ConnectionRejected) as info:
                        async with connect(sim, f"call_id={call_id}"):
                            pass
                    assert info.value.status_code == 403
                async with connect(sim, f"call_id={call_id}") as side:
                    created = await recv(side)
                    assert created["type"] == "session.created"
                    await send(side, user_text("from the sideband"))
                    await send(side, {"type": "response.create"})
                    done = await recv_until(side, "response.done")
                    assert done["response"]["status"] == "completed"
                    # The same events reached the data channel.
                    seen: list[dict[str, Any]] = []
                    await client.recv_until("response.done", seen)
                    assert seen[-1]["response"]["id"] == done["response"]["id"]
                record = sim.sessions[0]
                assert {e.source for e in record.events} == {"sideband"}
            finally:
                await bridge.run(client.close)


async def test_sideband_unknown_call() -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim, connect(sim, "call_id=rtc_nope") as ws:
            error = await recv(ws)
            assert error["error"]["code"] == "call_not_found"
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
            assert close_code(info.value) == 4000


async def test_datachannel_never_opens() -> None:
    bridge = get_bridge()
    cfg = SimulatorConfig(faults=FaultConfig(datachannel_never_opens=True))
    with trio.fail_after(20):
        async with open_simulator(cfg) as sim:
            client = RtcClient()
            try:
                await _connect_call(sim, client)
                with trio.move_on_after(1.5):
                    await client.opened.wait()
                    raise AssertionError("the data channel opened")
                assert client.channel.readyState == "connecting"
                # The media leg still works.
                await client.wait_frames(total=5)
            finally:
                await bridge.run(client.close)


async def test_hangup_ends_call() -> None:
    bridge = get_bridge()
    with trio.fail_after(20):
        async with open_simulator() as sim:
            client = RtcClient()
            try:
                call_id = await _connect_call(sim, client)
                async with httpx.AsyncClient() as http:
                    r = await http.post(
                        f"{sim.base_url}/realtime/calls/{call_id}/hangup",
                        headers={"Authorization": "Bearer sk"},
                    )
                assert r.status_code == 200
                await sim.sessions[0].wait_closed()
            finally:
                await bridge.run(client.close)


# ---------------------------------------------------------------- calls endpoint faults


async def _offer() -> tuple[RtcClient, str]:
    client = RtcClient()
    return client, await get_bridge().run(client.offer)


@pytest.mark.parametrize("status", [400, 403, 429, 500, 503])
async def test_calls_status_fault(status: int) -> None:
    with trio.fail_after(10):
        async with open_simulator(SimulatorConfig(faults=FaultConfig(calls_status=status))) as sim:
            r = await _post_raw(sim, "v=0\r\n")
            assert r.status_code == status
            assert "message" in r.json()["error"]


@pytest.mark.parametrize("mode", ["missing", "malformed"])
async def test_calls_location_faults(mode: str) -> None:
    bridge = get_bridge()
    cfg = SimulatorConfig(faults=FaultConfig(calls_location=mode))  # type: ignore[arg-type]
    with trio.fail_after(15):
        async with open_simulator(cfg) as sim:
            client, offer = await _offer()
            try:
                r = await _post_raw(sim, offer)
                assert r.status_code == 201
                if mode == "missing":
                    assert "location" not in r.headers
                else:
                    assert not r.headers["location"].rsplit("/", 1)[-1].startswith("rtc_")
            finally:
                await bridge.run(client.close)


async def test_calls_invalid_answer_sdp() -> None:
    bridge = get_bridge()
    cfg = SimulatorConfig(faults=FaultConfig(calls_invalid_sdp=True))
    with trio.fail_after(15):
        async with open_simulator(cfg) as sim:
            client, offer = await _offer()
            try:
                r = await _post_raw(sim, offer)
                assert r.status_code == 201
                with pytest.raises(Exception):  # noqa: B017, PT011 - aiortc raises ValueError-ish
                    await bridge.run(client.apply, r.text)
            finally:
                await bridge.run(client.close)


@pytest.mark.parametrize(
    ("content_type", "body", "code"),
    [
        ("application/sdp", b"not sdp", 400),
        ("text/plain", b"v=0\r\n", 400),
        ("application/sdp", b"v=0\r\nbroken", 400),
    ],
)
async def test_calls_bad_bodies(content_type: str, body: bytes, code: int) -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim, httpx.AsyncClient() as http:
            r = await http.post(
                f"{sim.base_url}/realtime/calls",
                content=body,
                headers={"Authorization": "Bearer sk", "Content-Type": content_type},
            )
            assert r.status_code == code
            assert r.json()["error"]["type"] == "invalid_request_error"


async def test_calls_multipart_problems_and_auth() -> None:
    with trio.fail_after(10):
        async with (
            open_simulator(SimulatorConfig(api_key="sk-right")) as sim,
            httpx.AsyncClient() as http,
        ):
            r = await http.post(
                f"{sim.base_url}/realtime/calls",
                files={"session": (None, b"{}", "application/json")},
                headers={"Authorization": "Bearer sk-right"},
            )
            assert r.status_code == 400
            assert "sdp" in r.json()["error"]["message"]
            r = await http.post(
                f"{sim.base_url}/realtime/calls",
                files={
                    "sdp": (None, b"v=0\r\n", "application/sdp"),
                    "session": (None, b"{nope", "application/json"),
                },
                headers={"Authorization": "Bearer sk-right"},
            )
            assert r.status_code == 400
            r = await http.post(
                f"{sim.base_url}/realtime/calls",
                content=b"v=0\r\n",
                headers={"Authorization": "Bearer sk-wrong", "Content-Type": "application/sdp"},
            )
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "invalid_api_key"


async def test_v1_call_with_quicksilver_sideband() -> None:
    bridge = get_bridge()
    with trio.fail_after(20):
        async with open_simulator() as sim:
            client = RtcClient(datachannel=False)  # codex's client: no data channel
            try:
                offer = await bridge.run(client.offer)
                session = {"type": "quicksilver", "instructions": "backend prompt"}
                response = await _post_multipart(sim, offer, session)
                assert response.status_code == 201
                call_id = response.headers["location"].rsplit("/", 1)[-1]
                await bridge.run(client.apply, response.text)
                assert sim.sessions[0].version == "v1"
                async with connect(sim, f"intent=quicksilver&call_id={call_id}") as side:
                    created = await recv(side)
                    assert created["session"]["type"] == "quicksilver"
                    assert created["session"]["instructions"] == "backend prompt"
                    await send(side, user_text("delegate the work"))
                    handoff = await recv_until(side, "conversation.handoff.requested")
                    assert handoff["input_transcript"] == "delegate the work"
            finally:
                await bridge.run(client.close)


# ---------------------------------------------------------------- browser flow details


async def _mint(sim: Simulator, session: dict[str, Any]) -> str:
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{sim.base_url}/realtime/client_secrets",
            json={"session": session},
            headers={"Authorization": "Bearer sk-backend"},
        )
    assert r.status_code == 200, r.text
    value: str = r.json()["value"]
    return value


async def test_call_with_a_minted_key_inherits_its_session() -> None:
    bridge = get_bridge()
    session = {
        "type": "realtime",
        "instructions": "Talk like a pirate.",
        "output_modalities": ["text"],
    }
    with trio.fail_after(20):
        async with open_simulator(SimulatorConfig(api_key="sk-backend")) as sim:
            key = await _mint(sim, session)
            client = RtcClient()
            try:
                offer = await bridge.run(client.offer)
                response = await _post_raw(sim, offer, key=key)
                assert response.status_code == 201, response.text
                await bridge.run(client.apply, response.text)
                created = await client.recv()
                assert created["type"] == "session.created"
                assert created["session"]["instructions"] == "Talk like a pirate."
                assert created["session"]["output_modalities"] == ["text"]
            finally:
                await bridge.run(client.close)


async def test_expired_minted_key_is_refused() -> None:
    from duplex.simulator._secrets import ClientSecrets

    now = [1000.0]
    with trio.fail_after(10):
        async with open_simulator() as sim:
            sim.client_secrets = ClientSecrets(sim.seed, model="m", clock=lambda: now[0])
            key = await _mint(sim, {"type": "realtime"})
            now[0] += 601
            client, offer = await _offer()
            try:
                r = await _post_raw(sim, offer, key=key)
            finally:
                await get_bridge().run(client.close)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"


async def test_hangup_closes_the_peer_connection_and_sidebands() -> None:
    bridge = get_bridge()
    with trio.fail_after(20):
        async with open_simulator() as sim:
            client = RtcClient()
            try:
                call_id = await _connect_call(sim, client)
                await client.opened.wait()
                answerer = sim.calls[call_id].answerer
                assert answerer is not None
                async with connect(sim, f"call_id={call_id}") as sideband:
                    assert (await recv(sideband))["type"] == "session.created"
                    async with httpx.AsyncClient() as http:
                        r = await http.post(
                            f"{sim.base_url}/realtime/calls/{call_id}/hangup",
                            headers={"Authorization": "Bearer sk"},
                        )
                    assert r.status_code == 200
                    assert await _close_code_after_reading(sideband) == 1000

                async def state() -> str:
                    return answerer.connection_state

                assert await bridge.run(state) == "closed"
                # The client's side sees the peer connection (not just the channel) end.
                await client.pc_closed.wait()
                assert call_id not in sim.calls
            finally:
                await bridge.run(client.close)


async def _close_code_after_reading(ws: Any) -> int | None:
    try:
        while True:
            await recv(ws)
    except ConnectionClosed as closed:
        return close_code(closed)


async def test_answerer_uses_no_stun_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from duplex.simulator import _rtc_answerer

    configs: list[Any] = []

    class Recording(RTCPeerConnection):
        def __init__(self, configuration: Any = None) -> None:
            configs.append(configuration)
            super().__init__(configuration)

    monkeypatch.setattr(_rtc_answerer, "RTCPeerConnection", Recording)
    with trio.fail_after(10):
        async with open_simulator() as sim:
            client, offer = await _offer()
            try:
                r = await _post_raw(sim, offer)
                assert r.status_code == 201
            finally:
                await get_bridge().run(client.close)
    assert len(configs) == 1
    assert configs[0] is not None
    assert configs[0].iceServers == []


async def test_call_ids_are_random_per_run_unless_seeded() -> None:
    async def call_id(config: SimulatorConfig) -> str:
        async with open_simulator(config) as sim:
            client, offer = await _offer()
            try:
                r = await _post_raw(sim, offer)
            finally:
                await get_bridge().run(client.close)
        return str(r.headers["location"]).rsplit("/", 1)[-1]

    with trio.fail_after(20):
        runs = [await call_id(SimulatorConfig()) for _ in range(2)]
        seeded = [await call_id(SimulatorConfig(seed=7)) for _ in range(2)]
    assert runs[0] != runs[1]
    assert seeded[0] == seeded[1]
    assert all(re.fullmatch(r"rtc_u1_[0-9a-f]{32}", c) for c in runs + seeded)
