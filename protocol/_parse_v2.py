"""The v2 (Realtime GA) dialect, parsing side: server events → vocabulary (client role) and
the client events a GA server accepts (server role).

GA names plus the beta aliases a transitional server may still emit (openai-python #2698,
litellm #29662): ``response.audio.*``, ``response.audio_transcript.*``, ``response.text.*``,
``conversation.item.created``. Audio deltas default to 24 kHz mono when they carry no shape.

Every type of the official ``RealtimeServerEvent`` union is typed: the core vocabulary here and
in ``_parse_common``, the rest through ``_ga_wire``.

The function-call path: a ``function_call`` item in ``conversation.item.done`` named after the
session's handoff tool becomes ``HandoffRequested`` — the same event v1's
``conversation.handoff.requested`` produces — one named after the silence tool becomes
``NoopRequested``, and any other becomes ``ToolCallRequested``. An ``mcp_approval_request``
item there becomes ``McpApprovalRequested`` (the MCP server's call the host must approve).
Function calls inside ``response.done`` / ``response.output_item.done`` are not calls again
(the item event already carried them; acting on both would answer one call twice).
"""

from __future__ import annotations

from typing import Any, Final

import pybase64

from ._audio import WIRE_CHANNELS, WIRE_SAMPLE_RATE, AudioFrame, encoding_of
from ._events import (
    AudioOut,
    ConversationItemDone,
    HandoffRequested,
    InputTranscriptDelta,
    McpApprovalRequested,
    NoopRequested,
    OutputTranscriptDelta,
    ServerEvent,
    ToolCallRequested,
)
from ._ga_wire import GA_SERVER_HANDLERS
from ._handoff import extract_handoff_text
from ._parse_client import COMMON_CLIENT_HANDLERS, ClientHandler, session_handler
from ._parse_common import (
    COMMON_SERVER_HANDLERS,
    FieldError,
    Handler,
    input_done,
    opt_str,
    output_done_text,
    output_done_transcript,
    req_dict,
)

__all__ = [
    "V2_CLIENT_HANDLERS",
    "V2_SERVER_HANDLERS",
    "g711_audio_handler",
    "item_done_handler",
    "v2_server_handlers",
]


def _audio(obj: dict[str, Any]) -> ServerEvent:
    # The hot path (half the events of a spoken turn): every field is read once, the checks
    # are `type(...) is` comparisons, and the only real work is the one base64 decode.
    delta = obj.get("delta")
    if type(delta) is not str:
        # v2 does not accept v1's "data" spelling.
        raise FieldError("missing required field 'delta'")
    sample_rate = obj.get("sample_rate")
    if sample_rate is None:  # absent or null: the GA wire format
        sample_rate = WIRE_SAMPLE_RATE
    channels = obj.get("channels")
    if channels is None:
        channels = obj.get("num_channels")
        if channels is None:
            channels = WIRE_CHANNELS
    if type(sample_rate) is not int or type(channels) is not int:
        raise FieldError("'sample_rate' and 'channels' must be integers")
    if sample_rate <= 0 or channels <= 0:
        raise FieldError(f"invalid audio shape: {sample_rate} Hz, {channels} channels")
    try:
        pcm = pybase64.b64decode(delta, validate=True)
    except ValueError:
        raise FieldError("'delta' is not valid base64") from None
    if len(pcm) % (2 * channels):
        raise FieldError(f"audio delta of {len(pcm)} bytes is not whole PCM16 frames")
    item_id = obj.get("item_id")
    response_id = obj.get("response_id")
    return AudioOut(
        AudioFrame(pcm, sample_rate, channels),
        item_id if type(item_id) is str else None,
        response_id if type(response_id) is str else None,
    )


def _output_delta(obj: dict[str, Any]) -> ServerEvent:
    delta = obj.get("delta")
    if type(delta) is not str:
        raise FieldError("missing required field 'delta'")
    item_id = obj.get("item_id")
    response_id = obj.get("response_id")
    return OutputTranscriptDelta(
        delta,
        item_id if type(item_id) is str else None,
        response_id if type(response_id) is str else None,
    )


def _input_delta(obj: dict[str, Any]) -> ServerEvent:
    # GA marks "delta" optional (whisper may put the whole turn in one event); absent = "".
    delta = obj.get("delta", "")
    if type(delta) is not str:
        raise FieldError("field 'delta' must be a string")
    return InputTranscriptDelta(delta, opt_str(obj, "item_id"))


def item_done_handler(handoff_tool: str | None, silence_tool: str | None) -> Handler:
    """The ``conversation.item.done`` handler of a session whose handoff and silence tools have
    these names (``None``: the session has no such tool). A ``function_call`` item of any other
    name is a host tool call."""

    def item_done(obj: dict[str, Any]) -> ServerEvent:
        raw = req_dict(obj, "item")
        item_id = opt_str(raw, "id")
        if raw.get("type") == "function_call":
            name = raw.get("name")
            call_id = opt_str(raw, "call_id")
            call = call_id or item_id
            owner = item_id or call_id
            # The Rust original's fallbacks: either id stands in for the other.
            if type(name) is str and call is not None and owner is not None:
                arguments = raw.get("arguments")
                if type(arguments) is not str:
                    arguments = ""
                if name == handoff_tool:
                    return HandoffRequested(call, owner, extract_handoff_text(arguments))
                if name == silence_tool:
                    return NoopRequested(call, owner)
                # GA names no response here; a server that does (duplex's own encoder) puts it
                # beside the item.
                return ToolCallRequested(call, name, arguments, owner, opt_str(obj, "response_id"))
        if item_id is None:
            raise FieldError("missing required field 'item.id'")
        if raw.get("type") == "mcp_approval_request":
            label, name = raw.get("server_label"), raw.get("name")
            if type(label) is str and type(name) is str:
                arguments = raw.get("arguments")
                return McpApprovalRequested(
                    item_id, label, name, arguments if type(arguments) is str else ""
                )
        return ConversationItemDone(item_id)

    return item_done


def g711_audio_handler(encoding: str) -> Handler:
    """Audio deltas of a G.711 session (``"pcmu"`` / ``"pcma"``): the bytes pass through
    untranscoded, 8 kHz mono unless the event says otherwise."""
    _, default_rate = encoding_of(encoding)

    def audio(obj: dict[str, Any]) -> ServerEvent:
        delta = obj.get("delta")
        if type(delta) is not str:
            raise FieldError("missing required field 'delta'")
        sample_rate = obj.get("sample_rate")
        if sample_rate is None:
            sample_rate = default_rate
        channels = obj.get("channels")
        if channels is None:
            channels = WIRE_CHANNELS
        if type(sample_rate) is not int or type(channels) is not int:
            raise FieldError("'sample_rate' and 'channels' must be integers")
        if sample_rate <= 0 or channels <= 0:
            raise FieldError(f"invalid audio shape: {sample_rate} Hz, {channels} channels")
        try:
            data = pybase64.b64decode(delta, validate=True)
        except ValueError:
            raise FieldError("'delta' is not valid base64") from None
        if len(data) % channels:
            raise FieldError(f"audio delta of {len(data)} bytes is not whole G.711 frames")
        return AudioOut(
            AudioFrame(data, sample_rate, channels, encoding),
            opt_str(obj, "item_id"),
            opt_str(obj, "response_id"),
        )

    return audio


def v2_server_handlers(
    handoff_tool: str | None, silence_tool: str | None, audio_format: str = "pcm16"
) -> dict[str, Handler]:
    """The v2 server-event table of a session with these tool names and audio format (built
    once per configuration by ``ServerEventParser``; only ``conversation.item.done`` and, for
    G.711, the audio deltas depend on them)."""
    table = {
        **V2_SERVER_HANDLERS,
        "conversation.item.done": item_done_handler(handoff_tool, silence_tool),
    }
    if audio_format != "pcm16":
        audio = g711_audio_handler(audio_format)
        table["response.output_audio.delta"] = table["response.audio.delta"] = audio
    return table


V2_SERVER_HANDLERS: Final[dict[str, Handler]] = {
    **COMMON_SERVER_HANDLERS,
    **GA_SERVER_HANDLERS,
    "response.output_audio.delta": _audio,
    "response.audio.delta": _audio,
    "conversation.item.input_audio_transcription.delta": _input_delta,
    "conversation.item.input_audio_transcription.completed": input_done,
    "response.output_text.delta": _output_delta,
    "response.output_audio_transcript.delta": _output_delta,
    "response.audio_transcript.delta": _output_delta,
    "response.text.delta": _output_delta,
    "response.output_text.done": output_done_text,
    "response.text.done": output_done_text,
    "response.output_audio_transcript.done": output_done_transcript,
    "response.audio_transcript.done": output_done_transcript,
    "conversation.item.done": item_done_handler(None, None),
}

# GA has no client session.create and no conversation.handoff.append: a GA server answers
# both with an invalid_value error, so the server-role table leaves them unmapped.
V2_CLIENT_HANDLERS: Final[dict[str, ClientHandler]] = {
    **COMMON_CLIENT_HANDLERS,
    "session.update": session_handler(create=False, ga=True),
}
