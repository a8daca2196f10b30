"""The host-audio path's small pieces (``engine/_host_audio.py``), without I/O."""

from __future__ import annotations

import warnings
from typing import Any

import numpy
import pytest
import trio
import trio.testing

from duplex.engine import InvalidAudioFrame
from duplex.engine._g711 import G711Transcoder
from duplex.engine._host_audio import (
    FLUSH,
    AudioInbox,
    PcmAligner,
    chain,
    check_frame_shape,
    to_host_g711,
)
from duplex.protocol import AudioFrame, AudioInterrupted, AudioOut, OutputAudioDone, ResponseDone

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


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


async def test_drained_queues_a_flush_behind_the_frames_and_waits_for_the_mux() -> None:
    send, recv = trio.open_memory_channel[AudioFrame](1)
    inbox = AudioInbox(recv, send)
    frame = AudioFrame(b"\x00\x01")
    inbox.busy()
    send.send_nowait(frame)  # the channel is full: the flush waits for room, in order
    got: list[AudioFrame] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(inbox.drained)
            await trio.testing.wait_all_tasks_blocked()
            got.append(await inbox.__anext__())
            got.append(await inbox.__anext__())
            with trio.move_on_after(0):
                await inbox.__anext__()  # back to an empty channel: drained() returns
    assert got == [frame, FLUSH]


# ---- to_host_g711: the WebRTC track's audio for a telephony host --------------------------


def _track_audio(item: str, ms: int, amp: int) -> list[AudioOut]:
    t = numpy.arange(24 * ms) / 24000
    pcm = (numpy.sin(2 * numpy.pi * 440 * t) * amp).astype("<i2").tobytes()
    return [
        AudioOut(AudioFrame(pcm[i : i + 960]), item, "resp_" + item)
        for i in range(0, len(pcm), 960)
    ]


def _never_cut(_item: str) -> bool:
    return False


def _through(g711: G711Transcoder, *batches: list[Any], is_cut: Any = _never_cut) -> list[Any]:
    out: list[Any] = []
    for batch in batches:
        forward = list(batch)
        to_host_g711(g711, forward, is_cut)
        out.extend(forward)
    return out


def _peak(events: list[Any]) -> int:
    ulaw = b"".join(e.frame.pcm for e in events if type(e) is AudioOut)
    return int(numpy.abs(numpy.frombuffer(audioop.ulaw2lin(ulaw, 2), dtype="<i2")).max())


def test_each_item_reaches_the_host_whole_before_its_end_with_no_empty_frames() -> None:
    """The resampler's held tail (20–60 ms) reached the host only with the next reply,
    tagged with the next item; two frames in three were empty AudioOut."""
    g711 = G711Transcoder("pcmu")
    end_1 = [OutputAudioDone("a", "resp_a"), ResponseDone("resp_a", "completed")]
    first = _through(g711, *([f] for f in _track_audio("a", 400, 9000)), end_1)
    second = _through(g711, *([f] for f in _track_audio("b", 200, 100)))
    audio = [e for e in first if type(e) is AudioOut]
    assert all(e.frame.pcm for e in audio + second)
    assert {(e.item_id, e.response_id) for e in audio} == {("a", "resp_a")}
    assert sum(e.frame.duration_ms for e in audio) == 400  # all of it, none held back
    assert first[-2:] == end_1  # ...and all of it before the item's end
    assert _peak(second) < 200  # item b (peak 100) carries nothing of item a (peak 9000)


def test_a_barge_in_drops_the_cut_items_tail() -> None:
    """After a barge-in the cut item's held tail played at the start of the next reply."""
    g711 = G711Transcoder("pcmu")
    cut = AudioInterrupted("a", 300)
    first = _through(g711, *([f] for f in _track_audio("a", 300, 9000)), [cut])
    second = _through(g711, *([f] for f in _track_audio("b", 200, 100)))
    assert first[-1] == cut
    assert _peak(second) < 200


def test_an_interrupt_the_host_called_drops_the_tail_at_the_items_end() -> None:
    """``interrupt()`` hands its AudioInterrupted to the host directly; the item's end then
    arrives here, and the ledger says the item was cut: its tail is not delivered."""
    g711 = G711Transcoder("pcmu")
    taken = _through(g711, *([f] for f in _track_audio("a", 300, 9000)))
    end = _through(g711, [OutputAudioDone("a", "resp_a")], is_cut=lambda item: item == "a")
    assert end == [OutputAudioDone("a", "resp_a")]
    assert sum(e.frame.duration_ms for e in taken) < 300
    assert _peak(_through(g711, *([f] for f in _track_audio("b", 200, 100)))) < 200
