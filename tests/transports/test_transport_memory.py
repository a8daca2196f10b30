"""The in-process pair: audio, drops, and what the peer sees."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from duplex.protocol._audio import AudioFrame
from duplex.transports import TransportClosed, TransportEnded, memory_transport_pair


async def test_text_pair_refuses_audio() -> None:
    client, _peer = memory_transport_pair()
    assert not client.audio_native
    with pytest.raises(TypeError):
        await client.send_audio(AudioFrame(b"\x00\x00" * 480))


async def test_audio_both_ways() -> None:
    with trio.fail_after(2):
        client, peer = memory_transport_pair(audio_native=True)
        assert client.audio_native
        frame = AudioFrame(b"\x01\x00" * 480)
        await client.send_audio(frame)
        await client.send_text("t")
        assert await peer.receive_batch() == [frame, "t"]
        await peer.send_audio(frame)
        peer.send_text_nowait("u")
        assert await client.receive_batch() == [frame, "u"]
        stats = client.statistics()
        assert (stats.audio_frames_in, stats.audio_frames_out) == (1, 1)


async def test_drop_and_peer_sees_client_close() -> None:
    with trio.fail_after(2):
        client, peer = memory_transport_pair()
        await peer.drop("boom")
        assert await client.receive_batch() == [TransportEnded("error", 1006, "boom")]
        with pytest.raises(TransportClosed):
            await peer.send_text("x")

        client, peer = memory_transport_pair()
        await client.send_text("bye")
        await client.aclose()
        assert await peer.receive_batch() == ["bye", TransportEnded("requested", 1000, None)]
        with pytest.raises(TransportClosed):
            await peer.receive_batch()


async def test_receiving_after_the_end_is_still_a_checkpoint() -> None:
    # A reader that loops on receive_batch after the end must still yield to cancellation.
    client, _peer = memory_transport_pair()
    await client.aclose()
    batch = await client.receive_batch()
    assert isinstance(batch[-1], TransportEnded)
    with trio.testing.assert_checkpoints(), pytest.raises(TransportClosed):
        await client.receive_batch()
