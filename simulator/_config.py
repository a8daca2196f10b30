"""Simulator configuration, fault knobs and the deterministic id generator.

Everything here is a plain value: the server, the sessions and the scripted model read it and
never mutate it. ``FaultConfig`` holds the fault-injection knobs; it can be set for the whole
server (``SimulatorConfig.faults``) or replaced per session by a scenario.

Invariants:
- Ids follow openai-realtime-protocol.md §8.5 (``event_``/``sess_``/``conv_``/``resp_``/``item_``
  + 21 base62 characters, ``call_`` + 16, ``rtc_u1_`` + 32 hex) and come from a seeded
  ``random.Random``: the same seed and the same client input give the same ids.
- ``seed`` is combined with a per-server session counter, so every session is reproducible on
  its own and two sessions never share ids.
"""

from __future__ import annotations

import random
import string
from typing import Final, Literal

import attrs

__all__ = [
    "DEFAULT_MODEL",
    "FaultConfig",
    "GarbageKind",
    "IdGenerator",
    "SimulatorConfig",
]

DEFAULT_MODEL: Final = "gpt-realtime"

_BASE62: Final = string.digits + string.ascii_letters

#: ``"text"``: a text frame that is not JSON; ``"binary"``: a binary frame; ``"oversized"``: a
#: 17 MiB text frame (above the 16 MiB clients are told to accept); ``"non_object"``: valid JSON
#: that is not an object; ``"no_type"``: an object without ``type``.
GarbageKind = Literal["text", "binary", "oversized", "non_object", "no_type"]


@attrs.frozen(kw_only=True)
class FaultConfig:
    """Fault injection. Every knob defaults to "behave".

    Attributes:
        close_after_events: close the socket (``close_code``) after this many server events.
        close_code: WebSocket close code used by ``close_after_events`` (1001, 1011, 4000, …).
        close_reason: the close reason text.
        drop_after_events: abort the TCP connection (no close frame) after this many events;
            a WebRTC call goes silent (its ICE stops; no hang-up reaches the client).
        garbage_after_created: frames sent right after ``session.created``.
        event_delay_s: sleep before every server event.
        event_delays: extra sleep before events of the given ``type``.
        calls_status: ``POST /realtime/calls`` answers with this HTTP status and an OpenAI
            error body instead of creating a call.
        calls_location: ``"ok"``, ``"missing"`` (no header) or ``"malformed"`` (no ``rtc_`` id).
        calls_invalid_sdp: answer 201 with a body that is not SDP.
        datachannel_never_opens: the answerer ignores the ``oai-events`` channel: the SCTP
            association is never answered, so the client's channel never opens.
        sideband_refuse_first: refuse this many ``?call_id=`` joins (HTTP 403) before accepting.
        session_max_duration_s: after this long send ``session_expired`` and close 1001.
        silent_after_frames: after this many frames to a WebSocket (or data channel) the peer
            goes silent: it sends nothing more and, on a WebSocket, discards what it receives
            (pings go unanswered) while keeping the TCP connection open — a hung server.
    """

    close_after_events: int | None = None
    close_code: int = 1011
    close_reason: str = "simulated fault"
    drop_after_events: int | None = None
    garbage_after_created: tuple[GarbageKind, ...] = ()
    event_delay_s: float = 0.0
    event_delays: dict[str, float] = attrs.field(factory=dict, hash=False)
    calls_status: int | None = None
    calls_location: Literal["ok", "missing", "malformed"] = "ok"
    calls_invalid_sdp: bool = False
    datachannel_never_opens: bool = False
    sideband_refuse_first: int = 0
    session_max_duration_s: float | None = None
    idle_prompt: str = "Are you still there?"
    silent_after_frames: int | None = None


@attrs.frozen(kw_only=True)
class SimulatorConfig:
    """How the simulator listens and how its scripted model behaves.

    Attributes:
        host / port: where to listen; port 0 picks a free port.
        api_key: when set, only this Bearer key (or an ``ek_`` key) is accepted; any other
            non-empty key gets HTTP 401 ``invalid_api_key``. When ``None`` any non-empty key is
            accepted.
        seed: seeds the id generator and nothing else (the model has no other randomness);
            ``None`` (the default) picks a random seed per simulator, so ids differ across
            runs like the real server's.
        trigger_phrase: user text (or transcript) containing it yields a handoff.
        silence_phrase: user text containing it makes a v2 model call the silence tool (when
            the session declares it); empty disables.
        silence_tool_name: the v2 no-op tool (SPEC §2 ``remain_silent``).
        handoff_tool_name: default v2 handoff tool when the session declares none by this name.
        reply_prefix: the scripted reply is ``f"{reply_prefix}{text}."``.
        speech_transcript: transcript of every committed speech turn; ``None`` gives
            ``"[speech 1.20s]"`` (the committed duration).
        transcript_delay_ms: how long after the commit the input transcription events come.
            ``0`` sends them with the commit; the real API transcribes asynchronously, so its
            transcript may follow the response's first events (a client must not assume
            it comes first).
        audio_speedup: how much faster than real time model audio is streamed; ``0`` sends a
            whole response at once.
        audio_chunk_ms: duration of each ``output_audio.delta`` (20–100 ms).
        vad_rms_threshold: RMS (int16 units) a 20 ms frame needs to count as speech; scaled
            by the session's ``turn_detection.threshold`` / 0.5.
        v1_auto_response: v1 answers a user text item without ``response.create`` (the
            quicksilver backend takes turns itself).
        transcription_dialect_grace_s: on ``intent=transcription`` the dialect is chosen by the
            first client event; if none arrives in this time the session is v2.
        webrtc_dtx: honour a WebRTC offer's Opus DTX request (``usedtx=1``) as a libwebrtc
            server does: 200 ms into the model's silence the call's RTP stops, but for one
            packet every 400 ms, until the model speaks again. ``False`` streams the track
            continuously whatever the offer asks (a server that ignores the request).
        websocket_compression: accept a client's ``permessage-deflate`` offer (off: events are
            sent uncompressed whatever the client offers).
        record_limit: how many client frames (and server event types) each session record
            keeps (oldest dropped first).
        max_message_bytes: largest inbound WebSocket message the server accepts (above the
            15 MiB append limit so that limit can be reported as an ``error`` event).
        faults: server-wide fault knobs (a scenario may replace them per session).
        tool_call_word: v2 user text containing this word followed by the names of tools the
            session (or the response) declares — ``"call get_weather"``, ``"call a and b"`` —
            yields one ``function_call`` per named tool, in one response (parallel calls).
        tool_triggers: phrase → tool name: user text containing the phrase calls the tool
            (when declared), in addition to ``tool_call_word``.
        tool_arguments: tool name → the ``arguments`` JSON of its scripted calls (default
            ``{}``; the handoff tool's default is ``{"prompt": <user text>}``). ``{text}`` in
            the template is replaced by the user text, JSON-escaped.
        mcp_tools: tool name → the output a call returns, offered by every MCP server a
            session declares (``{"type": "mcp"}``; narrowed by its ``allowed_tools``). No MCP
            server is contacted: user text naming one of these tools after
            ``tool_call_word`` asks for its approval or runs it (``_mcp``).
        recall_phrase: user text containing it is answered with the previous user text in the
            conversation (``"Before that you said: <text>."``), so tests can check the context
            a session holds (e.g. history replayed after a reconnect).
        idle_prompt: what the model says after ``input_audio_buffer.timeout_triggered``
            (server VAD ``idle_timeout_ms``).
        session_max_duration_s: session cap: after this long the session sends ``error``
            ``session_expired`` and closes 1001, like the real service (60 min); ``None`` =
            no cap. ``FaultConfig.session_max_duration_s``, when set, takes precedence.
        tls_certfile / tls_keyfile: serve HTTPS and ``wss://`` with this PEM certificate chain
            and key (clients that insist on ``wss://``, like the official JS SDK, need it).
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = attrs.field(default=None, repr=False)  # a secret: never in repr
    seed: int | None = None
    model: str = DEFAULT_MODEL
    trigger_phrase: str = "delegate"
    handoff_tool_name: str = "codex"
    silence_phrase: str = "stay silent"
    silence_tool_name: str = "remain_silent"
    reply_prefix: str = "You said: "
    speech_transcript: str | None = None
    transcript_delay_ms: int = 0
    audio_speedup: float = 20.0
    audio_chunk_ms: int = 40
    vad_rms_threshold: float = 500.0
    v1_auto_response: bool = True
    transcription_dialect_grace_s: float = 1.0
    webrtc_dtx: bool = True
    websocket_compression: bool = False
    record_limit: int = 10_000
    max_message_bytes: int = 32 * 1024 * 1024
    faults: FaultConfig = attrs.field(factory=FaultConfig)
    tool_call_word: str = "call"
    tool_triggers: dict[str, str] = attrs.field(factory=dict, hash=False)
    tool_arguments: dict[str, str] = attrs.field(factory=dict, hash=False)
    mcp_tools: dict[str, str] = attrs.field(
        factory=lambda: {"search_docs": "3 pages about trio"}, hash=False
    )
    recall_phrase: str = "what did I say"
    session_max_duration_s: float | None = None
    idle_prompt: str = "Are you still there?"
    tls_certfile: str | None = None
    tls_keyfile: str | None = None


class IdGenerator:
    """Deterministic ids in the real server's formats."""

    def __init__(self, seed: int | str) -> None:
        self._rng = random.Random(str(seed))

    def _base62(self, n: int) -> str:
        # One ``choices`` call, not n ``choice`` calls: ids are minted for every server event.
        return "".join(self._rng.choices(_BASE62, k=n))

    def _hex(self, n: int) -> str:
        return "".join(self._rng.choices("0123456789abcdef", k=n))

    def event(self) -> str:
        return "event_" + self._base62(21)

    def session(self) -> str:
        return "sess_" + self._base62(21)

    def conversation(self) -> str:
        return "conv_" + self._base62(21)

    def response(self) -> str:
        return "resp_" + self._base62(21)

    def item(self) -> str:
        return "item_" + self._base62(21)

    def call(self) -> str:
        return "call_" + self._base62(16)

    def handoff(self) -> str:
        return "handoff_" + self._base62(16)

    def rtc_call(self) -> str:
        return "rtc_u1_" + self._hex(32)
