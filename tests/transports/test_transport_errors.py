"""Exception translation and secret redaction at the transport boundary."""

from __future__ import annotations

import pytest
import trio

from duplex.transports import ConnectError, TransportClosed, TransportError
from duplex.transports._errors import map_exceptions, printable, redact, server_text


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


def test_a_short_secret_is_only_redacted_as_a_whole_token() -> None:
    assert redact("WebSocket connect failed", ["k"]) == "WebSocket connect failed"
    assert redact("bad key k here", ["k"]) == "bad key [redacted] here"
    long_key = "abcdefgh12345"
    assert redact(f"echo:{long_key}xyz", [long_key]) == "echo:[redacted]xyz"


def test_server_text_is_bounded_redacted_and_printable() -> None:
    text = server_text("a\r\nb\x1b[1mc\x00 sk-live-0123456789 " + "x" * 500, limit=60)
    for raw in ("\r", "\n", "\x1b", "\x00"):
        assert raw not in text
    assert text.startswith("a\\x0d\\x0ab\\x1b[1mc\\x00 [redacted] ")
    assert len(text) < 80
    assert printable("line\u2028two\x7f") == "line\\u2028two\\x7f"


def test_transport_error_messages_are_one_printable_line() -> None:
    error = ConnectError("HTTP 500: oops\r\nINFO forged record")
    assert "\n" not in str(error)
    assert "oops\\x0d\\x0aINFO forged record" in str(error)
