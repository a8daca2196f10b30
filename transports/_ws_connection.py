"""The client end of one WebSocket: wsproto's state machine and every write to the stream.

``WsConnection`` does not read. Whoever reads the socket (``_ws_reader.Receiver``, in the
consumer's task or a waiter's) feeds wsproto and hands each event to the matching ``on_*``
handler here; those handlers send what the protocol owes the peer (pongs, the close reply)
and record what happened. Keeping reading out of this class is what lets a realtime event
cost one wakeup of its consumer (``_websocket``'s module docstring).

Invariants:
- One writer: every frame goes out through ``_send``, serialised by a ``trio.StrictFIFOLock``
  in call order; the lock is never held across a read, so a send never waits on reading.
- ``close_reason`` is set once the WebSocket is closing or closed: our close (1000 until the
  peer's reply overwrites it), the peer's close frame, a local 1009, or an abort (1006 when the
  stream broke or ended without a close). After it is set, ``send_message`` and ``ping`` raise
  ``WsClosed``.
- ``close_done`` is set when no close reply is left to wait for (the peer answered, the peer
  closed first, or the connection was aborted).
- A rejected upgrade raises ``UpgradeRejected`` from the handler that completes it (with the
  body, when the server sent one); ``transports._errors.map_exceptions`` turns it into
  ``ConnectError`` with the HTTP status.

These mirror trio-websocket 0.12's client (the library this replaced): the same frames, in
the same order, for the opening and closing handshakes, pings and aborts.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from typing import Final

import attrs
import trio
import wsproto
import wsproto.events
from wsproto.connection import ConnectionState

__all__ = ["CloseReason", "UpgradeRejected", "WsClosed", "WsConnection"]

#: RFC 6455 §7.4.1: the connection was closed without a close frame (never sent on the wire).
ABNORMAL_CLOSURE: Final = 1006


@attrs.frozen
class CloseReason:
    """Why the WebSocket closed: the close frame's code and reason (``None`` if empty)."""

    code: int
    reason: str | None = None


class WsClosed(Exception):
    """The WebSocket is closed (or closing): nothing more can be sent on it."""

    def __init__(self, reason: CloseReason | None) -> None:
        super().__init__(reason)
        self.reason = reason


class UpgradeRejected(Exception):
    """The server answered the upgrade request with an HTTP status other than 101."""

    def __init__(self, status: int, headers: tuple[tuple[bytes, bytes], ...], body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers
        self.body = body


class WsConnection:
    """One client WebSocket over ``stream`` (see the module docstring)."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        host: str,
        resource: str,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.proto = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self._stream = stream
        self._write_lock = trio.StrictFIFOLock()
        self._request = wsproto.events.Request(
            host=host, target=resource, extra_headers=extra_headers
        )
        self.opened = False  # the server accepted the upgrade
        self.close_reason: CloseReason | None = None
        self.close_done = trio.Event()
        self._pings: OrderedDict[bytes, trio.Event] = OrderedDict()  # in flight, oldest first
        self._reject_status = 0
        self._reject_headers: tuple[tuple[bytes, bytes], ...] = ()
        self._reject_body = bytearray()

    # ---- calls ------------------------------------------------------------------------

    async def send_request(self) -> None:
        """The opening handshake's request (the caller then reads until ``opened``)."""
        await self._send(self._request)

    async def send_message(self, text: str) -> None:
        if self.close_reason is not None:
            raise WsClosed(self.close_reason)
        await self._send(wsproto.events.TextMessage(data=text))

    async def ping(self) -> None:
        """Send a ping and wait for its pong (someone else must be reading). A pong answers
        its own ping and every earlier one still in flight (RFC 6455 §5.5.3)."""
        if self.close_reason is not None:
            raise WsClosed(self.close_reason)
        payload = os.urandom(4)
        while payload in self._pings:
            payload = os.urandom(4)
        answered = self._pings[payload] = trio.Event()
        await self._send(wsproto.events.Ping(payload=payload))
        await answered.wait()

    async def aclose(self, code: int = 1000) -> None:
        """Send our close frame and wait for the peer's reply (read by someone else), then
        close the stream, also when cancelled. Idempotent."""
        if self.close_reason is not None:
            return
        try:
            state = self.proto.state
            if state is ConnectionState.OPEN:
                self.close_reason = CloseReason(1000)
                await self._send(wsproto.events.CloseConnection(code=code))
            elif state is ConnectionState.CONNECTING or state is ConnectionState.REJECTING:
                self.close_done.set()
            await self.close_done.wait()
        except WsClosed:
            pass
        finally:
            await self.close_stream()

    async def refuse_oversized(self, limit: int) -> None:
        """A message over ``limit`` bytes arrived: close with 1009 and say why."""
        reason = f"message exceeded {limit} bytes"
        self.close_reason = CloseReason(1009, reason)
        with contextlib.suppress(WsClosed):
            await self._send(wsproto.events.CloseConnection(code=1009, reason=reason))

    async def fail(self, code: int) -> None:
        """Fail the connection after a protocol violation (RFC 6455 §7.1.7): send ``code``
        while the WebSocket is still open, close the stream, and mark it closed."""
        if self.proto.state is ConnectionState.OPEN:
            with contextlib.suppress(WsClosed):
                await self._send(wsproto.events.CloseConnection(code=code))
        await self.close_stream()
        self.abort()

    def abort(self) -> None:
        """The stream broke or ended under us: no close handshake is possible any more."""
        if self.proto.state is ConnectionState.OPEN:
            self.proto.send(wsproto.events.CloseConnection(code=ABNORMAL_CLOSURE))  # state only
        if self.close_reason is None:
            self.close_reason = CloseReason(ABNORMAL_CLOSURE)
        self.close_done.set()  # nothing to wait for

    async def close_stream(self) -> None:
        with contextlib.suppress(trio.BrokenResourceError):  # already dead
            await self._stream.aclose()

    # ---- wsproto events (called by the reader) -----------------------------------------

    async def on_accept(self, event: wsproto.events.AcceptConnection) -> None:
        self.opened = True

    async def on_reject(self, event: wsproto.events.RejectConnection) -> None:
        self._reject_status = event.status_code
        self._reject_headers = tuple(event.headers)
        if not event.has_body:
            raise UpgradeRejected(self._reject_status, self._reject_headers, b"")

    async def on_reject_data(self, event: wsproto.events.RejectData) -> None:
        self._reject_body += event.data
        if event.body_finished:
            body = bytes(self._reject_body)
            raise UpgradeRejected(self._reject_status, self._reject_headers, body)

    async def on_close(self, event: wsproto.events.CloseConnection) -> None:
        """The peer's close frame: answer it if it opened the closing handshake, then record
        its code. (A client waits for the server to close TCP: RFC 6455 §7.1.1.)"""
        reason = CloseReason(event.code, event.reason or None)
        if self.proto.state is ConnectionState.REMOTE_CLOSING:
            self.close_reason = reason  # sends raise from here on, during the reply too
            await self._send(event.response())
        self.close_reason = reason
        self.close_done.set()

    async def on_ping(self, event: wsproto.events.Ping) -> None:
        await self._send(event.response())

    async def on_pong(self, event: wsproto.events.Pong) -> None:
        payload = bytes(event.payload)
        if payload not in self._pings:
            return  # not ours (or unsolicited): nothing waits for it
        while self._pings:
            key, answered = self._pings.popitem(last=False)
            answered.set()
            if key == payload:
                break

    # ---- the one writer ---------------------------------------------------------------

    async def _send(self, event: wsproto.events.Event) -> None:
        data = self.proto.send(event)
        async with self._write_lock:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.abort()
                raise WsClosed(self.close_reason) from None
