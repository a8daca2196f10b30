"""CORS for the simulator's HTTP routes, so a browser page on another origin can call them.

The documented browser WebRTC flow posts the SDP offer from the page (``fetch`` with
``Authorization: Bearer ek_…``); SDKs add headers of their own and read ``Location``. A browser
only sends such a request after an ``OPTIONS`` preflight, and only lets the page read a header
the response exposes.

Invariants:
- a preflight never needs a key (browsers send none) and always gets 204 with the requested
  method and headers allowed;
- every other HTTP response (errors too, so the page can read them) allows the origin and
  exposes ``Location``.
"""

from __future__ import annotations

from typing import Final

from ._http import HttpRequest

__all__ = ["cors_headers", "preflight_headers"]

_METHODS: Final = "GET, POST, DELETE, OPTIONS"
_DEFAULT_HEADERS: Final = "authorization, content-type, openai-beta"
_MAX_AGE_S: Final = "600"


def _origin(request: HttpRequest) -> list[tuple[str, str]]:
    origin = request.headers.get("origin")
    # Echo a page's origin (works with credentialed requests too); "*" for non-browser callers.
    return [("access-control-allow-origin", origin or "*"), ("vary", "Origin")]


def preflight_headers(request: HttpRequest) -> list[tuple[str, str]]:
    """Headers of the 204 answer to an ``OPTIONS`` preflight."""
    requested = request.headers.get("access-control-request-headers", "").strip()
    return [
        *_origin(request),
        ("access-control-allow-methods", _METHODS),
        ("access-control-allow-headers", requested or _DEFAULT_HEADERS),
        ("access-control-max-age", _MAX_AGE_S),
    ]


def cors_headers(request: HttpRequest) -> list[tuple[str, str]]:
    """Headers every non-preflight response carries."""
    return [*_origin(request), ("access-control-expose-headers", "Location")]
