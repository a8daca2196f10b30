"""Wire shapes the scripted model builds: the effective session object, usage, item text.

Pure helpers with no state. The effective session is kept as a wire dict (not a typed value)
because ``session.updated`` must echo the *full* effective config, including keys the client
set that duplex's typed ``SessionConfig`` does not model (``truncation``, ``tracing``, …).

Invariants:
- ``initial_session`` returns a v2 object that validates as the ``openai`` package's
  ``RealtimeSessionCreateRequest`` / ``RealtimeTranscriptionSessionCreateRequest`` and a v1
  object in the quicksilver shape of SPEC §2.
- ``deep_merge`` never mutates its inputs; dicts merge key by key, everything else (including
  an explicit ``None``, which is how a client clears ``turn_detection``) replaces. A dict whose
  ``type`` differs from the current one (``server_vad`` → ``semantic_vad``, ``audio/pcm`` →
  ``audio/pcmu``, ``near_field`` → ``far_field``) *replaces* the old object, and the new one
  gets the server's defaults for that type (``TYPED_DEFAULTS``), like the real server's echo.
"""

from __future__ import annotations

import copy
from typing import Any, Final

import attrs

from duplex.protocol import DEFAULT_VOICE, ProtocolVersion, SessionMode

__all__ = [
    "GA_RESPONSE_KEYS",
    "TYPED_DEFAULTS",
    "config_patch",
    "deep_merge",
    "initial_session",
    "item_text",
    "usage_for",
]

#: keys GA accepts in ``response.create.response`` (openai-realtime-protocol.md §4.5)
GA_RESPONSE_KEYS: Final = frozenset(
    {
        "output_modalities",
        "instructions",
        "audio",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "conversation",
        "metadata",
        "input",
        "prompt",
        "reasoning",
        "parallel_tool_calls",
    }
)

_PCM: Final = {"type": "audio/pcm", "rate": 24_000}

#: what the real server fills in when a typed nested object appears or changes type
TYPED_DEFAULTS: Final[dict[str, dict[str, Any]]] = {
    "server_vad": {
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    },
    "semantic_vad": {"eagerness": "auto", "create_response": True, "interrupt_response": True},
    "audio/pcm": {"rate": 24_000},
}


def initial_session(
    version: ProtocolVersion, mode: SessionMode, *, session_id: str, model: str
) -> dict[str, Any]:
    """The session object a new session starts with (what ``session.created`` carries)."""
    if version is ProtocolVersion.V1:
        session: dict[str, Any] = {
            "type": "transcription" if mode is SessionMode.TRANSCRIPTION else "quicksilver",
            "object": "realtime.session",
            "id": session_id,
            "model": model,
            "audio": {"input": {"format": dict(_PCM)}},
        }
        if mode is SessionMode.CONVERSATIONAL:
            session["instructions"] = ""
            session["audio"]["output"] = {"voice": DEFAULT_VOICE[version]}
        return session
    if mode is SessionMode.TRANSCRIPTION:
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": session_id,
            "expires_at": 0,
            "include": None,
            "audio": {
                "input": {
                    "format": dict(_PCM),
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 200,
                    },
                }
            },
        }
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": 0,
        "include": None,
        "audio": {
            "input": {
                "format": dict(_PCM),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 200,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": dict(_PCM), "voice": DEFAULT_VOICE[version], "speed": 1.0},
        },
    }


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``patch`` (recursively for dict values), as a new object."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            same_type = "type" not in value or value.get("type") == current.get("type")
            out[key] = deep_merge(current, value) if same_type else _typed_new(value)
        elif isinstance(value, dict):
            out[key] = _typed_new(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _typed_new(value: dict[str, Any]) -> dict[str, Any]:
    """A nested object that replaces whatever was there: the type's defaults under it."""
    kind = value.get("type")
    defaults = TYPED_DEFAULTS.get(kind, {}) if isinstance(kind, str) else {}
    return deep_merge({"type": kind, **defaults}, value) if defaults else copy.deepcopy(value)


def config_patch(value: Any) -> dict[str, Any]:
    """Wire dict of an attrs value (a ``SessionConfig`` or item): ``None`` fields dropped."""

    def keep(attribute: attrs.Attribute[Any], field_value: Any) -> bool:
        return field_value is not None and attribute.name != "unknown_fields"

    raw: dict[str, Any] = _lists(attrs.asdict(value, filter=keep))
    return raw


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value


def item_text(item: dict[str, Any]) -> str | None:
    """The text a user/system message carries (typed text or an audio transcript)."""
    if item.get("type") != "message":
        return None
    pieces: list[str] = []
    for part in item.get("content") or []:
        if not isinstance(part, dict):
            continue
        text = part.get("text") if part.get("type") in ("input_text", "text") else None
        if text is None and part.get("type") == "input_audio":
            text = part.get("transcript")
        if isinstance(text, str):
            pieces.append(text)
    return " ".join(pieces) if pieces else None


def usage_for(text: str, audio_bytes: int) -> dict[str, Any]:
    """Deterministic token usage for a response: ~4 chars per text token, 50 ms per audio one."""
    text_tokens = len(text) // 4 + 1
    audio_tokens = audio_bytes // 2400
    input_tokens = 100 + text_tokens
    output_tokens = text_tokens + audio_tokens
    return {
        "total_tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_token_details": {
            "text_tokens": input_tokens,
            "audio_tokens": 0,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
    }
