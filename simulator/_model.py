"""The scripted model: a sans-IO state machine for one realtime session.

``ScriptedModel`` receives parsed client events (``protocol`` client-event classes plus the raw
decoded dict, which carries explicit ``null``s the typed value cannot) and decoded input audio,
each with a ``now`` in seconds, and returns the server events to send as wire dicts (GA shape on
v2, the quicksilver shape of SPEC §2 on v1). Streaming is pulled: a response is a timed queue;
``poll(now)`` returns what is due and ``next_deadline()`` says when to call it again. Model audio
for WebRTC (where it travels on the media track, not in events) is collected by
``take_audio()``.

Behaviour (the simulator contract, SPEC §5):
- user text, committed speech or a handoff/tool output produces one response whose text is a
  pure function of the input (``"You said: <text>."``); a trigger phrase produces a handoff;
  ``"call <tool> [and <tool>]"`` (or a ``tool_triggers`` phrase) calls declared tools, in
  parallel; tool outputs are answered by naming them (``"<tool> returned <output>."``);
  ``recall_phrase`` is answered with the previous user text the conversation holds;
- turn control like the real server: manual ``commit``/``clear`` with turn detection off,
  ``response.cancel`` (of the default or an out-of-band response), out-of-band responses
  (``conversation: "none"``, ``metadata``, ``input`` with ``item_reference``s) beside the
  default one, ``input_audio_buffer.timeout_triggered`` for ``idle_timeout_ms``;
- the session's audio formats: G.711 input is decoded before the VAD, G.711 output deltas;
- strictness (openai-realtime-protocol.md §7/§8.3): one active default-conversation
  response, commit ≥ 100 ms, truncate bounds, voice immutable after audio, model immutable,
  GA ``unknown_parameter``, GA session values (formats and the 24 kHz rate, turn detection,
  noise reduction, speed, ``max_output_tokens``, ``tool_choice``: ``_session_values``),
  ``response_cancel_not_active``, ``response.create`` values (``conversation``,
  ``metadata`` limits, ``output_modalities``, ``input``).

Layers: ``ScriptedModel`` is a chain of mixins, one concept a module, each using the ones before
it: ``ResponseClock`` (``_response_clock``: the timeline that releases queued events, WebRTC
playout, the event constructors) ← ``ResponseBuilders`` (``_response_builders``: each
response's wire sequence) ← ``ResponseStreams`` (``_responses``: starting and cancelling
responses) ← ``ConversationItems`` (``_items``) ← ``InputAudio`` (``_input_audio``: buffer,
VAD, commits, idle timer) ← ``ScriptedModel`` (this module: the state, the client-event
dispatch, the ``session.update`` and ``response.create`` rules). Each layer declares the state
it reads; ``__init__`` here sets all of it.

Invariants:
- no I/O and no clock: identical inputs and ``now`` values give identical outputs, ids included;
- every response ends with ``response.done`` (completed or cancelled), after which its slot
  is free (WebRTC playout may go on: ``output_audio_buffer.stopped`` comes when it ends);
- every dict returned carries ``type`` and a fresh ``event_id``.
"""

from __future__ import annotations

import copy
from collections import deque
from typing import Any, Final

from duplex.protocol import (
    AGENT_FINAL_MESSAGE_PREFIX,
    VOICES,
    ClientEvent,
    ConversationItemCreate,
    ConversationItemDelete,
    ConversationItemRetrieve,
    ConversationItemTruncate,
    HandoffAppend,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCommit,
    OutputAudioBufferClear,
    ProtocolVersion,
    ResponseCancel,
    ResponseCreate,
    SessionCreate,
    SessionMode,
    SessionUpdate,
)

from ._audio import EnergyVad, G711Decoder
from ._config import IdGenerator, SimulatorConfig
from ._input_audio import MAX_APPEND_BYTES, InputAudio
from ._mcp import list_tools_item, mcp_servers
from ._response_clock import Event, _Playout, _Response
from ._session_shape import (
    GA_RESPONSE_KEYS,
    config_patch,
    deep_merge,
    initial_session,
)
from ._session_values import refusal

__all__ = ["ScriptedModel"]

_READ_ONLY_SESSION_KEYS: Final = frozenset({"id", "object", "expires_at"})


class ScriptedModel(InputAudio):
    """One session's deterministic model. See the module docstring.

    Its public methods come from its layers too: ``poll``, ``next_deadline``, ``take_audio``
    and ``error`` from ``_response_clock``, ``append_audio`` from ``_input_audio``.
    """

    def __init__(
        self,
        *,
        version: ProtocolVersion,
        mode: SessionMode,
        config: SimulatorConfig,
        ids: IdGenerator,
        model: str | None = None,
        webrtc: bool = False,
    ) -> None:
        self.version = version
        self.mode = mode
        self.config = config
        self.ids = ids
        self.webrtc = webrtc
        #: transcript of committed speech; ``None`` → ``"[speech 1.20s]"``
        self.speech_transcript = config.speech_transcript
        self.session_id = ids.session()
        self.conversation_id = ids.conversation()
        self.session = initial_session(
            version, mode, session_id=self.session_id, model=model or config.model
        )
        self.items: dict[str, Event] = {}
        self._order: list[str] = []
        self._unanswered: list[Event] = []
        self._assistant_audio_ms: dict[str, int] = {}
        self._handoffs: dict[str, Event] = {}
        self._mcp_listed: set[str] = set()  # MCP server labels whose tools were listed
        self._active: _Response | None = None
        self._oob: list[_Response] = []
        self._playing: deque[_Playout] = deque()
        self._idle_deadline: float | None = None
        self._late_transcripts: deque[tuple[float, list[Event]]] = deque()
        self._idle_since_ms = 0
        self._created_sent = False
        self._audio_out: list[bytes] = []
        self._audio_emitted = False
        self._buffer_bytes = 0
        self._turn_item_id: str | None = None
        self._turn_start_ms = 0
        self._vad = EnergyVad(rms_threshold=1.0, prefix_padding_ms=300, silence_duration_ms=200)
        self._input_decoder: G711Decoder | None = None
        self._sync_vad()

    # ------------------------------------------------------------------ public API

    @property
    def active_response_id(self) -> str | None:
        return None if self._active is None else self._active.id

    def conversation(self) -> list[Event]:
        """The default conversation's items as the model holds them, in order (copies)."""
        return [copy.deepcopy(self.items[i]) for i in self._order if i in self.items]

    def session_created(self) -> list[Event]:
        """The ``session.created`` event (always a session's first event)."""
        self._created_sent = True
        return [self._ev("session.created", session=copy.deepcopy(self.session))]

    def receive(
        self, event: ClientEvent, now: float, raw: dict[str, Any] | None = None
    ) -> list[Event]:
        """Handle one parsed client event; ``raw`` is its decoded JSON object if available."""
        eid = getattr(event, "event_id", None)
        match event:
            case SessionCreate() | SessionUpdate():
                raw_session = raw.get("session") if raw is not None else None
                return self._on_session(event, raw_session, eid)
            case InputAudioBufferAppend(audio=pcm):
                if len(pcm) > MAX_APPEND_BYTES:
                    return [self._too_large(len(pcm), eid)]
                if self._input_decoder is not None:
                    # The declared input format is G.711: what the VAD and commit see is
                    # its 24 kHz PCM16 decoding.
                    pcm = self._input_decoder.decode(pcm)
                return self.append_audio(pcm, now)
            case InputAudioBufferCommit():
                return self._on_commit(now, eid)
            case InputAudioBufferClear():
                self._buffer_bytes = 0
                self._vad.reset_turn()
                self._turn_item_id = None
                return [self._ev("input_audio_buffer.cleared")]
            case ConversationItemCreate():
                raw_item = raw.get("item") if raw is not None else None
                return self._on_item_create(event, raw_item, now, eid)
            case ConversationItemTruncate():
                return self._on_truncate(event, eid)
            case ConversationItemDelete(item_id=item_id):
                if item_id not in self.items:
                    return [self._not_found(item_id, eid)]
                del self.items[item_id]
                self._order.remove(item_id)
                return [self._ev("conversation.item.deleted", item_id=item_id)]
            case ConversationItemRetrieve(item_id=item_id):
                if item_id not in self.items:
                    return [self._not_found(item_id, eid)]
                return [self._ev("conversation.item.retrieved", item=self.items[item_id])]
            case ResponseCreate(response=overrides):
                return self._on_response_create(overrides, now, eid)
            case ResponseCancel(response_id=rid):
                return self._on_cancel(rid, eid)
            case OutputAudioBufferClear():
                return self._on_output_clear(now, eid)
            case HandoffAppend():
                return self._on_handoff_append(event, now, eid)
        return [self.error("invalid_value", f"Unsupported event: {event.TYPE}", param="type")]

    # ------------------------------------------------------------------ session

    def _on_session(
        self, event: SessionCreate | SessionUpdate, raw_session: Any, eid: str | None
    ) -> list[Event]:
        cfg = event.session
        # v1 (an internal backend dialect) ignores keys it does not know; GA rejects them.
        if cfg.unknown_fields and self.version is ProtocolVersion.V2:
            path = cfg.unknown_fields[0]
            param = path if path.startswith("session.") else f"session.{path}"
            return [
                self.error(
                    "unknown_parameter",
                    f"Unknown parameter: '{param}'.",
                    param=param,
                    client_event_id=eid,
                )
            ]
        expected = {
            (ProtocolVersion.V2, SessionMode.CONVERSATIONAL): "realtime",
            (ProtocolVersion.V2, SessionMode.TRANSCRIPTION): "transcription",
            (ProtocolVersion.V1, SessionMode.CONVERSATIONAL): "quicksilver",
            (ProtocolVersion.V1, SessionMode.TRANSCRIPTION): "transcription",
        }[(self.version, self.mode)]
        if cfg.type != expected:
            return [
                self.error(
                    "invalid_value",
                    f"Invalid value: '{cfg.type}'. This session only accepts "
                    f"session.type '{expected}'.",
                    param="session.type",
                    client_event_id=eid,
                )
            ]
        if cfg.model is not None and cfg.model != self.session.get("model", cfg.model):
            return [
                self.error(
                    "invalid_value",
                    "Cannot update a conversation's model.",
                    param="session.model",
                    client_event_id=eid,
                )
            ]
        voice = cfg.voice
        if voice is not None:
            if voice not in VOICES[self.version]:
                return [
                    self.error(
                        "invalid_value",
                        f"Invalid value: '{voice}'. Supported values are: "
                        + ", ".join(f"'{v}'" for v in VOICES[self.version])
                        + ".",
                        param="session.audio.output.voice",
                        client_event_id=eid,
                    )
                ]
            if self._audio_emitted and voice != self._voice():
                return [
                    self.error(
                        "cannot_update_voice",
                        "Cannot update a conversation's voice if assistant audio is present.",
                        param="session.audio.output.voice",
                        client_event_id=eid,
                    )
                ]
        mods = cfg.output_modalities
        if mods is not None and (len(mods) != 1 or mods[0] not in ("audio", "text")):
            return [
                self.error(
                    "invalid_value",
                    f"Invalid modalities: {list(mods)}. Supported combinations are: "
                    "['text'] and ['audio'].",
                    param="session.output_modalities",
                    client_event_id=eid,
                )
            ]
        refused = refusal(raw_session) if self.version is ProtocolVersion.V2 else None
        if refused is not None:
            code, message, param = refused
            return [self.error(code, message, param=param, client_event_id=eid)]
        patch = raw_session if isinstance(raw_session, dict) else config_patch(cfg)
        patch = {k: v for k, v in patch.items() if k not in _READ_ONLY_SESSION_KEYS}
        self.session = deep_merge(self.session, patch)
        self._sync_vad()
        out: list[Event] = []
        listing = self._list_mcp_tools()
        # v1 greets on the handshake. A v1 client that opens with session.update (codex's
        # spring-2026 quicksilver client) still gets session.created first.
        if isinstance(event, SessionCreate) or (
            self.version is ProtocolVersion.V1 and not self._created_sent
        ):
            out.extend(self.session_created())
        out.append(self._ev("session.updated", session=copy.deepcopy(self.session)))
        out.extend(listing)
        return out

    def _list_mcp_tools(self) -> list[Event]:
        """List the tools of MCP servers the session declares for the first time (``_mcp``)."""
        out: list[Event] = []
        for server in mcp_servers(self.session):
            label = server["server_label"]
            if label in self._mcp_listed:
                continue
            self._mcp_listed.add(label)
            item = list_tools_item(self.ids.item(), server, self.config)
            previous = self._order[-1] if self._order else None
            added, done = self._add_item(item, previous)
            out.append(added)
            out.append(self._ev("mcp_list_tools.in_progress", item_id=item["id"]))
            out.append(self._ev("mcp_list_tools.completed", item_id=item["id"]))
            out.append(done)
        return out

    # ------------------------------------------------------------------ responses

    def _on_response_create(
        self, overrides: dict[str, Any] | None, now: float, eid: str | None
    ) -> list[Event]:
        if self.version is ProtocolVersion.V2 and overrides:
            for key in overrides:
                if key not in GA_RESPONSE_KEYS:
                    return [
                        self.error(
                            "unknown_parameter",
                            f"Unknown parameter: 'response.{key}'.",
                            param=f"response.{key}",
                            client_event_id=eid,
                        )
                    ]
        if self.mode is SessionMode.TRANSCRIPTION:
            return [
                self.error(
                    "invalid_value",
                    "Transcription sessions cannot create responses.",
                    param="type",
                    client_event_id=eid,
                )
            ]
        overrides = overrides or {}
        out_of_band = overrides.get("conversation") == "none"
        problem = _override_problem(overrides)
        if problem is not None and self.version is ProtocolVersion.V2:
            return [self.error("invalid_value", problem[1], param=problem[0], client_event_id=eid)]
        if self._active is not None and not out_of_band:
            return [
                self.error(
                    "conversation_already_has_active_response",
                    "Conversation already has an active response in progress: "
                    f"{self._active.id}. Wait until the response is finished before creating "
                    "a new one.",
                    client_event_id=eid,
                )
            ]
        context: list[Event] | None = None
        if "input" in overrides:
            resolved = self._resolve_input(overrides.get("input"))
            if isinstance(resolved, str):
                return [self._not_found(resolved, eid)]
            context = resolved
        elif out_of_band:
            # Out of band without ``input``: the default conversation is the context.
            context = [self.items[i] for i in self._order]
        return self._start_response(
            overrides, now, context=context, in_conversation=not out_of_band
        )

    def _resolve_input(self, value: Any) -> list[Event] | str:
        """``response.input``: items and ``item_reference``s (an unknown id is returned)."""
        out: list[Event] = []
        for item in value if isinstance(value, list) else []:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "item_reference":
                ref = str(item.get("id"))
                if ref not in self.items:
                    return ref
                out.append(self.items[ref])
            else:
                out.append(item)
        return out

    def _on_cancel(self, response_id: str | None, eid: str | None) -> list[Event]:
        live = ([self._active] if self._active is not None else []) + list(reversed(self._oob))
        target = next((r for r in live if response_id in (None, r.id)), None)
        if target is None:
            return [
                self.error(
                    "response_cancel_not_active",
                    "Cancellation failed: no active response found",
                    client_event_id=eid,
                )
            ]
        return self._cancel(target, "client_cancelled")

    def _on_output_clear(self, now: float, eid: str | None) -> list[Event]:
        if not self.webrtc:
            return [
                self.error(
                    "invalid_value",
                    "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
                    param="type",
                    client_event_id=eid,
                )
            ]
        cleared = self._clear_playout(now)
        if cleared:
            return cleared
        # Nothing playing: the real server still acknowledges.
        return [
            self._ev(
                "output_audio_buffer.cleared", response_id=self.active_response_id or "resp_none"
            )
        ]

    def _on_handoff_append(self, event: HandoffAppend, now: float, eid: str | None) -> list[Event]:
        if event.handoff_id not in self._handoffs:
            return [
                self.error(
                    "invalid_value",
                    f"Unknown handoff_id '{event.handoff_id}'.",
                    param="handoff_id",
                    client_event_id=eid,
                )
            ]
        text = event.output_text.removeprefix(AGENT_FINAL_MESSAGE_PREFIX)
        self._unanswered.append({"type": "function_call_output", "output": text})
        if self._active is not None:
            return []  # spoken with the next response
        return self._start_response(None, now)


def _override_problem(overrides: dict[str, Any]) -> tuple[str, str] | None:
    """The real server's checks of ``response.create.response`` values: (param, message)."""
    conversation = overrides.get("conversation")
    if conversation is not None and conversation not in ("auto", "none"):
        return (
            "response.conversation",
            f"Invalid value: '{conversation}'. Supported values are: 'auto' and 'none'.",
        )
    metadata = overrides.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or len(metadata) > 16:
            return ("response.metadata", "Invalid 'response.metadata': at most 16 pairs.")
        for key, value in metadata.items():
            if len(key) > 64 or not isinstance(value, str) or len(value) > 512:
                return (
                    "response.metadata",
                    "Invalid 'response.metadata': keys are at most 64 characters and values "
                    "strings of at most 512.",
                )
    mods = overrides.get("output_modalities")
    if mods is not None and (not isinstance(mods, list) or mods not in (["text"], ["audio"])):
        return (
            "response.output_modalities",
            f"Invalid modalities: {mods}. Supported combinations are: ['text'] and ['audio'].",
        )
    inputs = overrides.get("input")
    if inputs is not None and not isinstance(inputs, list):
        return ("response.input", "Invalid 'response.input': expected an array.")
    return None
