"""WebRTC call plumbing on the trio side: offer parsing, the call object, error bodies.

``parse_offer`` validates the body of ``POST /v1/realtime/calls`` (multipart ``sdp`` +
``session`` JSON, or raw ``application/sdp``) with the standard library's MIME parser.
``RtcCall`` ties a call id to its ``SimSession`` and its ``RtcAnswerer`` (asyncio side);
``DataChannelOutlet`` is how the session writes to the ``oai-events`` channel.

Invariants:
- ``parse_offer`` never raises; a bad body yields the message for a 400 ``{"error": …}``;
- the answerer is only ever touched through the bridge (``call_soon`` / ``run``).
"""

from __future__ import annotations

import email.parser
import email.policy
from typing import Any

import orjson
import trio

from duplex.transports import get_bridge

from ._rtc_answerer import RtcAnswerer
from ._session import SimSession

__all__ = ["DataChannelOutlet", "RtcCall", "error_body", "parse_offer"]


def error_body(message: str, code: str | None, param: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }
        }
    )


class DataChannelOutlet:
    """The call's ``oai-events`` channel, written through the asyncio bridge."""

    name = "datachannel"

    def __init__(self, answerer: RtcAnswerer, *, silent_after: int | None = None) -> None:
        self._answerer = answerer
        self._silent_after = silent_after
        self._sent = 0

    async def send(self, data: str | bytes) -> None:
        if self._silent_after is not None and self._sent >= self._silent_after:
            return  # the silent-peer fault: the channel stays open, nothing more arrives
        self._sent += 1
        get_bridge().call_soon(self._answerer.send, data)

    async def close(self, code: int, reason: str) -> None:
        get_bridge().call_soon(self._answerer.close_channel)

    async def abort(self) -> None:
        get_bridge().call_soon(self._answerer.abort)


class RtcCall:
    """A WebRTC call: its answerer (asyncio side) and its session (trio side)."""

    def __init__(self, call_id: str, session: SimSession) -> None:
        self.call_id = call_id
        self.session = session
        self.answerer: RtcAnswerer | None = None
        self.sideband_attempts = 0
        self.ended = trio.Event()


def parse_offer(headers: dict[str, str], body: bytes) -> tuple[str, dict[str, Any] | None] | str:
    """(offer sdp, session or None), or an error message."""
    ctype = headers.get("content-type", "")
    session: dict[str, Any] | None = None
    if ctype.startswith("multipart/form-data"):
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body
        )
        if not msg.is_multipart():
            return "Could not parse the multipart body."
        fields: dict[str, bytes] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = payload
        if "sdp" not in fields:
            return "Missing required parameter: 'sdp'."
        sdp = fields["sdp"].decode("utf-8", "replace")
        if "session" in fields:
            try:
                parsed = orjson.loads(fields["session"])
            except orjson.JSONDecodeError:
                return "Invalid 'session': not valid JSON."
            if not isinstance(parsed, dict):
                return "Invalid 'session': expected an object."
            session = parsed
    elif ctype.startswith("application/sdp"):
        sdp = body.decode("utf-8", "replace")
    else:
        return f"Unsupported content type: '{ctype}'. Use application/sdp or multipart/form-data."
    if not sdp.lstrip().startswith("v=0"):
        return "Invalid 'sdp': not an SDP offer."
    if "m=audio" not in sdp:
        return "Invalid 'sdp': the offer has no audio media section."
    return sdp, session
