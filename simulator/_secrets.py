"""Ephemeral client secrets: ``POST /v1/realtime/client_secrets`` and what an ``ek_`` key carries.

A backend mints a key with a session config (GA shape: ``{"session": {...}, "expires_after":
{"anchor": "created_at", "seconds": N}}``) and hands it to a page; the page then opens a call
(``POST /v1/realtime/calls`` with ``Authorization: Bearer ek_…`` and a raw SDP body) whose
session starts from that config (openai-realtime-protocol.md §1.2).

Invariants:
- keys are ``ek_`` + 32 hex characters from the simulator's seeded generator (random per run
  unless a seed is given);
- ``mint`` never raises: a bad body yields a 400 ``{"error": …}`` body instead;
- a key is good for any number of calls until ``expires_at``; after that ``lookup`` reports it
  expired. ``ek_`` keys the simulator did not mint are accepted with the default session
  (tests and tools make them up).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Final

import attrs
import orjson

from duplex.protocol import ProtocolVersion, SessionMode

from ._calls import error_body
from ._config import IdGenerator
from ._session_shape import deep_merge, initial_session

__all__ = ["ClientSecrets", "Minted"]

_DEFAULT_TTL_S: Final = 600
_MIN_TTL_S: Final = 10
_MAX_TTL_S: Final = 7200


@attrs.frozen
class Minted:
    """A minted key: the session config calls inherit and when it stops working."""

    session: dict[str, Any]
    expires_at: int


class ClientSecrets:
    """The keys one simulator minted."""

    def __init__(
        self, seed: int | str, *, model: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._rng = random.Random(f"{seed}:client_secrets")
        self._ids = IdGenerator(f"{seed}:client_secrets:ids")
        self._model = model
        self._clock = clock
        self._keys: dict[str, Minted] = {}

    def mint(self, body: bytes) -> tuple[int, bytes]:
        """(status, JSON body) for a ``POST /v1/realtime/client_secrets``."""
        try:
            request = orjson.loads(body) if body.strip() else {}
        except orjson.JSONDecodeError:
            return 400, error_body("We could not parse the JSON body of your request.", None)
        if not isinstance(request, dict):
            return 400, error_body("Expected an object as the request body.", "invalid_type")
        session = request.get("session", {"type": "realtime"})
        if not isinstance(session, dict):
            return 400, error_body(
                "Invalid type for 'session': expected an object.", "invalid_type", "session"
            )
        kind = session.get("type")
        if kind is None:
            return 400, error_body(
                "Missing required parameter: 'session.type'.",
                "missing_required_parameter",
                "session.type",
            )
        if kind not in ("realtime", "transcription"):
            return 400, error_body(
                f"Invalid value: '{kind}'. Supported values are: 'realtime' and 'transcription'.",
                "invalid_value",
                "session.type",
            )
        expires = request.get("expires_after") or {}
        ttl = expires.get("seconds", _DEFAULT_TTL_S) if isinstance(expires, dict) else None
        anchor = expires.get("anchor", "created_at") if isinstance(expires, dict) else None
        if (
            anchor != "created_at"
            or not isinstance(ttl, int)
            or isinstance(ttl, bool)
            or not _MIN_TTL_S <= ttl <= _MAX_TTL_S
        ):
            return 400, error_body(
                "Invalid 'expires_after': 'anchor' must be 'created_at' and 'seconds' an "
                f"integer between {_MIN_TTL_S} and {_MAX_TTL_S}.",
                "invalid_value",
                "expires_after",
            )
        key = "ek_" + "".join(self._rng.choices("0123456789abcdef", k=32))
        expires_at = int(self._clock()) + ttl
        self._keys[key] = Minted(session=dict(session), expires_at=expires_at)
        mode = SessionMode.TRANSCRIPTION if kind == "transcription" else SessionMode.CONVERSATIONAL
        model = session.get("model") if isinstance(session.get("model"), str) else self._model
        shown = deep_merge(
            initial_session(
                ProtocolVersion.V2, mode, session_id=self._ids.session(), model=str(model)
            ),
            session,
        )
        return 200, orjson.dumps({"value": key, "expires_at": expires_at, "session": shown})

    def lookup(self, key: str) -> Minted | None:
        """The minted key's record, or ``None`` when this simulator did not mint it."""
        return self._keys.get(key)

    def expired(self, minted: Minted) -> bool:
        return self._clock() >= minted.expires_at
