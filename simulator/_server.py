"""The simulator server: one port, HTTP + WebSocket, served by hypercorn's trio worker.

Routes (all under ``/v1``):
- ``GET /v1/realtime`` (WebSocket). Dialect and mode come from the query:
  ``intent=quicksilver`` → v1; no intent → v2 (``model`` optional); ``intent=transcription``
  → transcription session whose dialect is picked by the *first client event*
  (``session.create`` → v1, anything else → v2) because neither the URL nor the headers can
  tell them apart; if the client says nothing for ``transcription_dialect_grace_s`` the
  session is v2 and ``session.created`` is sent. ``call_id=rtc_…`` joins that WebRTC call
  as a sideband socket; an unknown id is accepted, answered with an ``error``
  (``call_not_found``) and closed with 4000. An ``OpenAI-Beta: realtime=v1`` header on a v2
  URL gets today's OpenAI behaviour (``beta_api_shape_disabled`` then close 4000).
- ``POST /v1/realtime/calls``: multipart (``sdp`` + ``session`` JSON) or raw
  ``application/sdp``; 201 with the answer SDP and ``Location: /v1/realtime/calls/rtc_…``;
  ``{"error": {...}}`` with 4xx for bad bodies (not SDP, no ``m=audio``, bad ``session``
  JSON, other content types). The call's dialect is the multipart ``session.type``:
  ``quicksilver`` → v1, otherwise v2 (``transcription`` → transcription mode); a raw-SDP
  (``ek_``) call gets the default v2 session. The ``session`` is applied before anything is
  sent. Each outlet — the ``oai-events`` channel when it opens, each sideband socket when it
  joins — gets its own ``session.created``; after that every event goes to all of them.
  ``POST /v1/realtime/calls/{id}/hangup`` ends a call.
- Auth: every route needs ``Authorization: Bearer <key>`` (or the browser subprotocol
  ``openai-insecure-api-key.<key>``). Without one: 401 ``missing_api_key``; with
  ``SimulatorConfig.api_key`` set, a different key (other than an ``ek_`` one) gets 401
  ``invalid_api_key``.

Invariants:
- one session's failure never reaches another: each connection runs in its own task and the
  session layer turns model bugs into ``server_error`` events;
- a WebRTC call's events fan out to its data channel and every sideband socket;
- shutdown never hangs on a client that stopped reading: hypercorn shields its socket
  writes, so on cancellation every live socket is reset first (``_reaper``).
"""

from __future__ import annotations

import collections
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, Final
from urllib.parse import parse_qs

import orjson
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from duplex.protocol import ProtocolVersion, SessionMode
from duplex.transports import TrioPort, get_bridge

from ._calls import DataChannelOutlet, RtcCall, error_body, parse_offer
from ._config import FaultConfig, IdGenerator, SimulatorConfig
from ._rtc_answerer import RtcAnswerer
from ._scenario import Scenario, SessionRecord
from ._session import AsgiOutlet, SimSession

__all__ = ["Simulator", "open_simulator", "run_server", "serve_simulator"]

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_MAX_BODY: Final = 1024 * 1024


class Simulator:
    """The simulator: an ASGI app plus the sessions, calls, scenarios and fault knobs.

    ``faults`` may be reassigned at any time; new sessions and calls use the current value.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.faults: FaultConfig = self.config.faults
        self.sessions: list[SessionRecord] = []
        self.calls: dict[str, RtcCall] = {}
        self.base_url: str | None = None
        self._scenarios: collections.deque[Scenario] = collections.deque()
        self._ids = IdGenerator(f"{self.config.seed}:server")
        self._nursery: trio.Nursery | None = None
        self._session_added = trio.Event()
        self._outlets: set[AsgiOutlet] = set()

    # ------------------------------------------------------------------ test API

    def add_scenario(self, scenario: Scenario) -> None:
        """Queue a scenario; the next session (or WebRTC call) to open claims it."""
        self._scenarios.append(scenario)

    async def wait_for_session(self, count: int = 1) -> SessionRecord:
        """Wait until ``count`` sessions exist; return the ``count``-th."""
        while len(self.sessions) < count:
            await self._session_added.wait()
        return self.sessions[count - 1]

    # ------------------------------------------------------------------ serving

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``task_status.started`` gets ``http://host:port/v1``."""
        hc = HypercornConfig()
        hc.bind = [f"{self.config.host}:{self.config.port}"]
        hc.websocket_max_message_size = self.config.max_message_bytes
        hc.graceful_timeout = 0.5
        hc.accesslog = None
        hc.errorlog = logging.getLogger(__name__ + ".hypercorn")
        hc.keep_alive_timeout = 30
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._reaper)
            binds: list[str] = await nursery.start(_serve_app, self, hc)
            self.base_url = binds[0] + "/v1"
            log.info("simulator listening on %s", self.base_url)
            task_status.started(self.base_url)

    async def _reaper(self) -> None:
        """On shutdown, reset every live socket first: hypercorn shields its socket writes, so
        a client that stopped reading would otherwise hold shutdown forever."""
        try:
            await trio.sleep_forever()
        finally:
            for outlet in list(self._outlets):
                outlet.abort_now()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope.get("path", "")
        if kind == "websocket":
            if path.rstrip("/") == "/v1/realtime":
                await self._websocket(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        if kind == "http":
            await self._http(scope, receive, send, path)

    # ------------------------------------------------------------------ auth

    def _auth_problem(self, scope: Scope) -> tuple[str, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = ""
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        for proto in scope.get("subprotocols") or []:
            if proto.startswith("openai-insecure-api-key."):
                key = proto.removeprefix("openai-insecure-api-key.")
        if not key:
            return (
                "missing_api_key",
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        expected = self.config.api_key
        if expected is not None and key != expected and not key.startswith("ek_"):
            shown = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "****"
            return (
                "invalid_api_key",
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
            )
        return None

    # ------------------------------------------------------------------ websocket

    def _new_record(
        self,
        version: ProtocolVersion | None,
        mode: SessionMode,
        transport: str,
        call_id: str | None,
    ) -> SessionRecord:
        record = SessionRecord(
            index=len(self.sessions),
            version=version,
            mode=mode,
            transport=transport,
            call_id=call_id,
            limit=self.config.record_limit,
        )
        self.sessions.append(record)
        self._session_added.set()
        self._session_added = trio.Event()
        return record

    async def _reject_ws(self, send: Send, status: int, body: bytes) -> None:
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})

    async def _error_and_close(
        self, send: Send, code: str, message: str, param: str | None
    ) -> None:
        """On an accepted WebSocket: one ``invalid_request_error`` event, then close 4000
        with ``invalid_request_error.<code>`` as the reason, as the real server does."""
        body = {
            "type": "error",
            "event_id": self._ids.event(),
            "error": {
                "type": "invalid_request_error",
                "code": code,
                "message": message,
                "param": param,
                "event_id": None,
            },
        }
        await send({"type": "websocket.send", "text": orjson.dumps(body).decode()})
        await send(
            {"type": "websocket.close", "code": 4000, "reason": f"invalid_request_error.{code}"}
        )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()  # websocket.connect
        if message["type"] != "websocket.connect":
            return
        problem = self._auth_problem(scope)
        if problem is not None:
            await self._reject_ws(send, 401, error_body(problem[1], problem[0]))
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        intent = (query.get("intent") or [""])[0]
        model = (query.get("model") or [None])[0]
        call_id = (query.get("call_id") or [None])[0]
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if "realtime" in (scope.get("subprotocols") or []):
            accept["subprotocol"] = "realtime"
        if not self.config.websocket_compression:
            _decline_compression(send)
        if call_id is not None:
            await self._sideband(call_id, accept, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        beta = headers.get("openai-beta", "") == "realtime=v1" or (
            "openai-beta.realtime-v1" in (scope.get("subprotocols") or [])
        )
        if beta and intent != "quicksilver":
            await send(accept)
            await self._error_and_close(
                send,
                "beta_api_shape_disabled",
                "The Realtime Beta API is no longer supported. Please use /v1/realtime for "
                "the GA API.",
                None,
            )
            return
        mode = (
            SessionMode.TRANSCRIPTION if intent == "transcription" else SessionMode.CONVERSATIONAL
        )
        version: ProtocolVersion | None
        if intent == "quicksilver":
            version = ProtocolVersion.V1
        elif intent == "transcription":
            version = None  # decided by the first client event
        else:
            version = ProtocolVersion.V2
        record = self._new_record(version, mode, "websocket", None)
        scenario = self._scenarios.popleft() if self._scenarios else None
        session = SimSession(
            config=self.config,
            record=record,
            ids=IdGenerator(f"{self.config.seed}:{record.index}"),
            version=version,
            mode=mode,
            model_name=model,
            scenario=scenario,
            faults=(scenario.faults if scenario and scenario.faults else self.faults),
        )
        await send(accept)
        outlet = AsgiOutlet(send, "websocket")
        session.attach(outlet, greet=False)
        self._outlets.add(outlet)
        try:
            await self._pump(session, outlet, receive, "websocket", run_session=True)
        finally:
            self._outlets.discard(outlet)

    async def _pump(
        self,
        session: SimSession,
        outlet: AsgiOutlet,
        receive: Receive,
        source: str,
        *,
        run_session: bool,
    ) -> None:
        async with trio.open_nursery() as nursery:
            if run_session:

                async def runner() -> None:
                    await session.run()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(runner)
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    session.detach(outlet)
                    if run_session and not session.record.closed:
                        session.record.mark_closed(message.get("code"))
                    break
                if message["type"] != "websocket.receive":
                    continue
                text = message.get("text")
                session.feed(text if text is not None else message.get("bytes") or b"", source)
            nursery.cancel_scope.cancel()

    async def _sideband(
        self, call_id: str, accept: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        call = self.calls.get(call_id)
        if call is not None:
            call.sideband_attempts += 1
            if call.sideband_attempts <= call.session.faults.sideband_refuse_first:
                await self._reject_ws(
                    send, 403, error_body("Sideband join refused (simulated).", "sideband_refused")
                )
                return
        await send(accept)
        if call is None or call.ended.is_set():
            await self._error_and_close(
                send, "call_not_found", f"Call not found: {call_id}.", "call_id"
            )
            return
        outlet = AsgiOutlet(send, "sideband")
        call.session.attach(outlet, greet=True)
        self._outlets.add(outlet)
        with trio.CancelScope() as scope:

            async def watch_end() -> None:
                await call.ended.wait()
                scope.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_end)
                try:
                    await self._pump(call.session, outlet, receive, "sideband", run_session=False)
                finally:
                    self._outlets.discard(outlet)
                nursery.cancel_scope.cancel()
        if call.ended.is_set():
            with suppress(Exception):
                await send({"type": "websocket.close", "code": 1000, "reason": "call ended"})

    # ------------------------------------------------------------------ http

    async def _http(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            if len(body) > _MAX_BODY:
                await self._respond(
                    send, 413, error_body("Request body too large.", "body_too_large")
                )
                return
            if not message.get("more_body"):
                break
        path = path.rstrip("/")
        method = scope.get("method", "GET")
        if not path.startswith("/v1/realtime"):
            await self._respond(send, 404, error_body(f"Invalid URL ({method} {path})", None))
            return
        problem = self._auth_problem(scope)
        if problem is not None:
            await self._respond(send, 401, error_body(problem[1], problem[0]))
            return
        if path == "/v1/realtime/calls" and method == "POST":
            await self._create_call(scope, bytes(body), send)
            return
        if path == "/v1/realtime/calls/audio_onsets" and method == "GET":
            # Simulator-only debug route (not part of the realtime API): the voiced-audio
            # onsets of every live call, for the one-way audio latency benchmark.
            onsets = {cid: list(c.session.record.audio_onsets_ns) for cid, c in self.calls.items()}
            await self._respond(send, 200, orjson.dumps(onsets), content_type="application/json")
            return
        parts = path.split("/")
        if len(parts) == 6 and parts[3] == "calls" and parts[5] == "hangup" and method == "POST":
            call = self.calls.get(parts[4])
            if call is None:
                await self._respond(send, 404, error_body("Call not found.", "call_not_found"))
                return
            await self._end_call(call)
            await self._respond(send, 200, b"", content_type="text/plain")
            return
        await self._respond(send, 404, error_body(f"Invalid URL ({method} {path})", None))

    async def _respond(
        self,
        send: Send,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        all_headers = [(b"content-type", content_type.encode()), *(headers or [])]
        await send({"type": "http.response.start", "status": status, "headers": all_headers})
        await send({"type": "http.response.body", "body": body})

    async def _create_call(self, scope: Scope, body: bytes, send: Send) -> None:
        faults = self.faults
        if faults.calls_status is not None:
            status = faults.calls_status
            kind = "server_error" if status >= 500 else "invalid_request_error"
            error = {"message": f"Simulated {status}.", "type": kind, "param": None, "code": None}
            await self._respond(send, status, orjson.dumps({"error": error}))
            return
        request_headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
        }
        parsed = parse_offer(request_headers, body)
        if isinstance(parsed, str):
            await self._respond(send, 400, error_body(parsed, "invalid_value", "sdp"))
            return
        offer, session_json = parsed
        session_type = (session_json or {}).get("type", "realtime")
        version = ProtocolVersion.V1 if session_type == "quicksilver" else ProtocolVersion.V2
        mode = (
            SessionMode.TRANSCRIPTION
            if session_type == "transcription"
            else SessionMode.CONVERSATIONAL
        )
        call_id = self._ids.rtc_call()
        scenario = self._scenarios.popleft() if self._scenarios else None
        call_faults = scenario.faults if scenario and scenario.faults else faults
        record = self._new_record(version, mode, "webrtc", call_id)
        bridge = get_bridge()
        holder: dict[str, RtcAnswerer] = {}
        session = SimSession(
            config=self.config,
            record=record,
            ids=IdGenerator(f"{self.config.seed}:{record.index}"),
            version=version,
            mode=mode,
            model_name=(session_json or {}).get("model"),
            scenario=scenario,
            faults=call_faults,
            webrtc=True,
            audio_sink=lambda pcm: bridge.call_soon(holder["a"].push_audio, pcm),
            audio_clear=lambda: bridge.call_soon(holder["a"].clear_audio),
        )
        if session_json:
            session.apply_initial_session({k: v for k, v in session_json.items() if k != "model"})
        call = RtcCall(call_id, session)

        def on_open() -> None:
            session.attach(DataChannelOutlet(holder["a"]), greet=True)

        def on_closed() -> None:
            call.ended.set()

        port = TrioPort.current()

        async def make_answer() -> tuple[RtcAnswerer, str]:
            answerer = RtcAnswerer(
                port,
                on_message=lambda m: session.feed(m, "datachannel"),
                on_audio=session.feed_audio,
                on_open=on_open,
                on_closed=on_closed,
                ignore_datachannel=call_faults.datachannel_never_opens,
            )
            return answerer, await answerer.answer(offer)

        try:
            answerer, answer_sdp = await bridge.run(make_answer)
        except ValueError as exc:
            record.mark_closed(None)
            await self._respond(send, 400, error_body(str(exc)[:300], "invalid_offer", "sdp"))
            return
        holder["a"] = answerer
        call.answerer = answerer
        self.calls[call_id] = call
        assert self._nursery is not None
        self._nursery.start_soon(self._run_call, call)
        headers: list[tuple[bytes, bytes]] = []
        if faults.calls_location == "ok":
            headers.append((b"location", f"/v1/realtime/calls/{call_id}".encode()))
        elif faults.calls_location == "malformed":
            headers.append((b"location", b"/v1/realtime/calls/"))
        if faults.calls_invalid_sdp:
            answer_sdp = "this is not an SDP answer"
        await self._respond(
            send, 201, answer_sdp.encode(), content_type="application/sdp", headers=headers
        )

    async def _run_call(self, call: RtcCall) -> None:
        try:
            with trio.CancelScope() as scope:

                async def watch() -> None:
                    await call.ended.wait()
                    scope.cancel()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch)
                    await call.session.run()
                    nursery.cancel_scope.cancel()
        finally:
            # Also when the simulator itself is shut down (cancelled): an answerer left open
            # keeps ICE consent checks and RTP timers running on the bridge loop forever.
            await self._end_call(call)

    async def _end_call(self, call: RtcCall) -> None:
        call.ended.set()
        # Forget it: a later sideband join for this id gets call_not_found, and a long
        # benchmark run does not accumulate dead calls.
        self.calls.pop(call.call_id, None)
        if call.answerer is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await get_bridge().run(call.answerer.close)
        if not call.session.record.closed:
            call.session.record.mark_closed(None)


def _decline_compression(send: Send) -> None:
    """Make hypercorn answer the upgrade without ``permessage-deflate``.

    hypercorn always accepts a client's deflate offer and has no switch for it; the pending
    handshake sits on the ASGI ``send`` callable's stream object, so forget the offer there.
    Why: the real server's compression is undocumented, and compressing every event would
    charge clients that offer deflate (``websockets``, so the ``openai`` SDK) a decompression
    cost that clients which do not (trio-websocket) never pay — skewing client benchmarks.
    """
    handshake = getattr(getattr(send, "__self__", None), "handshake", None)
    if handshake is not None and hasattr(handshake, "extensions"):
        handshake.extensions = None


async def _serve_app(
    simulator: Simulator,
    hc: HypercornConfig,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve(simulator, hc, task_status=task_status)  # type: ignore[arg-type]


async def serve_simulator(
    config: SimulatorConfig | None = None,
    *,
    simulator: Simulator | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a simulator until cancelled. ``await nursery.start(serve_simulator, cfg)``
    returns the base URL ``http://127.0.0.1:<port>/v1``. Pass ``simulator`` to keep a handle
    on its sessions and knobs."""
    sim = simulator or Simulator(config)
    await sim.serve(task_status=task_status)


@asynccontextmanager
async def open_simulator(config: SimulatorConfig | None = None) -> AsyncIterator[Simulator]:
    """A running simulator for the duration of the block (``sim.base_url`` is set)."""
    sim = Simulator(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.serve)
        try:
            yield sim
        finally:
            nursery.cancel_scope.cancel()


async def run_server(host: str, port: int) -> None:
    """Serve on ``host:port`` until cancelled or interrupted.

    Prints ``listening on http://H:P`` (flushed) once the socket accepts connections. SIGINT
    (Ctrl-C) and SIGTERM end it gracefully: the server stops and the function *returns*, so
    the caller sees a normal exit rather than a ``KeyboardInterrupt`` from deep inside
    hypercorn. Outside the main thread signals cannot be caught, and only cancellation stops it.
    """
    sim = Simulator(SimulatorConfig(host=host, port=port))
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(sim.serve)
        print(f"listening on {url.removesuffix('/v1')}", flush=True)
        try:
            signals = trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        except RuntimeError:  # not the main thread
            await trio.sleep_forever()
        with signals as received:
            async for _ in received:
                break
        nursery.cancel_scope.cancel()
