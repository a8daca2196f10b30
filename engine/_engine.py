"""``open_engine`` and ``Engine``: the host-facing API (SPEC §3).

The engine owns one nursery for its whole life, at most one conversation at a time, and the
host event queue. It talks to a conversation through a handful of methods (``run``/``go``,
``close``, ``replace``, the host calls, ``delivered``); every conversation rule is the state
machine's (``_state_machine.py``).

Invariants:
- ``start()`` while a conversation runs replaces it: the old one is cancelled, emits nothing
  more, and its undelivered events are dropped from the host queue, so nothing stale reaches
  the host after ``start()`` returns. (A closed or ended conversation's events, its
  ``ConversationClosed`` included, are still delivered after the next ``start()``.)
- ``ConversationStarted`` is queued by ``start()`` itself, after the last point where it can
  fail or be cancelled: a failed or cancelled ``start()`` leaves nothing in the host stream.
- ``close()`` of a running conversation emits exactly one ``ConversationClosed("requested")``
  without waiting for the host to read; with nothing running it does nothing.
- A failed ``start()`` raises ``ConversationStartError`` and emits no ``ConversationClosed``;
  a cancelled one raises the cancellation to the scope that cancelled it; one cut short by
  leaving ``open_engine`` raises ``EngineClosed``.
- ``send_audio`` never blocks: a full queue drops the frame and counts it.
- Structural events are never dropped: the host queue is bounded, so a host that stops
  reading slows the engine's reading of the network instead (backpressure).
- Exceptions reach the host through one mapping (``_boundary.host_exception``): never an exception
  group, never a trio or transport exception.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, final

import attrs
import trio

from duplex.protocol import (
    AudioFrame,
    AudioOut,
    ConversationItem,
    LocalProtocolError,
    ProtocolVersion,
    SessionConfig,
    Tool,
    call_session_payload,
    dialect,
    realtime_headers,
    realtime_websocket_url,
)
from duplex.transports import Transport, connect_webrtc, connect_websocket

from ._boundary import host_exception
from ._config import EngineConfig
from ._conversation import Conversation
from ._errors import (
    ConversationNotRunning,
    ConversationStarted,
    ConversationStartError,
    EngineClosed,
    UnsupportedByDialect,
)
from ._history import ConversationHistory, HistoryItem
from ._host_events import HostEvent
from ._loop_reads import LoopReads
from ._queues import HostQueue
from ._reconnect import TransportCounts
from ._resume import seed_events
from ._session import SessionSettings
from ._usage import LatencySummary, UsageTotals

__all__ = ["Engine", "EngineStatistics", "EventStream", "host_exception", "open_engine"]

logger = logging.getLogger(__name__)


@final
@attrs.frozen
class EngineStatistics:
    """A snapshot of the engine's counters (of the current or last conversation).

    ``queue_depths`` maps each internal queue (``audio_in``, ``outbound``, ``host``) to the
    number of items waiting in it. ``audio_frames_dropped`` counts host frames dropped
    because the audio queue was full plus frames the transport dropped on the way out
    (WebRTC's outbound track when audio is sent faster than real time);
    ``binary_frames_dropped`` counts inbound binary WebSocket frames (the protocol is text).
    ``raw_events_sent`` counts ``send_event`` calls (also in ``client_events``).

    ``usage`` adds up the token usage of every ``response.done`` of the conversation
    (``UsageTotals``: input and output tokens by text/audio/image; ``cached_input_tokens`` is
    the cached *part* of ``input_tokens``, not added to it). ``latency`` holds per-response
    latency from the end of the user's turn — the server's ``speech_stopped``, a
    ``commit_audio()`` or a ``send_text()`` — to the first output transcript delta and the
    first model audio, as seen by the engine's reader: ``latency.last`` (the latest
    response) and ``transcript_p50_s``/``audio_p50_s`` (medians over the conversation's last
    1000 measured responses). See ``duplex.engine._usage`` for the exact definitions.
    """

    conversations_started: int
    running: bool
    server_events: int
    host_events: int
    parse_failures: int
    unknown_events: int
    client_events: int
    audio_frames_in: int
    audio_frames_dropped: int
    audio_frames_out: int
    stale_audio_dropped: int
    truncations: int
    bytes_in: int
    bytes_out: int
    queue_depths: dict[str, int] = attrs.field(factory=dict)
    binary_frames_dropped: int = 0
    reconnects: int = 0
    raw_events_sent: int = 0
    usage: UsageTotals = attrs.field(factory=UsageTotals)
    latency: LatencySummary = attrs.field(factory=LatencySummary)


TransportFactory = Callable[[trio.Nursery], Awaitable[Transport]]


def check_config(config: object) -> None:
    """Refuse a config of the wrong type with a clear message (not an internal error from
    deep inside the engine)."""
    if not isinstance(config, EngineConfig):
        raise TypeError(
            f"open_engine needs an EngineConfig (EngineConfig(...) or EngineConfig.from_env()), "
            f"got {type(config).__name__}"
        )


@asynccontextmanager
async def open_engine(
    config: EngineConfig, *, transport_factory: TransportFactory | None = None
) -> AsyncIterator[Engine]:
    """Run an engine for the duration of the ``async with`` block.

    Args:
        config: connection and session settings.
        transport_factory: connect with this instead of ``config.transport`` (a custom or
            in-memory transport); it is called with the conversation's nursery.

    On exit any running conversation is cancelled (no further events), a ``start()`` still
    connecting ends with ``EngineClosed``, and ``events()`` iterators end.

    Raises:
        TypeError: ``config`` is not an ``EngineConfig`` (before anything starts).
    """
    check_config(config)
    host_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            engine = Engine(config, nursery, transport_factory=transport_factory)
            try:
                yield engine
            except BaseException as exc:
                host_error = exc
                raise
            finally:
                await engine._shutdown()
                nursery.cancel_scope.cancel()
    except BaseException as exc:
        escaping = host_exception(exc, host_error=host_error)
        if escaping is exc:
            raise
    else:
        return
    # Raised outside the ``except`` so the host's exception is not chained to the group.
    raise escaping


class Engine:
    """The conversation manager. Create it with ``open_engine``."""

    def __init__(
        self,
        config: EngineConfig,
        nursery: trio.Nursery,
        *,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        self.config = config
        self._transport_factory = transport_factory
        self._nursery = nursery
        # Bounded host queue: see EngineConfig.event_queue_size (batches, not events).
        self._host = HostQueue(config.event_queue_size)
        self._generation = 0
        self._current: Conversation | None = None
        self._lock = trio.Lock()  # start/close are serialised: one lifecycle change at a time
        self._starting: trio.CancelScope | None = None  # a start() connecting; shutdown cancels
        self._started = 0
        self._host_events = 0
        self._closed = False  # the open_engine block has exited
        self._loop_reads: LoopReads | None = None  # duplex.aio: the host's loop reads

    # ---- lifecycle ------------------------------------------------------------------

    async def start(
        self,
        prompt: str | None = None,
        conversation_id: str | None = None,
        *,
        history: Sequence[HistoryItem] = (),
    ) -> ConversationStarted:
        """Connect and start a conversation, replacing any running one.

        Args:
            prompt: the session instructions (``None`` sends an empty prompt).
            conversation_id: v1 only: the backend conversation to continue.
            history: v2: prior items (``HistoryItem``) sent right after the handshake, in
                order; they become the start of ``history()`` and of every replay.

        Raises:
            ConversationStartError: invalid settings (voice, modality) or the connection
                failed (``status`` holds the HTTP status when the server refused).
            EngineClosed: the ``open_engine`` block exited (before or during the start).
            trio.Cancelled: the caller's scope was cancelled; nothing was emitted.
        """
        self._check_open()
        config = self.config
        if self._transport_factory is None and not (config.api_key or "").strip():
            # Checked before any connection, on every transport: a keyless WebSocket upgrade
            # would only come back as an unexplained HTTP 401.
            raise ConversationStartError(
                "no API key: set the OPENAI_API_KEY environment variable "
                "(EngineConfig.from_env()) or pass api_key= to EngineConfig"
            )
        if history and not dialect(config.version).client_items:
            raise UnsupportedByDialect(
                f"{dialect(config.version).title} sessions cannot be seeded with history "
                "items; pass conversation_id= to continue a backend conversation"
            )
        ledger = ConversationHistory(handoff_tool_name=config.handoff_tool_name or "")
        seed = seed_events(ledger, history)
        async with self._lock:
            self._check_open()
            await self._replace_current()
            # The block may have exited while the old conversation closed; from here to
            # nursery.start() there is no checkpoint, so the nursery is still open after this.
            self._check_open()
            session_id = f"duplex_{uuid.uuid4().hex}"
            # The session (config.session, tools, instructions): the handshake and every
            # later update_session come from it. Raises ConversationStartError.
            settings = SessionSettings(config, prompt)
            start_event = settings.start_event(conversation_id)
            try:
                # Builds the headers: a blank key or a bad header value fails here.
                connect = self._connector(session_id, start_event)
            except LocalProtocolError as exc:
                raise ConversationStartError(str(exc)) from exc
            self._generation += 1
            conversation = Conversation(
                config=config,
                generation=self._generation,
                session_id=session_id,
                connect=connect,
                start_event=start_event,
                host=self._host,
                history=ledger,
                seed=seed,
                session=settings,
                loop_reads=self._loop_reads,
            )
            url = self._display_url()
            scope = self._starting = trio.CancelScope()
            try:
                with scope, trio.fail_after(config.connect_timeout + config.close_timeout):
                    started: ConversationStarted = await self._nursery.start(conversation.run)
            except BaseException as exc:
                error = host_exception(exc, start_url=url, connect_timeout=config.connect_timeout)
                if error is exc:
                    raise
                raise error  # noqa: B904 — the cause is set by host_exception
            finally:
                self._starting = None
            # No checkpoint from here to the return: the start can no longer be cancelled.
            if scope.cancelled_caught or self._closed:
                conversation.replace()
                raise EngineClosed()
            self._host.push_nowait(conversation.generation, [started])
            self._current = conversation
            self._started += 1
            conversation.go()
            return started

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosed()

    def _display_url(self) -> str:
        """Where ``start()`` connects, for error messages (a URL never carries the key)."""
        config = self.config
        if self._transport_factory is not None:
            return "the custom transport"
        if config.transport == "webrtc":
            return f"{config.base_url.rstrip('/')}/realtime/calls"
        try:
            return realtime_websocket_url(
                config.base_url, version=config.version, mode=config.mode, model=config.model
            )
        except LocalProtocolError:
            return config.base_url

    def _connector(self, session_id: str, start_event: Any) -> Any:
        config = self.config
        headers = realtime_headers(
            api_key=config.api_key,
            session_id=session_id,
            extra=dict(config.headers),
            version=config.version,
        )

        factory = self._transport_factory

        async def connect(nursery: trio.Nursery) -> Transport:
            if factory is not None:
                return await factory(nursery)
            if config.transport == "websocket":
                url = realtime_websocket_url(
                    config.base_url, version=config.version, mode=config.mode, model=config.model
                )
                return await connect_websocket(
                    nursery,
                    url,
                    headers,
                    max_message_size=config.max_message_size,
                    connect_timeout=config.connect_timeout,
                    liveness_timeout=config.liveness_timeout,
                )
            transport: Transport = await connect_webrtc(
                nursery,
                base_url=config.base_url,
                api_key=config.api_key or "",
                session=call_session_payload(start_event, config.model),
                control=config.webrtc_control,
                version=config.version.value,
                headers=headers,
                connect_timeout=config.connect_timeout,
                liveness_timeout=config.liveness_timeout,
                ice_servers=config.ice_servers,
            )
            return transport

        return connect

    async def close(self) -> bool:
        """Close the running conversation. Emits exactly one ``ConversationClosed("requested")``.

        What earlier calls have queued for the server (the message of a ``send_text`` that
        returned, a tool output) is still sent before the connection closes, within
        ``close_timeout``; microphone audio still waiting in the audio queue is dropped, and
        nothing more is read. Never waits for the host to read ``events()`` (the event is
        queued behind the conversation's undelivered events, before the next conversation's).

        Returns:
            True if a conversation was running; False (and nothing emitted) otherwise.
        """
        self._check_open()
        async with self._lock:
            conversation = self._current
            if conversation is None or not conversation.close():
                return False
            with trio.CancelScope(shield=True):
                await conversation.done.wait()  # bounded by close_timeout (transport aclose)
            return True

    async def _replace_current(self) -> None:
        conversation = self._current
        if conversation is None:
            return
        conversation.replace()
        self._current = None
        with trio.CancelScope(shield=True):
            await conversation.done.wait()

    async def _shutdown(self) -> None:
        self._closed = True
        with trio.CancelScope(shield=True):
            if self._starting is not None:
                self._starting.cancel()  # start() then raises EngineClosed
            conversation = self._current
            if conversation is not None:
                conversation.replace()
                with trio.move_on_after(self.config.close_timeout):
                    await conversation.done.wait()
            self._host.close()

    # ---- input ----------------------------------------------------------------------

    def _running(self) -> Conversation:
        self._check_open()
        conversation = self._current
        if conversation is None or not conversation.running:
            raise ConversationNotRunning()
        return conversation

    def send_audio(self, frame: AudioFrame) -> bool:
        """Queue microphone audio. Never blocks.

        With ``audio_format="pcm16"`` the frame is PCM16 of any rate and channel count
        (converted to 24 kHz mono; other rates need the ``duplex[resample]`` extra); with
        ``"pcmu"``/``"pcma"`` it is 8 kHz mono G.711 of that encoding.

        Returns:
            False when the audio queue was full and the frame was dropped (counted in
            ``statistics().audio_frames_dropped``).

        Raises:
            ConversationNotRunning: no conversation is running.
            InvalidAudioFrame: ``sample_rate`` or ``channels`` is not positive, or the
                frame's encoding is not the session's (a ``ValueError``); the frame is
                refused and the conversation goes on.
            ResamplerUnavailable: the frame needs resampling and the optional
                ``duplex[resample]`` extra (soxr) is not installed.
        """
        return self._running().submit_audio(frame)

    def audio_played(self, item_id: str, ms: float) -> None:
        """Report that ``ms`` milliseconds of ``item_id``'s audio have been played to the
        user (a device callback, a jitter buffer, telephony marks). On barge-in the engine
        cuts the item there instead of at what was taken from ``events()``. Never blocks;
        reports for an unknown or finished item are ignored.

        Raises:
            ConversationNotRunning: no conversation is running.
            InvalidRequest: ``ms`` is not a non-negative number (NaN included).
        """
        self._running().audio_played(item_id, ms)

    async def send_text(self, text: str, *, respond: bool = True) -> None:
        """Add a user text message; unless ``respond=False``, ask the model to answer it.

        On v2 the answer is requested with ``response.create`` through the single-active-
        response queue. A v1 backend answers text items by itself (the Rust original never
        sends ``response.create`` on v1), so there ``respond`` only documents intent.

        Waits only while the outbound queue is full (a stalled socket), and no longer than
        the conversation lives.

        Raises:
            ConversationNotRunning: no conversation is running (or it ended meanwhile).
            UnsupportedByDialect: the session is a transcription session.
        """
        await self._running().send_text(text, respond=respond)

    async def send_handoff_output(self, handoff_id: str, text: str, *, final: bool = True) -> None:
        """Answer a ``HandoffRequested``: progress (``final=False``) or the final result.

        Raises:
            ConversationNotRunning: no conversation is running.
            HandoffNotActive: ``handoff_id`` is not a handoff the engine is waiting on (never
                requested, already finished, or a v2 steering request that was acknowledged).
        """
        await self._running().send_handoff_output(handoff_id, text, final=final)

    async def update_prompt(self, prompt: str) -> None:
        """Change the session instructions (``session.update``).

        Raises:
            ConversationNotRunning: no conversation is running.
        """
        await self._running().update_prompt(prompt)

    # ---- history (long conversations) -----------------------------------------------

    def history(self) -> tuple[HistoryItem, ...]:
        """The conversation as the engine knows it (of the running or last conversation):
        user, assistant, system and tool items in order, with their ids and their text or
        transcript. It spans reconnects and rotations."""
        self._check_open()
        conversation = self._current
        return conversation.history.items() if conversation is not None else ()

    async def add_item(self, item: HistoryItem) -> str:
        """Add an item to the conversation (v2; no response is requested). Returns its id
        (the one given, or one the engine chose).

        Raises:
            ConversationNotRunning: no conversation is running.
            UnsupportedByDialect: a v1 session.
            ValueError: a message with no text.
        """
        conversation = self._running()
        self._require_turn_control("add_item")
        return await conversation.add_item(item)

    async def delete_item(self, item_id: str) -> None:
        """Delete an item from the conversation and from ``history()`` (v2).

        Raises:
            ConversationNotRunning: no conversation is running.
            UnsupportedByDialect: a v1 session.
        """
        conversation = self._running()
        self._require_turn_control("delete_item")
        await conversation.delete_item(item_id)

    def _require_turn_control(self, what: str) -> None:
        known = dialect(self.config.version)
        if not known.turn_control:
            raise UnsupportedByDialect(
                f"{what} is not part of the {known.title} dialect; use version='v2'"
            )

    # ---- tools, session, turn control (issue 13) ------------------------------------

    async def send_tool_output(self, call_id: str, output: str, *, respond: bool = True) -> None:
        """Answer a ``ToolCallRequested`` with the tool's result (any string; JSON is usual).

        Sends the ``function_call_output`` item. With ``respond=True`` the model is then asked
        to answer (``response.create`` through the single-active-response queue) — once per
        response's calls: when the model called several tools in one response (parallel
        calls), the answer is requested after the last of them is answered and that response
        has finished, so answering both of a pair causes one ``response.create``. With
        ``respond=False`` for every call of the response, no response is requested.

        Raises:
            ConversationNotRunning: no conversation is running.
            ToolCallNotActive: ``call_id`` was never requested in this conversation or was
                already answered.
            UnsupportedByDialect: v1, or a transcription session (no tools there).
            InvalidRequest: ``output`` is not a string.
        """
        await self._running().send_tool_output(call_id, output, respond=respond)

    async def send_mcp_approval(
        self,
        request_id: str,
        approve: bool,
        *,
        reason: str | None = None,
        respond: bool = True,
    ) -> None:
        """Answer an ``McpApprovalRequested``: may the MCP server's tool run?

        Sends the ``mcp_approval_response`` item (``request_id`` is the request's
        ``item_id``). With ``respond=True`` the model is then asked to go on
        (``response.create`` through the single-active-response queue): it runs an approved
        call and speaks about the result, or about the refusal. ``reason`` explains a refusal
        (the API takes none beside an approval).

        Raises:
            ConversationNotRunning: no conversation is running.
            ToolCallNotActive: no such request is waiting (never requested in this
                conversation, already answered, or asked before a reconnect: a resumed
                session does not know it).
            UnsupportedByDialect: v1, or a transcription session.
            InvalidRequest: ``approve`` is not a bool, or a reason beside an approval.
        """
        await self._running().send_mcp_approval(request_id, approve, reason=reason, respond=respond)

    async def update_session(
        self,
        session: SessionConfig | None = None,
        *,
        tools: Iterable[Tool] | None = None,
        instructions: str | None = None,
    ) -> None:
        """Change the session mid-conversation: a new ``SessionConfig``, new function tools
        (replacing the old ones; ``()`` removes them), new instructions — each ``None`` keeps
        the current value. The engine sends the *whole* session (``session.update``), so a
        turn-detection type switch replaces the old object; ``turn_detection=None`` means
        manual turns (push-to-talk with ``commit_audio``).

        Validated before anything is sent; on an error the session is unchanged.

        Raises:
            ConversationNotRunning: no conversation is running.
            InvalidRequest: a tool or value the session cannot take (named in the message).
            UnsupportedByDialect: a session or tools on v1 (v1 takes only instructions).
        """
        await self._running().update_session(session, tools=tools, instructions=instructions)

    async def commit_audio(self, *, respond: bool = True) -> None:
        """End a push-to-talk turn: the audio sent so far becomes a user item
        (``input_audio_buffer.commit``; the server wants ≥ 100 ms of it). Audio passed to
        ``send_audio`` before this call is sent before the commit.

        With ``respond=True`` and a session whose turn detection is off (or does not create
        responses), the model is asked to answer (through the single-active-response queue);
        with server turn detection creating responses, the server answers by itself.

        Raises:
            ConversationNotRunning: no conversation is running.
            UnsupportedByDialect: v1 (its backend detects turns itself).
        """
        await self._running().commit_audio(respond=respond)

    async def clear_audio(self) -> None:
        """Drop the uncommitted input audio on the server (an aborted push-to-talk turn),
        including audio passed to ``send_audio`` before this call.

        Raises:
            ConversationNotRunning: no conversation is running.
            UnsupportedByDialect: v1.
        """
        await self._running().clear_audio()

    async def interrupt(self) -> None:
        """Stop the model now: cancel the response that is speaking (``response.cancel``),
        cut its item at what the host has heard — the barge-in rule: the audio taken from
        ``events()`` — and emit ``AudioInterrupted(item_id, played_ms)`` so the host flushes
        its playback. WebSocket sends ``conversation.item.truncate``; WebRTC sends
        ``output_audio_buffer.clear`` (the server truncates there). With nothing playing and
        no response active it sends nothing and emits nothing.

        Raises:
            ConversationNotRunning: no conversation is running.
            UnsupportedByDialect: v1, or a transcription session.
        """
        await self._running().interrupt()

    async def create_response(
        self,
        *,
        instructions: str | None = None,
        conversation: str = "auto",
        metadata: Mapping[str, str] | None = None,
        output_modalities: Sequence[str] | None = None,
        input: Iterable[ConversationItem | str] | None = None,
        max_output_tokens: int | str | None = None,
        tool_choice: str | None = None,
        tools: Iterable[Tool] | None = None,
        voice: str | None = None,
    ) -> None:
        """Ask the model for a response with per-response options.

        Args:
            instructions: instructions for this response only.
            conversation: ``"auto"`` — a normal response in the conversation, through the
                single-active-response queue (sent when the active response finishes);
                ``"none"`` — out of band: sent at once, runs beside the default response,
                and adds nothing to the conversation.
            metadata: up to 16 string pairs the server keeps on the response.
            output_modalities: ``("audio",)`` or ``("text",)``.
            input: the items this response sees instead of the conversation: new
                ``ConversationItem`` values or ids of existing items.
            max_output_tokens: this response's output limit, 1 to 4096 or ``"inf"``.
            tool_choice: ``"auto"``, ``"none"``, ``"required"``, or the name of the one
                function tool the model must call.
            tools: the function tools this response may call *instead of* the session's
                (``()``: none). The session's handoff and silence tools are not added, and
                their names may not be reused. A call of one of them reaches the host as a
                ``ToolCallRequested`` like any other, answered with ``send_tool_output``.
            voice: the voice of this response (a voice name of the dialect, e.g.
                ``"cedar"``); the session's voice is unchanged.

        Returns nothing: the response's events carry its ``response_id``
        (``ResponseCreated``, ``OutputTranscriptDelta``, ``AudioOut``, ``ResponseDone``), and
        its ``ResponseCreated`` and ``ResponseDone`` carry ``metadata``: give an out-of-band
        response metadata to tell it apart from a default response starting at the same
        time. The server may refuse an out-of-band response while the engine sends it; that
        comes back as an ``Error`` event.

        Raises:
            ConversationNotRunning: no conversation is running.
            InvalidRequest: an option the protocol cannot carry (named in the message).
            UnsupportedByDialect: v1, or a transcription session.
        """
        await self._running().create_response(
            instructions=instructions,
            conversation=conversation,
            metadata=metadata,
            output_modalities=output_modalities,
            input=input,
            max_output_tokens=max_output_tokens,
            tool_choice=tool_choice,
            tools=None if tools is None else tuple(tools),
            voice=voice,
        )

    async def send_image(self, data: bytes, mime_type: str, *, text: str | None = None) -> None:
        """Add a user message holding an image (``input_image``, sent as a ``data:`` URL)
        and, optionally, text beside it. No response is requested: follow with
        ``create_response()`` or ``send_text()`` to ask about it.

        Raises:
            ConversationNotRunning: no conversation is running.
            InvalidRequest: empty data, a type other than PNG, JPEG, WebP or GIF, or an
                event larger than a WebRTC data channel's message limit (the server's
                ``a=max-message-size``; ``docs/host-api.md``): nothing sent, the
                conversation goes on.
            UnsupportedByDialect: v1 (no image input), or a transcription session.
        """
        await self._running().send_image(data, mime_type, text=text)

    async def send_event(self, event: Mapping[str, Any]) -> None:
        """Send a raw client event (a JSON object with a string ``type``), as given, through
        the conversation's one writer, after everything queued before it. The escape hatch
        for fields this release does not model: the engine's rules do not see it (a raw
        ``response.create`` is not queued behind the active response). Counted in
        ``statistics().raw_events_sent``.

        Raises:
            ConversationNotRunning: no conversation is running.
            InvalidRequest: not a mapping with a string ``type``, or not JSON-serialisable.
        """
        await self._running().send_event(event)

    # ---- output ---------------------------------------------------------------------

    def events(self) -> EventStream:
        """Host-visible events in order: ``ConversationStarted``, the protocol vocabulary,
        ``ConversationClosed``. Ends when the engine closes.

        The iterator is cancel-safe: a cancelled ``__anext__`` (a timeout around
        ``async for``) loses nothing, and the next iteration — of this or of a new
        ``events()`` iterator — continues where it stopped."""
        return EventStream(self)

    def _admit(self, generation: int, event: HostEvent) -> bool:
        """Whether a queued event reaches the host now (and count it if so)."""
        if type(event) is AudioOut:
            conversation = self._current
            if (
                conversation is not None
                and conversation.generation == generation
                and not conversation.delivered(event)
            ):
                # Queued before a barge-in cut its item: past what the user heard, so
                # it never reaches the host (AudioInterrupted follows in the stream).
                return False
        self._host_events += 1
        return True

    # The handoff to ``duplex.aio`` (trio context, no task of its own): the same events in
    # the same order as ``events()``, taken synchronously when they are queued.

    def _take_event_nowait(self) -> tuple[int, HostEvent] | None:
        """The next host event and its conversation's generation if one is queued, else
        None (see ``events()``)."""
        host = self._host
        while (item := host.take_nowait()) is not None:
            if self._admit(*item):
                return item
        return None

    def _events_finished(self) -> bool:
        """``events()`` has ended: the engine closed and every event was taken."""
        return self._host.finished

    def _on_events(self, listener: Callable[[], object] | None) -> None:
        """Call ``listener()`` (in the queuing task) whenever events were queued, and when
        the stream ends; None stops it."""
        self._host.listener = listener

    async def _withdraw(self) -> None:
        """End the current conversation the way ``start()`` replaces one: silently, its
        undelivered events dropped (``duplex.aio``'s cancelled ``start()``)."""
        async with self._lock:
            await self._replace_current()

    def _read_on_loop(self, loop_reads: LoopReads | None) -> None:
        """Let the host's loop read the connections of conversations started from now on
        (``duplex.aio`` in guest mode; ``_loop_reads.py``); None: trio reads."""
        self._loop_reads = loop_reads

    def _on_purge(self, listener: Callable[[int], object] | None) -> None:
        """Call ``listener(generation)`` when a replaced conversation's undelivered events
        are dropped (inside ``start()``, before it returns); None stops it."""
        self._host.purge_listener = listener

    def statistics(self) -> EngineStatistics:
        """A frozen snapshot of counters and queue depths."""
        conversation = self._current
        # Summed over the conversation's connections: never backwards across a reconnect.
        tcounts = conversation.transport_counts() if conversation else TransportCounts()
        counters = conversation.counters if conversation is not None else None
        depths = conversation.queue_depths() if conversation is not None else {}
        depths["host"] = self._host.depth()
        transport_dropped = tcounts.audio_out_dropped
        return EngineStatistics(
            conversations_started=self._started,
            running=conversation is not None and conversation.running,
            server_events=counters.server_events if counters else 0,
            host_events=self._host_events,
            parse_failures=counters.parse_failures if counters else 0,
            unknown_events=counters.unknown_events if counters else 0,
            client_events=counters.client_events if counters else 0,
            audio_frames_in=counters.audio_in if counters else 0,
            audio_frames_dropped=(counters.audio_in_dropped if counters else 0) + transport_dropped,
            audio_frames_out=counters.audio_out if counters else 0,
            stale_audio_dropped=counters.stale_audio_dropped if counters else 0,
            truncations=counters.truncations if counters else 0,
            bytes_in=tcounts.bytes_in,
            bytes_out=tcounts.bytes_out,
            queue_depths=depths,
            binary_frames_dropped=tcounts.binary_frames_dropped,
            reconnects=conversation.reconnects if conversation is not None else 0,
            raw_events_sent=counters.raw_events_sent if counters else 0,
            usage=conversation.state.usage.totals() if conversation else UsageTotals(),
            latency=conversation.state.latency.summary() if conversation else LatencySummary(),
        )

    @property
    def version(self) -> ProtocolVersion:
        return self.config.version


@final
class EventStream:
    """The async iterator ``Engine.events()`` returns (see there)."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> HostEvent:
        # Every host event passes here: ``Engine._admit`` is inlined for all but AudioOut.
        engine = self._engine
        host = engine._host
        while True:
            generation, event = await host.next()
            if type(event) is not AudioOut:
                engine._host_events += 1
                return event
            if engine._admit(generation, event):
                return event

    async def aclose(self) -> None:
        """Nothing to release (kept so ``contextlib.aclosing`` works)."""
