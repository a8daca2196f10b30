"""``ReconnectPolicy``: when a dropped conversation is resumed, how often, and how fast.

Synchronous and clock-free: the policy classifies an ending and computes the delay before
attempt *n*; the engine's trio side sleeps and connects. Randomness (jitter) is a parameter,
so the schedule is testable.

Which endings are resumed (SPEC §3.5):
- unexpected drops: a network error, a reset, a dead peer (liveness timeout), close codes
  1001 (going away), 1006 (abnormal) and 1011 (server error);
- the server's session cap: ``session_expired`` (the engine rotates to a new session).

Never resumed: a close the host asked for, a graceful close 1000 the server chose (or a WebRTC
call the peer hung up in order: no close code, ``_resume.classify``), close codes
≥ 4000 (policy violations), and fatal errors that a new connection would only repeat
(``invalid_api_key``, ``insufficient_quota``, ``beta_api_shape_disabled``).
"""

from __future__ import annotations

from typing import Final, final

import attrs

__all__ = [
    "DEFAULT_REANCHOR_NOTE",
    "RESUMABLE_CLOSE_CODES",
    "UNRECOVERABLE_ERROR_CODES",
    "ReconnectPolicy",
    "TransportCounts",
]

RESUMABLE_CLOSE_CODES: Final = frozenset({1001, 1006, 1011, 1012, 1013})
UNRECOVERABLE_ERROR_CODES: Final = frozenset(
    {"invalid_api_key", "insufficient_quota", "beta_api_shape_disabled"}
)

# Appended after a replayed history. A replayed conversation arrives as a block of items the
# model did not produce in this session; without a note it may treat the next turn as the
# start of a new conversation (greet again, re-introduce itself). The note says it is not.
DEFAULT_REANCHOR_NOTE: Final = (
    "The items above are this conversation's history, restored after a reconnection. "
    "Continue the conversation from where it left off; do not greet the user again."
)


def _non_negative(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"ReconnectPolicy.{attribute.name} must be ≥ 0, got {value!r}")


@final
@attrs.frozen(kw_only=True)
class ReconnectPolicy:
    """How the engine resumes a conversation after an unexpected drop.

    Attributes:
        enabled: resume at all (``ReconnectPolicy.disabled()`` turns it off).
        max_attempts: connection attempts per drop before giving up with
            ``ConversationClosed("error")``.
        initial_backoff / max_backoff / multiplier: attempt 1 starts at once (a blip costs
            one round trip); attempt *n* ≥ 2 waits
            ``min(max_backoff, initial_backoff * multiplier ** (n - 2))``.
        jitter: a fraction of the delay added at random (spreads reconnecting clients).
        replay_items: at most this many history items are replayed into the new session.
        reanchor_note: a system note after the replayed items (``None``: none).
        max_session_s: rotate to a new session after this long (the server caps sessions at
            60 minutes); ``None`` disables rotation by age.
        audio_buffer_ms: host audio kept while reconnecting and sent once resumed; older
            audio is dropped and counted.
        stable_after_s: a connection that lasted this long resets the attempt count; one that
            drops sooner (a server that accepts and fails at once) uses up an attempt, so a
            flapping server ends the conversation instead of looping forever.
    """

    enabled: bool = True
    max_attempts: int = attrs.field(default=5)
    initial_backoff: float = attrs.field(default=0.25, validator=_non_negative)
    max_backoff: float = attrs.field(default=5.0, validator=_non_negative)
    multiplier: float = attrs.field(default=2.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.1, validator=_non_negative)
    replay_items: int = attrs.field(default=100)
    reanchor_note: str | None = DEFAULT_REANCHOR_NOTE
    max_session_s: float | None = 55 * 60.0
    audio_buffer_ms: int = attrs.field(default=2000)
    stable_after_s: float = attrs.field(default=10.0, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"ReconnectPolicy.max_attempts must be ≥ 1, got {self.max_attempts}")
        if self.replay_items < 0 or self.audio_buffer_ms < 0:
            raise ValueError("ReconnectPolicy.replay_items and audio_buffer_ms must be ≥ 0")
        if self.max_session_s is not None and self.max_session_s <= 0:
            raise ValueError("ReconnectPolicy.max_session_s must be positive or None")

    @classmethod
    def disabled(cls) -> ReconnectPolicy:
        return cls(enabled=False, max_session_s=None)

    def resumable(self, *, requested: bool, close_code: int | None, error_code: str | None) -> bool:
        """Whether an ending should be resumed (see the module docstring)."""
        if not self.enabled or requested:
            return False
        if error_code == "session_expired":
            return True
        if error_code in UNRECOVERABLE_ERROR_CODES:
            return False
        if close_code is None:
            return True  # no close frame at all: a network error or a dead peer
        return close_code in RESUMABLE_CLOSE_CODES

    def delay(self, attempt: int, random_fraction: float = 0.0) -> float | None:
        """Seconds to wait before ``attempt`` (1-based), or ``None`` once attempts are spent.

        ``random_fraction`` in [0, 1) scales the jitter.
        """
        if attempt > self.max_attempts:
            return None
        if attempt <= 1:
            return 0.0
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 2))
        return base * (1.0 + self.jitter * random_fraction)


@final
@attrs.frozen
class TransportCounts:
    """The transport counters a conversation reports, summed over its connections: each
    reconnect starts a transport whose own counters restart at 0, and ``statistics()``
    must never go backwards."""

    bytes_in: int = 0
    bytes_out: int = 0
    binary_frames_dropped: int = 0
    audio_out_dropped: int = 0

    @classmethod
    def of(cls, stats: object) -> TransportCounts:
        """The counters of one transport's ``TransportStatistics`` (absent fields read 0)."""
        return cls(
            int(getattr(stats, "bytes_in", 0)),
            int(getattr(stats, "bytes_out", 0)),
            int(getattr(stats, "binary_frames_dropped", 0)),
            int(getattr(stats, "audio_out_dropped", 0)),
        )

    def __add__(self, other: TransportCounts) -> TransportCounts:
        return TransportCounts(
            self.bytes_in + other.bytes_in,
            self.bytes_out + other.bytes_out,
            self.binary_frames_dropped + other.binary_frames_dropped,
            self.audio_out_dropped + other.audio_out_dropped,
        )
