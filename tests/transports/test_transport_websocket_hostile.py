"""A hostile or broken WebSocket server (issue 12.11, 12.12, 12.13): protocol violations end
the transport with an error (never a clean close), and nothing the server sends reaches an
error message raw or with the API key in it.

The server is ``_ws_server.serve_raw``: a correct upgrade followed by raw frames, so each
test controls every byte; it records what the client sent back and when it closed.
"""

from __future__ import annotations

import pytest
import trio

from duplex.transports import ConnectError, TransportEnded, connect_websocket

from ._ws_server import client_close_code, frame, serve_raw, upgrade_then

KEY = "sk-test-secret-key-123456"
HEADERS = {"authorization": f"Bearer {KEY}"}


async def _ended(frames: bytes) -> tuple[TransportEnded, list[object], int | None]:
    """Connect, read until the end; the end, what came before, the client's close code."""
    with trio.fail_after(5):
        async with serve_raw(upgrade_then(frames)) as server, trio.open_nursery() as nursery:
            transport = await connect_websocket(nursery, server.url(), HEADERS, ping_interval=None)
            items: list[object] = []
            while not items or not isinstance(items[-1], TransportEnded):
                items.extend(await transport.receive_batch())
            await transport.aclose()
            conn = server.conns[0]
            await conn.eof.wait()
            ended = items[-1]
            assert isinstance(ended, TransportEnded)
            return ended, items[:-1], client_close_code(conn.received)


VIOLATIONS = {
    "invalid-utf8-text": (frame(0x1, b"\xff\xfe"), 1007),
    "masked-server-frame": (
        b"\x81\x82\x01\x02\x03\x04" + bytes([ord("h") ^ 1, ord("i") ^ 2]),
        1002,
    ),
    "rsv-bits": (frame(0x1, b"hi", rsv=0b100), 1002),
    "unknown-opcode": (frame(0x3, b""), 1002),
    "bad-close-code": (frame(0x8, (999).to_bytes(2, "big")), 1002),
    "close-reason-not-utf8": (frame(0x8, (1000).to_bytes(2, "big") + b"\xff\xfe"), 1007),
    "oversized-ping": (frame(0x9, b"x" * 200), 1002),
    "fragmented-ping": (frame(0x9, b"x", fin=False), 1002),
}


@pytest.mark.parametrize("case", list(VIOLATIONS))
async def test_protocol_violation_is_an_error_not_a_clean_close(case: str) -> None:
    frames, code = VIOLATIONS[case]
    ended, before, sent_code = await _ended(frame(0x1, b'{"type":"ok"}') + frames)
    assert before == ['{"type":"ok"}']
    assert ended.reason == "error"
    assert ended.code == code
    assert type(ended.code) is int
    assert ended.error is not None
    assert "protocol" in ended.error
    assert sent_code == code  # the server was told why


async def test_graceful_close_is_closed_with_an_int_code_and_no_error() -> None:
    ended, _before, sent_code = await _ended(frame(0x8, (1000).to_bytes(2, "big") + b"bye"))
    assert ended == TransportEnded("closed", 1000, None)
    assert type(ended.code) is int
    assert sent_code == 1000  # the close handshake was answered


async def test_close_reason_echoing_the_key_is_redacted_and_escaped() -> None:
    reason = f"bad key {KEY}\r\n\x1b[31mFORGED\x00".encode()
    ended, _before, _code = await _ended(frame(0x8, (4001).to_bytes(2, "big") + reason))
    assert (ended.reason, ended.code) == ("error", 4001)
    assert ended.error is not None
    assert KEY not in ended.error
    assert "sk-test" not in ended.error
    for raw in ("\r", "\n", "\x1b", "\x00"):
        assert raw not in ended.error
    assert "\\x0d\\x0a\\x1b[31mFORGED\\x00" in ended.error


async def test_rejection_body_is_escaped_and_redacted_in_the_connect_error() -> None:
    body = f"no\r\nFORGED: {KEY}\x1b[0m".encode()
    answer = b"HTTP/1.1 401 No\r\ncontent-length: %d\r\n\r\n" % len(body) + body
    with trio.fail_after(5):
        async with serve_raw(answer) as server, trio.open_nursery() as nursery:
            with pytest.raises(ConnectError) as info:
                await connect_websocket(nursery, server.url(), HEADERS)
    message = str(info.value)
    assert info.value.status == 401
    assert "HTTP 401" in message
    assert KEY not in message
    for raw in ("\r", "\n", "\x1b"):
        assert raw not in message
    assert "no\\x0d\\x0aFORGED" in message


async def test_a_one_character_key_does_not_mangle_messages() -> None:
    with trio.fail_after(5):
        async with serve_raw(None) as server, trio.open_nursery() as nursery:
            with pytest.raises(ConnectError) as info:
                await connect_websocket(
                    nursery, server.url(), {"authorization": "Bearer k"}, connect_timeout=0.2
                )
    message = str(info.value)
    assert message.startswith("WebSocket connect to ws://127.0.0.1:"), message
    assert "timed out after 0.2 s" in message
