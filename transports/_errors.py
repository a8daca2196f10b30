"""Exceptions raised by transports, and the one place foreign exceptions are translated.

The tree::

    TransportError            root; never raised itself
    ├── ConnectError          opening a connection failed (``status`` set for HTTP failures)
    └── TransportClosed       an operation on a transport that has ended or been closed

Invariants:
- Exceptions from trio, wsproto, httpx and aiortc never escape a public transport
  call: ``map_exceptions`` turns them into the tree above exactly once, at the boundary, and
  chains the original as ``__cause__`` for debugging.
- Messages never contain a secret. Every message built here passes through ``redact``, which
  removes each registered secret (the API key) and anything that looks like a bearer token,
  because foreign messages (an HTTP error body, a reprs of a header dict) are not under our
  control.
- Server bytes never reach a message raw: ``server_text`` (bounded, redacted, control
  characters escaped by ``printable``) is the one helper for every message or
  ``TransportEnded.error`` built from what a server sent, and every ``TransportError``
  message is ``printable`` as well (no CR/LF/ANSI/NUL forging a log line).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final, NoReturn

import httpx
import trio

from ._ws_connection import UpgradeRejected, WsClosed

__all__ = [
    "ConnectError",
    "MessageTooLarge",
    "TransportClosed",
    "TransportError",
    "map_exceptions",
    "printable",
    "redact",
    "server_text",
]

# Tokens that look like OpenAI keys (sk-…, ek_…) or a bearer credential. Used in addition to
# the exact secrets a caller registers, so a key we were never told about is still hidden.
_TOKEN_RE = re.compile(r"\b(?:sk-|ek_|Bearer\s+)[A-Za-z0-9_\-\.]{6,}")
# A registered secret shorter than this is only removed where it stands as a whole token:
# removing every occurrence of a one-character "key" mangles the message around it
# ("WebSoc[redacted]et connect") and hides nothing a reader could not guess.
_MIN_SUBSTRING_SECRET = 8
_TOKEN_CHARS = r"A-Za-z0-9_\-\."
REDACTED: Final = "[redacted]"


def redact(message: str, secrets: Iterable[str | None] = ()) -> str:
    """``message`` with every secret in ``secrets`` and every key-shaped token removed.

    Secrets of a plausible key length are removed wherever they occur (a server may echo
    one inside other text); shorter ones only where they form a whole token.
    """
    for secret in secrets:
        if not secret or not secret.strip():
            continue
        if len(secret) >= _MIN_SUBSTRING_SECRET:
            message = message.replace(secret, REDACTED)
        elif secret in message:
            pattern = rf"(?<![{_TOKEN_CHARS}]){re.escape(secret)}(?![{_TOKEN_CHARS}])"
            message = re.sub(pattern, REDACTED, message)
    return _TOKEN_RE.sub(REDACTED, message)


# C0 and C1 controls (CR, LF, NUL, ESC of ANSI sequences, ...), DEL, and the Unicode line
# and paragraph separators: characters that let text from a server forge log lines or
# terminal output.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\x1b`` → ``\\x0a``,
    ``\\x1b``): safe in one log line or one terminal line (SPEC §8, log forging)."""
    return _CONTROL_RE.sub(_escape, text)


def server_text(text: str, secrets: Iterable[str | None] = (), *, limit: int = 200) -> str:
    """Text that came from a server (a close reason, an HTTP body, a foreign exception
    message), made fit for an error message or a log record: at most ``limit`` characters,
    secrets removed (a server may echo the key), control characters escaped.

    Every message the transports build from server data goes through here."""
    if len(text) > limit:
        text = text[:limit] + "…"
    return printable(redact(text, secrets))


class TransportError(Exception):
    """Root of the transport exceptions."""

    def __init__(self, message: str) -> None:
        message = printable(redact(message))
        super().__init__(message)
        self.message = message


class ConnectError(TransportError):
    """Opening the connection failed: DNS, TCP, TLS, the WebSocket or HTTP handshake, SDP
    negotiation, or a timeout.

    Attributes:
        status: the HTTP status code when the server answered with a non-success status
            (a rejected WebSocket upgrade, a failed ``POST /realtime/calls``), else ``None``.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransportClosed(TransportError):
    """The transport has ended (its ``TransportEnded`` was delivered) or was closed locally."""


class MessageTooLarge(TransportError, ValueError):
    """A text frame larger than the peer takes (``Transport.max_text_bytes``): refused,
    nothing sent, and the transport goes on."""


def _raise_connect(message: str, exc: BaseException, secrets: tuple[str | None, ...]) -> NoReturn:
    raise ConnectError(printable(redact(message, secrets))) from exc


@contextmanager
def map_exceptions(what: str, *, secrets: Iterable[str | None] = ()) -> Iterator[None]:
    """Translate foreign exceptions raised while connecting into ``ConnectError``.

    ``what`` names the step for the message (``"websocket connect"``, ``"POST /realtime/calls"``).
    ``TransportError`` passes through unchanged; trio's ``Cancelled`` and other
    ``BaseException`` that are not ``Exception`` are never touched.
    """
    secret_tuple = tuple(secrets)
    try:
        yield
    except TransportError:
        raise
    except UpgradeRejected as exc:
        body = server_text(exc.body.decode("utf-8", "replace"), secret_tuple) if exc.body else ""
        raise ConnectError(
            f"{what}: the server rejected the WebSocket upgrade with HTTP {exc.status}"
            + (f": {body}" if body else ""),
            status=exc.status,
        ) from exc
    except WsClosed as exc:
        _raise_connect(f"{what}: connection closed during the handshake", exc, secret_tuple)
    except trio.TooSlowError as exc:
        _raise_connect(f"{what}: timed out", exc, secret_tuple)
    except httpx.TimeoutException as exc:
        _raise_connect(f"{what}: timed out", exc, secret_tuple)
    except httpx.HTTPError as exc:
        _raise_connect(f"{what}: {type(exc).__name__}: {exc}", exc, secret_tuple)
    except trio.BrokenResourceError as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        _raise_connect(f"{what}: {type(cause).__name__}: {cause}", exc, secret_tuple)
    except OSError as exc:
        _raise_connect(f"{what}: {type(exc).__name__}: {exc}", exc, secret_tuple)


def describe(exc: BaseException) -> str:
    """A one-line description of a foreign failure (aiortc, av) for ``ConnectError`` messages
    (its text may quote what the server sent, e.g. a line of an answer SDP)."""
    return f"{type(exc).__name__}: {server_text(str(exc) or repr(exc))}"


def missing_extra(feature: str, extra: str, exc: ImportError) -> ConnectError:
    """The error raised when ``feature`` needs the optional ``duplex[extra]`` install."""
    return ConnectError(
        f"{feature} needs the optional dependencies of duplex[{extra}] "
        f"(pip install 'duplex[{extra}]'): {exc}"
    )
