"""Exceptions raised by the sans-IO protocol package.

The tree::

    ProtocolError                (abstract; never raised itself)
    └── LocalProtocolError       the caller asked for something the dialect cannot express

Parsers never raise: a frame the peer got wrong becomes a ``ParseFailure`` *value*, so there is
no ``RemoteProtocolError`` here. Builders and encoders validate their arguments and raise
``LocalProtocolError`` with a message that names the offending value.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError"]


class ProtocolError(Exception):
    """Root of the protocol package's exceptions."""

    def __init__(self, message: str) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise LocalProtocolError")
        super().__init__(message)
        self.message = message


class LocalProtocolError(ProtocolError):
    """A builder or encoder was given arguments the selected dialect cannot carry.

    Examples: an unknown voice for the version, an empty handoff id, text output on v1,
    encoding a v1-only event (``conversation.handoff.append``) in the v2 dialect.
    """
