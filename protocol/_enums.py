"""Finite vocabularies of the realtime protocol: dialects, modes, voices, error classes.

Invariants:
- ``ProtocolVersion`` is the only switch between the two wire dialects; nothing outside
  ``protocol`` compares against it except to pass it back in (what a dialect can do:
  ``_dialect.dialect(version)``).
- The voice lists are the ones each dialect accepts (codex-realtime.md §2); the first-named
  default per dialect is ``DEFAULT_VOICE``.
"""

from __future__ import annotations

import enum
from typing import Final

from ._errors import LocalProtocolError

__all__ = [
    "DEFAULT_VOICE",
    "FATAL_ERROR_CODES",
    "VOICES",
    "OutputModality",
    "ProtocolVersion",
    "SessionMode",
    "coerce_version",
    "is_fatal_error_code",
    "validate_voice",
]


class ProtocolVersion(enum.StrEnum):
    """Wire dialect of a session."""

    #: the "quicksilver" backend dialect (``intent=quicksilver``, ``session.create`` handshake)
    V1 = "v1"
    #: the public Realtime GA shape (``session.update`` handshake, function-tool handoffs)
    V2 = "v2"


class SessionMode(enum.StrEnum):
    """What the session is for."""

    #: speech-to-speech conversation with a model
    CONVERSATIONAL = "conversational"
    #: input transcription only: no responses, no output audio
    TRANSCRIPTION = "transcription"


class OutputModality(enum.StrEnum):
    """What the model answers with. GA accepts exactly one of these per session."""

    AUDIO = "audio"
    TEXT = "text"


VOICES: Final[dict[ProtocolVersion, tuple[str, ...]]] = {
    ProtocolVersion.V1: (
        "juniper", "maple", "spruce", "ember", "vale", "breeze", "arbor", "sol", "cove",
    ),
    ProtocolVersion.V2: (
        "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar",
    ),
}  # fmt: skip

DEFAULT_VOICE: Final[dict[ProtocolVersion, str]] = {
    ProtocolVersion.V1: "cove",
    ProtocolVersion.V2: "marin",
}

# Server error codes after which the session cannot continue (SPEC §3). Everything else —
# in particular the single-active-response races — is recoverable.
FATAL_ERROR_CODES: Final[frozenset[str]] = frozenset(
    {
        "session_expired",
        "beta_api_shape_disabled",
        "invalid_api_key",
        "insufficient_quota",
        "account_deactivated",
        "billing_hard_limit_reached",
    }
)


def is_fatal_error_code(code: str | None) -> bool:
    """Whether a server ``error`` with this ``code`` ends the session."""
    return code is not None and code in FATAL_ERROR_CODES


def coerce_version(version: ProtocolVersion | str) -> ProtocolVersion:
    """Accept ``ProtocolVersion`` or its string value; raise ``LocalProtocolError`` otherwise."""
    if isinstance(version, ProtocolVersion):
        return version
    try:
        return ProtocolVersion(version)
    except ValueError:
        raise LocalProtocolError(
            f"unknown protocol version {version!r}; expected 'v1' or 'v2'"
        ) from None


def validate_voice(version: ProtocolVersion, voice: str | None) -> str:
    """Return ``voice`` (or the dialect default) after checking the dialect supports it."""
    if voice is None:
        return DEFAULT_VOICE[version]
    supported = VOICES[version]
    if voice not in supported:
        raise LocalProtocolError(
            f"realtime voice `{voice}` is not supported for {version.value}; "
            f"supported voices: {', '.join(supported)}"
        )
    return voice
