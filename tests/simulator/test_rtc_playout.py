"""WebRTC playout timing end to end: ``output_audio_buffer.stopped`` arrives when the model's
audio has been played out on the media track, not together with ``response.done``."""

from __future__ import annotations

from typing import Any

import trio

from duplex.simulator import SimulatorConfig, open_simulator
from duplex.transports._bridge import get_bridge

from ._simhelpers import user_text
from .test_webrtc import RtcClient, _connect_call


async def test_stopped_arrives_when_the_track_has_played_the_audio() -> None:
    bridge = get_bridge()
    with trio.fail_after(20):
        async with open_simulator(SimulatorConfig(audio_speedup=4.0)) as sim:
            client = RtcClient()
            try:
                await _connect_call(sim, client)
                await client.opened.wait()
                events: list[dict[str, Any]] = [await client.recv()]
                client.send(user_text("hello over webrtc"))
                client.send({"type": "response.create"})
                await client.recv_until("response.done", events)
                loud_at_done = client.loud_frames
                await client.recv_until("output_audio_buffer.stopped", events)
                loud_at_stopped = client.loud_frames
                frames_at_stopped = client.audio_frames
                types = [e["type"] for e in events]
                assert types.index("output_audio_buffer.started") < types.index("response.done")
                # 500 ms more of the track: the model's audio must already have been heard.
                await client.wait_frames(total=frames_at_stopped + 25)
                # The reply is ~1.5 s of audio streamed 4x faster than real time: most of it
                # is still to play at response.done, and (almost) none is left at stopped.
                # "Almost": stopped means the server's track sent its last sample; this
                # receiver still has its jitter buffer and decode hop to go (up to ~120 ms
                # seen on a loaded 2-core machine), so allow 200 ms (10 frames) of it.
                assert client.loud_frames - loud_at_done > 10
                assert client.loud_frames - loud_at_stopped <= 10
            finally:
                await bridge.run(client.close)
