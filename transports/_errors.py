"""Exceptions raised by transports, and the one place foreign exceptions are translated.

The tree::

    TransportError            root; never raised itself
    ├── ConnectError          opening a connection failed (``status`` set for HTTP failures)
    └── TransportClosed       an operation on a transport that has ended or been closed

Invariants:
- Exceptions from trio, trio-websocket, httpx and aiortc never escape a public transport
  call: ``map_exceptions`` turns them into the tree above exactly once, at the boundary, and
  chains the original as ``__cause__`` for debugging.
- Messages never contain a secret. Every message built here passes through ``redact``, which
  removes each registered secret (the API key) and anything that looks like a bearer token,
  because foreign messages (an HTTP error body, a reprs of a header dict) are not under our
  control.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import httpx
import trio
import trio_websocket

__all__ = [
    "ConnectError",
    "TransportClosed",
    "TransportError",
    "map_exceptions",
    "redact",
]

# Tokens that look like OpenAI keys (sk-…, ek_…) or a bearer credential. Used in addition to
# the exact secrets a caller registers, so a key we were never told about is still hidden.
_TOKEN_RE = re.compile(r"\b(?:sk-|ek_|Bearer\s+)[A-Za-z0-9_\-\.]{6,}")


def redact(message: str, secrets: Iterable[str | None] = ()) -> str:
    """``message`` with every secret in ``secrets`` and every key-shaped token removed."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "[redacted]")
    return _TOKEN_RE.sub("[redacted]", message)


class TransportError(Exception):
    """Root of the transport exceptions."""

    def __init__(self, message: str) -> None:
        message = redact(message)
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


def _raise_connect(message: str, exc: BaseException, secrets: tuple[str | None, ...]) -> NoReturn:
    raise ConnectError(redact(message, secrets)) from exc


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
    except trio_websocket.ConnectionRejected as exc:
        raise ConnectError(
            f"{what}: server rejected the WebSocket handshake with HTTP {exc.status_code}",
            status=exc.status_code,
        ) from exc
    except trio_websocket.ConnectionTimeout as exc:
        _raise_connect(f"{what}: timed out", exc, secret_tuple)
    except trio_websocket.HandshakeError as exc:
        _raise_connect(f"{what}: handshake failed", exc, secret_tuple)
    except trio_websocket.ConnectionClosed as exc:
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
    """A one-line description of a foreign failure (aiortc, av) for ``ConnectError`` messages."""
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text[:200]}"


def missing_extra(feature: str, extra: str, exc: ImportError) -> ConnectError:
    """The error raised when ``feature`` needs the optional ``duplex[extra]`` install."""
    return ConnectError(
        f"{feature} needs the optional dependencies of duplex[{extra}] "
        f"(pip install 'duplex[{extra}]'): {exc}"
    )
