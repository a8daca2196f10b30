"""``WsConnection`` against a wsproto server on an in-memory stream: the frames it writes and
what it records from each server event (the transport's own tests cover it over sockets)."""

from __future__ import annotations

import pytest
import trio
import trio.testing
import wsproto
import wsproto.events
from wsproto.connection import ConnectionState

from duplex.transports._ws_connection import CloseReason, UpgradeRejected, WsClosed, WsConnection


class _Server:
    """The server end: a wsproto server fed whatever the client wrote."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.proto = wsproto.WSConnection(wsproto.ConnectionType.SERVER)

    async def read_events(self) -> list[wsproto.events.Event]:
        self.proto.receive_data(bytes(await self.stream.receive_some(65536)))
        return list(self.proto.events())

    async def send(self, event: wsproto.events.Event) -> None:
        await self.stream.send_all(self.proto.send(event))


async def _client_events(conn: WsConnection, stream: trio.abc.Stream) -> None:
    """What ``Receiver`` does for the connection: read once, dispatch each event."""
    conn.proto.receive_data(bytes(await stream.receive_some(65536)))
    handlers = {
        wsproto.events.AcceptConnection: conn.on_accept,
        wsproto.events.RejectConnection: conn.on_reject,
        wsproto.events.RejectData: conn.on_reject_data,
        wsproto.events.CloseConnection: conn.on_close,
        wsproto.events.Ping: conn.on_ping,
        wsproto.events.Pong: conn.on_pong,
    }
    for event in conn.proto.events():
        handler = handlers.get(type(event))
        if handler is not None:
            await handler(event)  # type: ignore[operator]


async def _opened() -> tuple[WsConnection, trio.abc.Stream, _Server]:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    conn = WsConnection(client_stream, "example.test", "/v1/realtime", [(b"x-test", b"1")])
    server = _Server(server_stream)
    await conn.send_request()
    (request,) = await server.read_events()
    assert isinstance(request, wsproto.events.Request)
    assert request.target == "/v1/realtime"
    assert (b"x-test", b"1") in list(request.extra_headers)
    await server.send(wsproto.events.AcceptConnection())
    await _client_events(conn, client_stream)
    assert conn.opened
    return conn, client_stream, server


async def test_a_message_and_a_ping_reach_the_server_in_order() -> None:
    with trio.fail_after(5):
        conn, _stream, server = await _opened()
        await conn.send_message("hello")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.ping)
            await trio.testing.wait_all_tasks_blocked()
            events = await server.read_events()
            nursery.cancel_scope.cancel()
        assert isinstance(events[0], wsproto.events.TextMessage)
        assert events[0].data == "hello"
        assert isinstance(events[1], wsproto.events.Ping)


async def test_a_pong_answers_its_ping_and_every_earlier_one() -> None:
    with trio.fail_after(5):
        conn, stream, server = await _opened()
        done: list[int] = []

        async def ping(n: int) -> None:
            await conn.ping()
            done.append(n)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ping, 1)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(ping, 2)
            await trio.testing.wait_all_tasks_blocked()
            pings = [e for e in await server.read_events() if isinstance(e, wsproto.events.Ping)]
            assert len(pings) == 2
            # A pong for the second ping only: the first is answered by it too (RFC 6455 §5.5.3).
            await server.send(wsproto.events.Pong(payload=pings[1].payload))
            await _client_events(conn, stream)
        assert sorted(done) == [1, 2]


async def test_a_server_ping_is_answered_with_its_payload() -> None:
    with trio.fail_after(5):
        conn, stream, server = await _opened()
        await server.send(wsproto.events.Ping(payload=b"abc"))
        await _client_events(conn, stream)
        (pong,) = await server.read_events()
        assert isinstance(pong, wsproto.events.Pong)
        assert pong.payload == b"abc"


async def test_the_peers_close_is_answered_and_recorded_and_sends_then_fail() -> None:
    with trio.fail_after(5):
        conn, stream, server = await _opened()
        await server.send(wsproto.events.CloseConnection(code=4000, reason="bye"))
        await _client_events(conn, stream)
        (reply,) = await server.read_events()
        assert isinstance(reply, wsproto.events.CloseConnection)
        assert reply.code == 4000
        assert conn.close_reason == CloseReason(4000, "bye")
        assert conn.close_done.is_set()
        with pytest.raises(WsClosed):
            await conn.send_message("late")
        with pytest.raises(WsClosed):
            await conn.ping()


async def test_aclose_waits_for_the_reply_and_a_second_aclose_returns_at_once() -> None:
    with trio.fail_after(5):
        conn, stream, server = await _opened()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.aclose)
            await trio.testing.wait_all_tasks_blocked()
            (close,) = await server.read_events()
            assert isinstance(close, wsproto.events.CloseConnection)
            assert close.code == 1000
            assert not conn.close_done.is_set()  # waiting for the reply
            await server.send(close.response())
            await _client_events(conn, stream)
        assert conn.close_done.is_set()
        assert conn.proto.state is ConnectionState.CLOSED
        await conn.aclose()  # idempotent


async def test_a_broken_stream_aborts_with_1006() -> None:
    with trio.fail_after(5):
        conn, stream, _server = await _opened()
        await stream.aclose()
        with pytest.raises(WsClosed) as raised:
            await conn.send_message("lost")
        assert raised.value.reason == CloseReason(1006)
        assert conn.close_done.is_set()


async def test_a_rejected_upgrade_raises_with_status_and_body() -> None:
    with trio.fail_after(5):
        client_stream, server_stream = trio.testing.memory_stream_pair()
        conn = WsConnection(client_stream, "example.test", "/", [])
        server = _Server(server_stream)
        await conn.send_request()
        await server.read_events()
        await server.send(
            wsproto.events.RejectConnection(
                status_code=401, headers=[(b"content-length", b"4")], has_body=True
            )
        )
        await server.send(wsproto.events.RejectData(data=b"nope", body_finished=True))
        with pytest.raises(UpgradeRejected) as raised:
            await _client_events(conn, client_stream)
        assert raised.value.status == 401
        assert raised.value.body == b"nope"
        assert not conn.opened
