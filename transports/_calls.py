"""WebRTC call creation: ``POST <base>/realtime/calls`` with the offer, returning the call id
and the answer SDP (codex-realtime.md §8.2; openai-realtime-protocol.md §1.3).

Runs on the trio thread: httpx supports trio through anyio, so no bridge hop is needed.

Invariants:
- A normal API key sends ``multipart/form-data`` (``sdp`` + ``session`` JSON, built by
  ``protocol.multipart_call_body``); an ephemeral ``ek_`` key sends the raw offer as
  ``application/sdp`` (the session was fixed when the key was minted).
- Success is any 2xx with a ``Location`` holding a call id (a real server answers 201); a
  missing or malformed ``Location`` raises ``ConnectError`` with codex's messages
  (``realtime call response missing Location`` / ``… does not contain a call id: …``).
- Non-2xx raises ``ConnectError(status=…)`` whose message carries at most 200 characters of
  the body, redacted (servers echo a prefix of a wrong key in their error message) and with
  control characters escaped (``server_text``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs
import httpx

from duplex.protocol._errors import LocalProtocolError
from duplex.protocol._urls import (
    call_id_from_location,
    multipart_call_body,
    realtime_calls_url,
    realtime_headers,
)

from ._errors import ConnectError, map_exceptions, server_text

__all__ = ["CallAnswer", "create_call"]

_BODY_PREVIEW: Final = 200


@attrs.frozen(slots=True)
class CallAnswer:
    """The server's answer to a call offer."""

    call_id: str
    sdp: str


def _call_headers(api_key: str, headers: Mapping[str, str] | None, version: str) -> dict[str, str]:
    try:
        built = realtime_headers(api_key=api_key, extra=headers, version=version)
    except LocalProtocolError as exc:
        raise ConnectError(f"POST /realtime/calls: {exc.message}") from None
    built["accept"] = "application/sdp"
    return built


async def create_call(
    *,
    base_url: str,
    api_key: str,
    offer_sdp: str,
    session: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    version: str = "v2",
    http_timeout: float = 10.0,
) -> CallAnswer:
    """POST the offer and return the call id and answer SDP.

    Raises:
        ConnectError: transport failure, timeout, non-2xx (``status`` set), or a bad
            ``Location``.
    """
    url = realtime_calls_url(base_url)
    request_headers = _call_headers(api_key, headers, version)
    content: bytes
    if api_key.strip().startswith("ek_"):
        request_headers["content-type"] = "application/sdp"
        content = offer_sdp.encode("utf-8")
    else:
        try:
            content_type, content = multipart_call_body(offer_sdp, session)
        except LocalProtocolError as exc:
            raise ConnectError(f"POST /realtime/calls: {exc.message}") from None
        request_headers["content-type"] = content_type
    with map_exceptions("POST /realtime/calls", secrets=[api_key]):
        async with httpx.AsyncClient(timeout=http_timeout) as client:
            response = await client.post(url, content=content, headers=request_headers)
    if not response.is_success:
        preview = server_text(response.text, [api_key], limit=_BODY_PREVIEW)
        raise ConnectError(
            f"POST /realtime/calls: HTTP {response.status_code}: {preview}",
            status=response.status_code,
        )
    try:
        call_id = call_id_from_location(response.headers.get("location"))
    except LocalProtocolError as exc:
        raise ConnectError(exc.message) from None
    return CallAnswer(call_id=call_id, sdp=response.text)
