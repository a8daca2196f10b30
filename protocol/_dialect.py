"""What each wire dialect can do, as named capabilities (SPEC §2).

SPEC §2: the engine never branches on the version outside of ``protocol``'s dispatch. The
builders and parsers take the version and dispatch on it themselves; what the engine must
decide beyond that — whether a host call exists in the dialect, whether the client asks for
a response or the server answers by itself — it decides by asking ``dialect(version)`` for a
capability by name. A third dialect (GPT-Live) is then one more ``Dialect`` here, not a hunt
for ``version is V2`` through the engine.

Invariants:
- every ``ProtocolVersion`` has exactly one ``Dialect`` (a test checks the table is total);
- a capability is a plain ``bool`` with one meaning, documented on its field; nothing else
  in the table is behaviour.
"""

from __future__ import annotations

from typing import Final

import attrs

from ._enums import ProtocolVersion, coerce_version

__all__ = ["Dialect", "dialect"]


@attrs.frozen
class Dialect:
    """The capabilities of one wire dialect. Obtain with ``dialect(version)``."""

    version: ProtocolVersion
    #: How error messages name it (``"v2 (Realtime GA)"``).
    title: str
    #: The client creates conversation items with ids of its own: history seeding at start,
    #: replay after a reconnect, and the ids the engine stamps on the items it sends.
    #: (v1: items come back from the server; a host continues a backend conversation by id.)
    client_items: bool
    #: The model answers a user text, a tool output or a final handoff output only when the
    #: client sends ``response.create`` (v1: the backend answers by itself).
    client_requests_responses: bool
    #: On barge-in over event-channel audio the client truncates the playing item at what
    #: was heard (``conversation.item.truncate``). Never over WebRTC, where the server knows.
    client_truncates: bool
    #: A second handoff request while one runs steers the first and is acknowledged at once.
    steers_handoffs: bool
    #: The session carries a ``SessionConfig`` and function tools, changeable later with
    #: ``session.update``; a reconnect sends the session as it is now. (v1: only the prompt
    #: changes, and a reconnect repeats the original ``session.create``, which names the
    #: backend conversation.)
    session_config: bool
    #: The host API beyond conversation: tool outputs, turn control (commit, clear,
    #: interrupt, create_response), images, deleting items.
    turn_control: bool


_DIALECTS: Final[dict[ProtocolVersion, Dialect]] = {
    ProtocolVersion.V1: Dialect(
        ProtocolVersion.V1,
        title="v1 (quicksilver)",
        client_items=False,
        client_requests_responses=False,
        client_truncates=False,
        steers_handoffs=False,
        session_config=False,
        turn_control=False,
    ),
    ProtocolVersion.V2: Dialect(
        ProtocolVersion.V2,
        title="v2 (Realtime GA)",
        client_items=True,
        client_requests_responses=True,
        client_truncates=True,
        steers_handoffs=True,
        session_config=True,
        turn_control=True,
    ),
}


def dialect(version: ProtocolVersion | str) -> Dialect:
    """The capabilities of ``version`` (a ``ProtocolVersion`` or its string).

    Raises:
        LocalProtocolError: ``version`` names no dialect.
    """
    return _DIALECTS[coerce_version(version)]
