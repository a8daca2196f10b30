"""``FrameSplitter``: texts decoded here, every other frame passed on whole, in stream order."""

from __future__ import annotations

import struct

from hypothesis import given, strategies as st

from duplex.transports._frames import TOO_BIG, FrameSplitter


def _frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = False
) -> bytes:
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, (0x80 if mask else 0) | n])
    elif n < 1 << 16:
        head = bytes([b0, (0x80 if mask else 0) | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, (0x80 if mask else 0) | 127]) + struct.pack("!Q", n)
    if mask:
        return head + b"\x00\x00\x00\x00" + payload  # a zero mask leaves the payload as is
    return head + payload


def _text(s: str) -> bytes:
    return _frame(0x1, s.encode())


def _feed_all(splitter: FrameSplitter, chunks: list[bytes]) -> list[object]:
    out: list[object] = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    return out


def test_whole_text_frames_are_decoded_here() -> None:
    splitter = FrameSplitter(1 << 20)
    data = _text('{"type":"a"}') + _text("é" * 200) + _text("x" * 70000)
    assert splitter.feed(data) == ['{"type":"a"}', "é" * 200, "x" * 70000]


def test_partial_frames_wait_for_the_rest() -> None:
    splitter = FrameSplitter(1 << 20)
    data = _text("hello") + _text("y" * 300)
    for i in range(len(data)):
        splitter = FrameSplitter(1 << 20)
        assert _feed_all(splitter, [data[:i], data[i:]]) == ["hello", "y" * 300]


def test_control_binary_and_fragments_go_to_wsproto_whole_and_in_order() -> None:
    splitter = FrameSplitter(1 << 20)
    ping = _frame(0x9, b"p")
    first = _frame(0x1, b"frag", fin=False)
    last = _frame(0x0, b"ment")
    binary = _frame(0x2, b"\x00")
    close = _frame(0x8, struct.pack("!H", 1000))
    out = splitter.feed(_text("a") + ping + first + _text("b") + last + binary + _text("c") + close)
    # A text frame inside a fragmented message is wsproto's to reject; it goes along whole.
    assert out == ["a", ping + first + _text("b") + last + binary, "c", close]


def test_invalid_utf8_goes_to_wsproto() -> None:
    bad = _frame(0x1, b"\xff\xfe")
    assert FrameSplitter(100).feed(bad + _text("ok")) == [bad, "ok"]


def test_frames_a_server_may_not_send_switch_to_passthrough() -> None:
    for bad in (_frame(0x1, b"m", mask=True), _frame(0x1, b"r", rsv=0x40), _frame(0x3, b"?")):
        splitter = FrameSplitter(100)
        assert splitter.feed(_text("ok") + bad + _text("later")) == ["ok", bad + _text("later")]
        assert splitter.passthrough
        assert splitter.feed(_text("more")) == [_text("more")]


def test_oversized_data_frame_is_reported_from_its_header() -> None:
    splitter = FrameSplitter(1000)
    header_only = _frame(0x1, b"z" * 5000)[:4]  # the payload never needs to arrive
    assert splitter.feed(_text("fine") + header_only) == ["fine", TOO_BIG]
    # a large control frame is wsproto's to reject, not a size matter
    assert FrameSplitter(10).feed(_frame(0x9, b"x" * 20)) == [_frame(0x9, b"x" * 20)]


_frames = st.one_of(
    st.text(max_size=300).map(lambda t: (t, _text(t))),
    st.binary(max_size=125).map(lambda b: (None, _frame(0x9, b))),
    st.binary(max_size=200).map(lambda b: (None, _frame(0x2, b))),
)


@given(st.lists(_frames, max_size=20), st.lists(st.integers(0, 4000), max_size=8))
def test_any_chunking_splits_texts_and_other_frames_in_order(
    frames: list[tuple[str | None, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(frame for _, frame in frames)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    parts = _feed_all(FrameSplitter(1 << 20), chunks)
    assert [p for p in parts if type(p) is str] == [t for t, _ in frames if t is not None]
    assert b"".join(p for p in parts if type(p) is bytes) == b"".join(
        frame for t, frame in frames if t is None
    )
