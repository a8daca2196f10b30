"""The host-audio path's small pieces (``engine/_host_audio.py``), without I/O."""

from __future__ import annotations

import pytest
import trio

from duplex.engine import InvalidAudioFrame
from duplex.engine._host_audio import AudioInbox, PcmAligner, chain, check_frame_shape
from duplex.protocol import AudioFrame


def test_an_odd_tail_is_carried_to_the_next_frame_so_samples_never_shift() -> None:
    align = PcmAligner().align
    first = align(AudioFrame(b"\x01\x02\x03"))  # a sample and a half
    second = align(AudioFrame(b"\x04\x05\x06\x07\x08"))
    assert first.pcm == b"\x01\x02"
    assert second.pcm == b"\x03\x04\x05\x06\x07\x08"  # the carried byte starts the next frame


def test_a_change_of_shape_drops_the_carried_tail() -> None:
    align = PcmAligner().align
    align(AudioFrame(b"\x01\x02\x03", 24000, 1))
    assert align(AudioFrame(b"\x0a\x0b\x0c\x0d", 16000, 2)).pcm == b"\x0a\x0b\x0c\x0d"


def test_whole_frames_pass_through_as_they_are() -> None:
    frame = AudioFrame(b"\x00\x01" * 480)
    assert PcmAligner().align(frame) is frame


@pytest.mark.parametrize(("rate", "channels"), [(0, 1), (24000, 0), (-8000, 1)])
def test_a_frame_without_a_positive_rate_and_channel_count_is_refused(
    rate: int, channels: int
) -> None:
    with pytest.raises(InvalidAudioFrame):
        check_frame_shape(AudioFrame(b"\x00\x00", rate, channels))


async def test_the_backlog_comes_before_the_stream_and_drained_follows_the_mux() -> None:
    send, recv = trio.open_memory_channel[AudioFrame](4)
    inbox = AudioInbox(recv)
    backlog = [AudioFrame(b"\x00\x01")]
    live = AudioFrame(b"\x00\x02")
    inbox.busy()
    send.send_nowait(live)
    await send.aclose()
    with trio.fail_after(5):
        got = [frame async for frame in chain(backlog, inbox)]
        assert got == [backlog[0], live]
        await inbox.drained()  # the mux came back to an empty channel: all handed on
