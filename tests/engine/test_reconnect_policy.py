"""Which endings a conversation resumes from, and the backoff schedule."""

from __future__ import annotations

import pytest

from duplex.engine._reconnect import ReconnectPolicy


@pytest.mark.parametrize(
    ("close_code", "error_code", "expected"),
    [
        (None, None, True),  # network error / dead peer: no close frame
        (1006, None, True),
        (1011, None, True),
        (1001, None, True),
        (1001, "session_expired", True),
        (1000, None, False),
        (4000, None, False),
        (None, "invalid_api_key", False),
        (None, "insufficient_quota", False),
    ],
)
def test_resumable_endings(close_code: int | None, error_code: str | None, expected: bool) -> None:
    policy = ReconnectPolicy()
    assert policy.resumable(requested=False, close_code=close_code, error_code=error_code) is (
        expected
    )


def test_requested_close_and_disabled_policy_never_resume() -> None:
    assert not ReconnectPolicy().resumable(requested=True, close_code=1006, error_code=None)
    assert not ReconnectPolicy.disabled().resumable(
        requested=False, close_code=1006, error_code=None
    )


def test_backoff_starts_at_once_grows_caps_and_gives_up() -> None:
    policy = ReconnectPolicy(max_attempts=6, initial_backoff=0.5, max_backoff=2.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 8)] == [0.0, 0.5, 1.0, 2.0, 2.0, 2.0, None]


def test_jitter_scales_with_the_random_fraction() -> None:
    policy = ReconnectPolicy(initial_backoff=1.0, jitter=0.5)
    assert policy.delay(2, 0.0) == 1.0
    assert policy.delay(2, 0.5) == 1.25


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"initial_backoff": -1.0}, {"max_session_s": 0.0}, {"replay_items": -1}],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="ReconnectPolicy"):
        ReconnectPolicy(**kwargs)  # type: ignore[arg-type]


def test_stable_after_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="stable_after_s"):
        ReconnectPolicy(stable_after_s=-1)
