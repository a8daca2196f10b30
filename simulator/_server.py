"""The simulator server: one port, HTTP + WebSocket, on sockets it owns (``_http``); the
ways to run it are in ``_run``.

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
  call gets the default v2 session, or the one its ``ek_`` key was minted with. The
  ``session`` is applied before anything is sent. Each outlet — the ``oai-events`` channel
  when it opens, each sideband socket when it joins — gets its own ``session.created``;
  after that every event goes to all of them.
  ``POST /v1/realtime/calls/{id}/hangup`` ends a call (its whole peer connection).
- ``POST /v1/realtime/client_secrets`` mints ``ek_`` keys (``_secrets``); a call or a GA
  WebSocket opened with one starts from the session config it was minted with.
- CORS (``_cors``): ``OPTIONS`` preflights are answered 204 without auth; every HTTP response
  allows the origin and exposes ``Location``, so a browser page on another origin can call.
- Ids are random per simulator unless ``SimulatorConfig.seed`` pins them.
- Auth: every route needs ``Authorization: Bearer <key>`` (or the browser subprotocol
  ``openai-insecure-api-key.<key>``). Without one: 401 ``missing_api_key``; with
  ``SimulatorConfig.api_key`` set, a different key (other than an ``ek_`` one) gets 401
  ``invalid_api_key``.

Invariants:
- one session's failure never reaches another: each connection runs in its own task, a
  handler's unexpected exception is logged and ends only that connection, and the session
  layer turns model bugs into ``server_error`` events;
- a WebRTC call's events fan out to its data channel and every sideband socket;
- shutdown never hangs on a client that stopped reading: no socket write is shielded, so
  cancelling the server cancels every pending ``send_all``.
"""

from __future__ import annotations

import collections
import logging
import random
import ssl
from contextlib import suppress
from typing import Any, Final

import orjson
import trio

from duplex.protocol import ProtocolVersion, SessionMode
from duplex.transports import TrioPort, get_bridge

from ._calls import DataChannelOutlet, RtcCall, error_body, parse_offer
from ._config import FaultConfig, IdGenerator, SimulatorConfig
from ._cors import cors_headers, preflight_headers
from ._http import (
    HttpConnection,
    HttpRequest,
    SimulatorBindError,
    WebSocket,
    WebSocketClosed,
    listen_tcp,
    reset_stream,
    tls_context,
)
from ._rtc_answerer import RtcAnswerer
from ._scenario import Scenario, SessionRecord
from ._secrets import ClientSecrets
from ._session import SimSession
from ._session_shape import deep_merge

__all__ = ["Simulator", "SimulatorBindError"]

log = logging.getLogger(__name__)

_MAX_BODY: Final = 1024 * 1024

Headers = list[tuple[str, str]]


class SocketOutlet:
    """An accepted WebSocket as a session outlet.

    With ``silent_after`` it goes silent after that many frames (``FaultConfig.
    silent_after_frames``): later frames are dropped and ``silent`` is set, which makes the
    connection's reader discard everything (no pong, no close reply)."""

    def __init__(self, ws: WebSocket, name: str, *, silent_after: int | None = None) -> None:
        self._ws = ws
        self.name = name
        self.silent_after = silent_after
        self._sent = 0
        self.silent = trio.Event()

    async def send(self, data: str | bytes) -> None:
        if self.silent.is_set():
            return
        await self._ws.send(data)
        self._sent += 1
        if self.silent_after is not None and self._sent >= self.silent_after:
            self.silent.set()

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)

    async def abort(self) -> None:
        """Reset the TCP connection: no close frame, like a crashed server or a cut cable."""
        self._ws.reset()


class Simulator:
    """The simulator: the server plus the sessions, calls, scenarios and fault knobs.

    ``faults`` may be reassigned at any time; new sessions and calls use the current value.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.faults: FaultConfig = self.config.faults
        self.sessions: list[SessionRecord] = []
        self.calls: dict[str, RtcCall] = {}
        self.base_url: str | None = None
        self._scenarios: collections.deque[Scenario] = collections.deque()
        #: the seed every id comes from: ``config.seed``, or a fresh random one per simulator
        #: (so ids differ across runs, as the real server's do, unless a test pins them)
        self.seed: int = (
            self.config.seed
            if self.config.seed is not None
            else random.SystemRandom().randrange(2**63)
        )
        self._ids = IdGenerator(f"{self.seed}:server")
        #: the ``ek_`` keys minted by ``POST /v1/realtime/client_secrets``
        self.client_secrets = ClientSecrets(self.seed, model=self.config.model)
        self._nursery: trio.Nursery | None = None
        self._session_added = trio.Event()
        self._tls: ssl.SSLContext | None = None
        self._open_connections = 0

    # ------------------------------------------------------------------ test API

    def add_scenario(self, scenario: Scenario) -> None:
        """Queue a scenario; the next session (or WebRTC call) to open claims it."""
        self._scenarios.append(scenario)

    @property
    def open_connections(self) -> int:
        """Client TCP connections (HTTP or WebSocket) the server holds open right now: 0 once
        every client has gone, so a test can assert that nothing it opened leaked."""
        return self._open_connections

    async def wait_for_session(self, count: int = 1) -> SessionRecord:
        """Wait until ``count`` sessions exist; return the ``count``-th."""
        while len(self.sessions) < count:
            await self._session_added.wait()
        return self.sessions[count - 1]

    # ------------------------------------------------------------------ serving

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``task_status.started`` gets ``http://host:port/v1``.

        Raises ``SimulatorBindError`` when the address cannot be bound."""
        await self.serve_on(await self.listen(), task_status=task_status)

    async def listen(self) -> list[trio.SocketListener]:
        """Bind the configured address (``SimulatorBindError`` if that fails, or if the TLS
        certificate cannot be loaded)."""
        self._tls = tls_context(self.config.tls_certfile, self.config.tls_keyfile)
        return await listen_tcp(self.config.host, self.config.port)

    async def serve_on(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """``serve`` on listeners from ``listen`` (bind first, so a bind error is raised bare
        rather than from inside a nursery)."""
        sockname = listeners[0].socket.getsockname()
        served: list[trio.abc.Listener[Any]] = list(listeners)
        scheme = "http"
        if self._tls is not None:
            served = [trio.SSLListener(lst, self._tls, https_compatible=True) for lst in listeners]
            scheme = "https"
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(trio.serve_listeners, self._handle, served)
            host = sockname[0] if ":" not in sockname[0] else f"[{sockname[0]}]"
            self.base_url = f"{scheme}://{host}:{sockname[1]}/v1"
            log.info("simulator listening on %s", self.base_url)
            task_status.started(self.base_url)

    async def _handle(self, stream: trio.abc.Stream) -> None:
        """One client connection: HTTP requests (keep-alive) until one upgrades."""
        self._open_connections += 1
        try:
            await self._serve_connection(stream)
        finally:
            self._open_connections -= 1

    async def _serve_connection(self, stream: trio.abc.Stream) -> None:
        async with stream:
            conn = HttpConnection(stream, max_body=_MAX_BODY)
            try:
                while True:
                    request = await conn.next_request()
                    if request is None:
                        return
                    if request.websocket:
                        await self._websocket(conn, request)
                        return
                    await self._http(conn, request)
                    if not conn.keep_alive:
                        return
            except Exception:
                # One connection's bug must not take the server (and every other session)
                # down: log it and drop this connection only.
                log.exception("simulator: connection handler failed")
                reset_stream(stream)

    # ------------------------------------------------------------------ auth

    def _auth_problem(self, request: HttpRequest) -> tuple[str, str] | None:
        key = _api_key(request)
        if not key:
            return (
                "missing_api_key",
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        minted = self.client_secrets.lookup(key)
        if minted is not None and self.client_secrets.expired(minted):
            return ("invalid_api_key", "The ephemeral key has expired.")
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

    async def _error_and_close(
        self, ws: WebSocket, code: str, message: str, param: str | None
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
        with suppress(WebSocketClosed):
            await ws.send(orjson.dumps(body).decode())
        await ws.close(4000, f"invalid_request_error.{code}")
        await ws.drain_close()

    async def _accept(self, conn: HttpConnection, request: HttpRequest) -> WebSocket | None:
        return await conn.accept_websocket(
            subprotocol="realtime" if "realtime" in request.subprotocols else None,
            compression=self.config.websocket_compression,
            max_message=self.config.max_message_bytes,
        )

    async def _websocket(self, conn: HttpConnection, request: HttpRequest) -> None:
        if request.path.rstrip("/") != "/v1/realtime":
            await conn.reject_websocket(
                403, error_body(f"Invalid URL (GET {request.path})", None), _JSON
            )
            return
        problem = self._auth_problem(request)
        if problem is not None:
            await conn.reject_websocket(401, error_body(problem[1], problem[0]), _JSON)
            return
        intent = (request.query.get("intent") or [""])[0]
        model = _query(request, "model")
        call_id = _query(request, "call_id")
        if call_id is not None:
            await self._sideband(conn, request, call_id)
            return
        beta = request.headers.get("openai-beta", "") == "realtime=v1" or (
            "openai-beta.realtime-v1" in request.subprotocols
        )
        if beta and intent != "quicksilver":
            ws = await self._accept(conn, request)
            if ws is not None:
                await self._error_and_close(
                    ws,
                    "beta_api_shape_disabled",
                    "The Realtime Beta API is no longer supported. Please use /v1/realtime "
                    "for the GA API.",
                    None,
                )
            return
        minted = self.client_secrets.lookup(_api_key(request))
        initial: dict[str, Any] | None = None
        if minted is not None and intent in ("", "transcription"):
            # An ek_ key minted here: the session starts from its config (GA only).
            initial = {k: v for k, v in minted.session.items() if k != "model"}
            if minted.session.get("type") == "transcription":
                intent = "transcription"
            if model is None and isinstance(minted.session.get("model"), str):
                model = minted.session["model"]
        mode = (
            SessionMode.TRANSCRIPTION if intent == "transcription" else SessionMode.CONVERSATIONAL
        )
        version: ProtocolVersion | None
        if intent == "quicksilver":
            version = ProtocolVersion.V1
        elif intent == "transcription":
            # Decided by the first client event — unless an ek_ key already said GA.
            version = None if initial is None else ProtocolVersion.V2
        else:
            version = ProtocolVersion.V2
        ws = await self._accept(conn, request)
        if ws is None:
            return
        record = self._new_record(version, mode, "websocket", None)
        scenario = self._scenarios.popleft() if self._scenarios else None
        session = SimSession(
            config=self.config,
            record=record,
            ids=IdGenerator(f"{self.seed}:{record.index}"),
            version=version,
            mode=mode,
            model_name=model,
            scenario=scenario,
            faults=(scenario.faults if scenario and scenario.faults else self.faults),
            initial_session=initial,
        )
        outlet = SocketOutlet(ws, "websocket", silent_after=session.faults.silent_after_frames)
        session.attach(outlet, greet=False)
        await self._pump(session, outlet, ws, "websocket", run_session=True)
        await ws.drain_close()

    async def _pump(
        self,
        session: SimSession,
        outlet: SocketOutlet,
        ws: WebSocket,
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
            try:
                with trio.CancelScope() as reading:
                    if outlet.silent_after is not None:

                        async def go_silent() -> None:
                            await outlet.silent.wait()
                            reading.cancel()

                        nursery.start_soon(go_silent)
                    while True:
                        session.feed(await ws.receive(), source)
                # Only the silent-peer fault gets here: keep reading (so the client's FIN or
                # RST is noticed) but never answer or process anything again.
                await ws.discard_until_closed()
                raise WebSocketClosed(1006)
            except WebSocketClosed as closed:
                session.detach(outlet)
                if run_session and not session.record.closed:
                    session.record.mark_closed(closed.code)
            nursery.cancel_scope.cancel()

    async def _sideband(self, conn: HttpConnection, request: HttpRequest, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is not None:
            call.sideband_attempts += 1
            if call.sideband_attempts <= call.session.faults.sideband_refuse_first:
                await conn.reject_websocket(
                    403,
                    error_body("Sideband join refused (simulated).", "sideband_refused"),
                    _JSON,
                )
                return
        ws = await self._accept(conn, request)
        if ws is None:
            return
        if call is None or call.ended.is_set():
            await self._error_and_close(
                ws, "call_not_found", f"Call not found: {call_id}.", "call_id"
            )
            return
        outlet = SocketOutlet(ws, "sideband", silent_after=call.session.faults.silent_after_frames)
        call.session.attach(outlet, greet=True)
        with trio.CancelScope() as scope:

            async def watch_end() -> None:
                await call.ended.wait()
                scope.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_end)
                await self._pump(call.session, outlet, ws, "sideband", run_session=False)
                nursery.cancel_scope.cancel()
        if call.ended.is_set():
            call.session.detach(outlet)
            await ws.close(1000, "call ended")
        await ws.drain_close()

    # ------------------------------------------------------------------ http

    async def _http(self, conn: HttpConnection, request: HttpRequest) -> None:
        path = request.path.rstrip("/")
        method = request.method
        if method == "OPTIONS":
            # A browser's CORS preflight: it carries no key, so it is answered before auth.
            await conn.respond(204, b"", preflight_headers(request))
            return
        reply = _Reply(conn, request)
        if request.too_large:
            await reply(413, error_body("Request body too large.", "body_too_large"))
            return
        if not path.startswith("/v1/realtime"):
            await reply(404, error_body(f"Invalid URL ({method} {path})", None))
            return
        problem = self._auth_problem(request)
        if problem is not None:
            await reply(401, error_body(problem[1], problem[0]))
            return
        if path == "/v1/realtime/calls" and method == "POST":
            await self._create_call(reply, request)
            return
        if path == "/v1/realtime/client_secrets" and method == "POST":
            status, body = self.client_secrets.mint(request.body)
            await reply(status, body)
            return
        if path == "/v1/realtime/calls/audio_onsets" and method == "GET":
            # Simulator-only debug route (not part of the realtime API): the voiced-audio
            # onsets of every live call, for the one-way audio latency benchmark.
            onsets = {cid: list(c.session.record.audio_onsets_ns) for cid, c in self.calls.items()}
            await reply(200, orjson.dumps(onsets))
            return
        parts = path.split("/")
        if len(parts) == 6 and parts[3] == "calls" and parts[5] == "hangup" and method == "POST":
            call = self.calls.get(parts[4])
            if call is None:
                await reply(404, error_body("Call not found.", "call_not_found"))
                return
            await self._end_call(call)
            await reply(200, b"", "text/plain")
            return
        await reply(404, error_body(f"Invalid URL ({method} {path})", None))

    async def _create_call(self, reply: _Reply, request: HttpRequest) -> None:
        faults = self.faults
        if faults.calls_status is not None:
            status = faults.calls_status
            kind = "server_error" if status >= 500 else "invalid_request_error"
            error = {"message": f"Simulated {status}.", "type": kind, "param": None, "code": None}
            await reply(status, orjson.dumps({"error": error}))
            return
        parsed = parse_offer(request.headers, request.body)
        if isinstance(parsed, str):
            await reply(400, error_body(parsed, "invalid_value", "sdp"))
            return
        offer, session_json = parsed
        minted = self.client_secrets.lookup(_api_key(request))
        if minted is not None:
            # An ek_ key minted here: the call starts from the session it was minted with
            # (a multipart ``session`` part, if any, on top).
            session_json = deep_merge(minted.session, session_json or {})
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
            ids=IdGenerator(f"{self.seed}:{record.index}"),
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
            outlet = DataChannelOutlet(holder["a"], silent_after=call_faults.silent_after_frames)
            session.attach(outlet, greet=True)

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
                dtx=self.config.webrtc_dtx,
            )
            return answerer, await answerer.answer(offer)

        try:
            answerer, answer_sdp = await bridge.run(make_answer)
        except ValueError as exc:
            record.mark_closed(None)
            await reply(400, error_body(str(exc)[:300], "invalid_offer", "sdp"))
            return
        holder["a"] = answerer
        call.answerer = answerer
        self.calls[call_id] = call
        assert self._nursery is not None
        self._nursery.start_soon(self._run_call, call)
        headers: Headers = []
        if faults.calls_location == "ok":
            headers.append(("location", f"/v1/realtime/calls/{call_id}"))
        elif faults.calls_location == "malformed":
            headers.append(("location", "/v1/realtime/calls/"))
        if faults.calls_invalid_sdp:
            answer_sdp = "this is not an SDP answer"
        await reply(201, answer_sdp.encode(), "application/sdp", headers)

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


_JSON: Final[Headers] = [("content-type", "application/json")]


class _Reply:
    """Answers one HTTP request, with the CORS headers every realtime route carries."""

    def __init__(self, conn: HttpConnection, request: HttpRequest) -> None:
        self._conn = conn
        self._cors = cors_headers(request)

    async def __call__(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Headers | None = None,
    ) -> None:
        all_headers = [("content-type", content_type), *(headers or []), *self._cors]
        await self._conn.respond(status, body, all_headers)


def _api_key(request: HttpRequest) -> str:
    """The Bearer key, or the browser WebSocket subprotocol's key; ``""`` without one."""
    key = ""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    for proto in request.subprotocols:
        if proto.startswith("openai-insecure-api-key."):
            key = proto.removeprefix("openai-insecure-api-key.")
    return key


def _query(request: HttpRequest, name: str) -> str | None:
    values = request.query.get(name)
    return values[0] if values else None
