"""The v1 ("quicksilver") dialect, parsing side: server events → vocabulary (client role) and
the client events a v1 server accepts (server role).

Names follow codex-realtime.md §5.3 plus the beta aliases of SPEC §2. v1 audio deltas must
state their shape (``sample_rate`` and ``channels``/``num_channels`` are required), but the
beta ``response.audio.delta`` alias gets the wire defaults (24 kHz mono) because beta servers
never sent a shape. v1 has no tools, so ``conversation.item.done`` is only ever
``ConversationItemDone``.
"""

from __future__ import annotations

from typing import Any, Final

from ._audio import WIRE_CHANNELS, WIRE_SAMPLE_RATE, AudioFrame, b64decode_pcm
from ._events import (
    AudioOut,
    HandoffRequested,
    InputTranscriptDelta,
    OutputTranscriptDelta,
    ServerEvent,
)
from ._parse_client import (
    COMMON_CLIENT_HANDLERS,
    ClientHandler,
    handoff_append,
    session_handler,
)
from ._parse_common import (
    COMMON_SERVER_HANDLERS,
    FieldError,
    Handler,
    input_done,
    item_done,
    opt_int,
    opt_str,
    output_done_text,
    output_done_transcript,
    req_str,
)

__all__ = ["V1_CLIENT_HANDLERS", "V1_SERVER_HANDLERS", "audio_frame"]


def audio_frame(obj: dict[str, Any], sample_rate: int, channels: int) -> AudioFrame:
    """Decode the base64 ``delta`` of an audio event into a frame of whole samples."""
    delta = obj.get("delta")
    if type(delta) is not str:
        delta = obj.get("data")  # the v1 backend's older spelling
        if type(delta) is not str:
            raise FieldError("missing required field 'delta'")
    try:
        pcm = b64decode_pcm(delta)
    except ValueError:
        raise FieldError("'delta' is not valid base64") from None
    if sample_rate <= 0 or channels <= 0:
        raise FieldError(f"invalid audio shape: {sample_rate} Hz, {channels} channels")
    if len(pcm) % (2 * channels):
        raise FieldError(f"audio delta of {len(pcm)} bytes is not whole PCM16 frames")
    return AudioFrame(pcm, sample_rate, channels)


def _audio_v1(obj: dict[str, Any]) -> ServerEvent:
    sample_rate = opt_int(obj, "sample_rate")
    if sample_rate is None:
        raise FieldError("missing required field 'sample_rate'")
    channels = opt_int(obj, "channels")
    if channels is None:
        channels = opt_int(obj, "num_channels")
        if channels is None:
            raise FieldError("missing required field 'channels'")
    return AudioOut(
        audio_frame(obj, sample_rate, channels),
        opt_str(obj, "item_id"),
        opt_str(obj, "response_id"),
    )


def _audio_beta(obj: dict[str, Any]) -> ServerEvent:
    return AudioOut(
        audio_frame(obj, WIRE_SAMPLE_RATE, WIRE_CHANNELS),
        opt_str(obj, "item_id"),
        opt_str(obj, "response_id"),
    )


def _input_delta(obj: dict[str, Any]) -> ServerEvent:
    return InputTranscriptDelta(req_str(obj, "delta"), opt_str(obj, "item_id"))


def _output_delta(obj: dict[str, Any]) -> ServerEvent:
    return OutputTranscriptDelta(
        req_str(obj, "delta"), opt_str(obj, "item_id"), opt_str(obj, "response_id")
    )


def _handoff(obj: dict[str, Any]) -> ServerEvent:
    return HandoffRequested(
        req_str(obj, "handoff_id"), req_str(obj, "item_id"), req_str(obj, "input_transcript")
    )


V1_SERVER_HANDLERS: Final[dict[str, Handler]] = {
    **COMMON_SERVER_HANDLERS,
    "conversation.output_audio.delta": _audio_v1,
    "response.audio.delta": _audio_beta,
    "conversation.input_transcript.delta": _input_delta,
    "conversation.item.input_audio_transcription.delta": _input_delta,
    "conversation.item.input_audio_transcription.completed": input_done,
    "conversation.output_transcript.delta": _output_delta,
    "response.output_text.delta": _output_delta,
    "response.output_audio_transcript.delta": _output_delta,
    "response.audio_transcript.delta": _output_delta,
    "response.text.delta": _output_delta,
    "response.output_audio_transcript.done": output_done_transcript,
    "response.audio_transcript.done": output_done_transcript,
    "response.text.done": output_done_text,
    "conversation.item.done": item_done,
    "conversation.handoff.requested": _handoff,
}

# A v1 server accepts session.create (the handshake) and the v1-only handoff reply.
V1_CLIENT_HANDLERS: Final[dict[str, ClientHandler]] = {
    **COMMON_CLIENT_HANDLERS,
    "session.create": session_handler(create=True, ga=False),
    "session.update": session_handler(create=False, ga=False),
    "conversation.handoff.append": handoff_append,
}
