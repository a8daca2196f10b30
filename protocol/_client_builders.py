"""Client builders: what a client sends, expressed once for both dialects.

The engine calls these with its session's version; where the dialects differ each delegates
to the dialect's encoding module (``_encode_v1`` / ``_encode_v2``, which also hold the
server-role payloads). Everything returns typed ``ClientEvent`` values (encode them with
``encode_client_event``), except ``audio_append_text`` (from ``_encode_common``), the
pre-encoded upload hot path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._client_events import (
    ClientEvent,
    ConversationItemCreate,
    ConversationItemDelete,
    ConversationItemTruncate,
    SessionCreate,
    SessionUpdate,
)
from ._control_builders import tool_output_event
from ._encode_common import client_payload, require_text
from ._encode_v1 import v1_handoff_output, v1_session_start, v1_session_type, v1_text_item
from ._encode_v2 import (
    v2_handoff_output,
    v2_session_type,
    v2_text_item,
)
from ._enums import OutputModality, ProtocolVersion, SessionMode, coerce_version, validate_voice
from ._errors import LocalProtocolError
from ._handoff import STEERING_ACK_TEXT
from ._server_parser import DEFAULT_HANDOFF_TOOL_NAME, DEFAULT_SILENCE_TOOL_NAME
from ._session import (
    AudioConfig,
    AudioFormat,
    AudioInputConfig,
    InputTranscription,
    Tool,
    WireSession,
)
from ._session_builder import audio_format_object, session_update_event
from ._session_config import DEFAULT_TRANSCRIPTION_MODEL, SessionConfig

__all__ = [
    "call_session_payload",
    "handoff_output_events",
    "noop_reply_event",
    "prompt_update_event",
    "session_start_event",
    "steering_ack_event",
    "text_item_event",
    "truncate_event",
]


def session_start_event(
    version: ProtocolVersion | str,
    *,
    mode: SessionMode | str = SessionMode.CONVERSATIONAL,
    instructions: str | None = None,
    conversation_id: str | None = None,
    voice: str | None = None,
    output_modality: OutputModality | str = OutputModality.AUDIO,
    handoff_tool_name: str | None = DEFAULT_HANDOFF_TOOL_NAME,
    silence_tool_name: str | None = DEFAULT_SILENCE_TOOL_NAME,
    transcription_model: str = DEFAULT_TRANSCRIPTION_MODEL,
    session: SessionConfig | None = None,
    tools: Iterable[Tool] = (),
    audio_format: str | AudioFormat = "pcm16",
) -> SessionCreate | SessionUpdate:
    """The first event a client sends: v1 ``session.create``, v2 ``session.update``.

    On v2 this is ``session_update_event``: ``session`` is the host's ``SessionConfig``; when
    it is ``None``, ``voice``, ``output_modality`` and ``transcription_model`` build one (they
    are ignored when ``session`` is given). v1 carries only the instructions, the
    ``conversation_id`` and a v1 voice: ``session``, ``tools`` or a non-PCM ``audio_format``
    there raise.

    Raises:
        LocalProtocolError: unknown voice for the version, text modality on v1, an empty tool
            name, an invalid tool, or an unknown mode/modality/format string.
    """
    v = coerce_version(version)
    m = _coerce(SessionMode, mode, "session mode")
    modality = _coerce(OutputModality, output_modality, "output modality")
    if v is ProtocolVersion.V1:
        if session is not None or tuple(tools) or audio_format != "pcm16":
            raise LocalProtocolError(
                "the v1 dialect carries no session configuration, tools or audio format"
            )
        return v1_session_start(
            mode=m,
            instructions=instructions,
            conversation_id=conversation_id,
            voice=voice,
            output_modality=modality,
        )
    if session is None and m is SessionMode.TRANSCRIPTION and not tuple(tools):
        # codex's transcription handshake: the format and the model, server defaults for
        # the rest (no turn detection or noise reduction sent).
        transcription = InputTranscription(model=transcription_model)
        audio_in = AudioInputConfig(
            format=audio_format_object(audio_format), transcription=transcription
        )
        return SessionUpdate(
            session=WireSession(type="transcription", audio=AudioConfig(input=audio_in))
        )
    if session is None:
        session = SessionConfig(
            output_modalities=(modality.value,),
            voice=validate_voice(v, voice),
            transcription=InputTranscription(model=transcription_model),
        )
    return session_update_event(
        session,
        mode=m,
        instructions=None if m is SessionMode.TRANSCRIPTION else instructions,
        tools=tools,
        handoff_tool_name=handoff_tool_name,
        silence_tool_name=silence_tool_name,
        audio_format=audio_format,
    )


def call_session_payload(event: SessionCreate | SessionUpdate, model: str | None) -> dict[str, Any]:
    """The ``session`` JSON that travels with a WebRTC call: the handshake session plus the
    model (codex-realtime.md §4.8), so inference can start as soon as media flows."""
    payload: dict[str, Any] = client_payload(event)["session"]
    if model is not None:
        payload["model"] = model
    return payload


def prompt_update_event(
    version: ProtocolVersion | str,
    instructions: str,
    *,
    mode: SessionMode | str = SessionMode.CONVERSATIONAL,
) -> SessionUpdate:
    """``session.update`` that changes only the instructions (both dialects)."""
    v = coerce_version(version)
    m = _coerce(SessionMode, mode, "session mode")
    if m is SessionMode.TRANSCRIPTION:
        raise LocalProtocolError("transcription sessions have no instructions")
    kind = v1_session_type(m) if v is ProtocolVersion.V1 else v2_session_type(m)
    return SessionUpdate(session=WireSession(type=kind, instructions=instructions))


def text_item_event(
    version: ProtocolVersion | str, text: str, *, user_prefix: bool = False
) -> ConversationItemCreate:
    """A user text message item."""
    if coerce_version(version) is ProtocolVersion.V1:
        return v1_text_item(text)
    return v2_text_item(text, user_prefix=user_prefix)


def handoff_output_events(
    version: ProtocolVersion | str, handoff_id: str, text: str, *, final: bool
) -> list[ClientEvent]:
    """The reply to a handoff: v1 ``conversation.handoff.append`` (final replies prefixed),
    v2 a ``[BACKEND]`` progress message or the final ``function_call_output``. On v2 the
    caller follows with ``response.create`` through its single-active-response queue."""
    if coerce_version(version) is ProtocolVersion.V1:
        return v1_handoff_output(handoff_id, text, final=final)
    return v2_handoff_output(handoff_id, text, final=final)


def steering_ack_event(version: ProtocolVersion | str, call_id: str) -> ConversationItemCreate:
    """v2: the immediate reply to a second handoff while one is active."""
    _require_v2(version, "steering acknowledgements")
    return tool_output_event(call_id, STEERING_ACK_TEXT)


def noop_reply_event(version: ProtocolVersion | str, call_id: str) -> ConversationItemCreate:
    """v2: the empty reply to a ``remain_silent`` call (no ``response.create`` follows)."""
    _require_v2(version, "no-op tool replies")
    return tool_output_event(call_id, "")


def truncate_event(
    item_id: str, audio_end_ms: int
) -> ConversationItemTruncate | ConversationItemDelete:
    """Barge-in: cut ``item_id`` at what was heard; at 0 ms delete it instead, because the
    server rejects a zero-length truncate (livekit #6157)."""
    require_text(item_id, "item id")
    if audio_end_ms < 0:
        raise LocalProtocolError(f"audio_end_ms must be >= 0, got {audio_end_ms}")
    if audio_end_ms == 0:
        return ConversationItemDelete(item_id=item_id)
    return ConversationItemTruncate(item_id=item_id, audio_end_ms=audio_end_ms)


def _require_v2(version: ProtocolVersion | str, what: str) -> None:
    if coerce_version(version) is not ProtocolVersion.V2:
        raise LocalProtocolError(f"{what} exist only in the v2 dialect")


def _coerce(enum_cls: Any, value: Any, what: str) -> Any:
    try:
        return enum_cls(value)
    except ValueError:
        options = ", ".join(repr(m.value) for m in enum_cls)
        raise LocalProtocolError(f"unknown {what} {value!r}; expected one of {options}") from None
