"""Exception translation and secret redaction at the transport boundary."""

from __future__ import annotations

import pytest
import trio

from duplex.transports import ConnectError, TransportClosed, TransportError
from duplex.transports._errors import map_exceptions, redact


def test_redact_hides_registered_secrets_and_key_shaped_tokens() -> None:
    text = "key sk-abcdef123456 and ek_zyx987654321 and Bearer tok.en-1234567 and s3cr3t"
    cleaned = redact(text, ["s3cr3t"])
    for secret in ("sk-abcdef123456", "ek_zyx987654321", "tok.en-1234567", "s3cr3t"):
        assert secret not in cleaned
    assert cleaned.startswith("key [redacted]")


def test_transport_errors_redact_their_message() -> None:
    assert "sk-" not in str(TransportClosed("closed with sk-live-0123456789"))
    error = ConnectError("HTTP 401: bad key sk-live-0123456789", status=401)
    assert error.status == 401
    assert "sk-live" not in str(error)
    assert isinstance(error, TransportError)


@pytest.mark.parametrize(
    "exc",
    [
        OSError(111, "Connection refused"),
        trio.TooSlowError(),
        trio.BrokenResourceError("tls failed"),
    ],
)
def test_map_exceptions_translates_foreign_errors(exc: Exception) -> None:
    with pytest.raises(ConnectError) as info, map_exceptions("step", secrets=["s3cr3t"]):
        raise exc
    assert info.value.__cause__ is exc
    assert info.value.message.startswith("step: ")


def test_map_exceptions_leaves_other_errors_alone() -> None:
    with pytest.raises(KeyError), map_exceptions("step"):
        raise KeyError("not ours")
    with pytest.raises(TransportClosed), map_exceptions("step"):
        raise TransportClosed("already translated")
