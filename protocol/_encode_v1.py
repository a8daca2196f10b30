"""The v1 ("quicksilver") dialect, building side: the ``session.create`` handshake, prompt
updates, text items, handoff replies, and the server-role payloads with v1 names.

v1 sessions carry no tools, no turn detection and no output format; transcription mode
switches the session type (and, in the URL, the intent). Text output does not exist on v1.
Final handoff replies carry the ``"Agent Final Message"`` prefix so the backend can tell the
last message of a delegated turn from progress.
"""

from __future__ import annotations

from typing import Any, Final

from ._audio import b64encode_pcm
from ._client_events import ClientEvent, ConversationItemCreate, HandoffAppend, SessionCreate
from ._encode_common import (
    COMMON_SERVER_PAYLOADS,
    ServerPayload,
    drop_none,
    require_text,
    transcription_usage,
)
from ._enums import OutputModality, ProtocolVersion, SessionMode, validate_voice
from ._errors import LocalProtocolError
from ._events import (
    AudioOut,
    ConversationItemDone,
    HandoffRequested,
    InputTranscriptDelta,
    InputTranscriptDone,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
)
from ._handoff import AGENT_FINAL_MESSAGE_PREFIX
from ._items import ContentPart, ConversationItem
from ._session import (
    PCM_24K,
    AudioConfig,
    AudioInputConfig,
    AudioOutputConfig,
    WireSession,
)

__all__ = [
    "V1_SERVER_PAYLOADS",
    "V1_SESSION_TYPE",
    "v1_handoff_output",
    "v1_session_start",
    "v1_session_type",
    "v1_text_item",
]

V1_SESSION_TYPE: Final = "quicksilver"


def v1_session_type(mode: SessionMode) -> str:
    return "transcription" if mode is SessionMode.TRANSCRIPTION else V1_SESSION_TYPE


def v1_session_start(
    *,
    mode: SessionMode,
    instructions: str | None,
    conversation_id: str | None,
    voice: str | None,
    output_modality: OutputModality,
) -> SessionCreate:
    """The ``session.create`` a v1 client sends first (SPEC §2)."""
    if output_modality is OutputModality.TEXT:
        raise LocalProtocolError("text realtime output modality requires realtime v2")
    audio_in = AudioInputConfig(format=PCM_24K)
    if mode is SessionMode.TRANSCRIPTION:
        session = WireSession(
            type="transcription",
            conversation_id=conversation_id,
            audio=AudioConfig(input=audio_in),
        )
    else:
        session = WireSession(
            type=V1_SESSION_TYPE,
            instructions=instructions if instructions is not None else "",
            conversation_id=conversation_id,
            audio=AudioConfig(
                input=audio_in,
                output=AudioOutputConfig(voice=validate_voice(ProtocolVersion.V1, voice)),
            ),
        )
    return SessionCreate(session=session)


def v1_text_item(text: str) -> ConversationItemCreate:
    """A user text message; v1 sends text unprefixed."""
    return ConversationItemCreate(
        item=ConversationItem(
            type="message", role="user", content=(ContentPart(type="input_text", text=text),)
        )
    )


def v1_handoff_output(handoff_id: str, text: str, *, final: bool) -> list[ClientEvent]:
    """``conversation.handoff.append``; final replies get the Agent-Final-Message prefix."""
    require_text(handoff_id, "handoff id")
    output = AGENT_FINAL_MESSAGE_PREFIX + text if final else text
    return [HandoffAppend(handoff_id=handoff_id, output_text=output)]


def _session_created(e: SessionCreated) -> dict[str, Any]:
    return {"type": e.TYPE, "session": drop_none({"id": e.session_id, "type": V1_SESSION_TYPE})}


def _session_updated(e: SessionUpdated) -> dict[str, Any]:
    session = drop_none(
        {"id": e.session_id, "type": V1_SESSION_TYPE, "instructions": e.instructions}
    )
    return {"type": e.TYPE, "session": session}


def _audio(e: AudioOut) -> dict[str, Any]:
    frame = e.frame
    if frame.encoding != "pcm16":
        raise LocalProtocolError("the v1 dialect carries only PCM16 audio")
    return drop_none(
        {
            "type": "conversation.output_audio.delta",
            "delta": b64encode_pcm(frame.pcm),
            "sample_rate": frame.sample_rate,
            "channels": frame.channels,
            "samples_per_channel": frame.samples_per_channel,
            "item_id": e.item_id,
            "response_id": e.response_id,
        }
    )


def _input_delta(e: InputTranscriptDelta) -> dict[str, Any]:
    return drop_none(
        {"type": "conversation.input_transcript.delta", "delta": e.delta, "item_id": e.item_id}
    )


def _input_done(e: InputTranscriptDone) -> dict[str, Any]:
    return drop_none(
        {
            "type": e.TYPE,
            "transcript": e.text,
            "item_id": e.item_id,
            "usage": transcription_usage(e),
        }
    )


def _output_delta(e: OutputTranscriptDelta) -> dict[str, Any]:
    return drop_none(
        {
            "type": "conversation.output_transcript.delta",
            "delta": e.delta,
            "item_id": e.item_id,
            "response_id": e.response_id,
        }
    )


def _output_done(e: OutputTranscriptDone) -> dict[str, Any]:
    return drop_none(
        {"type": e.TYPE, "transcript": e.text, "item_id": e.item_id, "response_id": e.response_id}
    )


def _item_done(e: ConversationItemDone) -> dict[str, Any]:
    return {"type": e.TYPE, "item": {"id": e.item_id}}


def _handoff(e: HandoffRequested) -> dict[str, Any]:
    return {
        "type": e.TYPE,
        "handoff_id": e.handoff_id,
        "item_id": e.item_id,
        "input_transcript": e.input_transcript,
    }


V1_SERVER_PAYLOADS: Final[dict[type[ServerEvent], ServerPayload]] = {
    **COMMON_SERVER_PAYLOADS,
    SessionCreated: _session_created,
    SessionUpdated: _session_updated,
    AudioOut: _audio,
    InputTranscriptDelta: _input_delta,
    InputTranscriptDone: _input_done,
    OutputTranscriptDelta: _output_delta,
    OutputTranscriptDone: _output_done,
    ConversationItemDone: _item_done,
    HandoffRequested: _handoff,
}
