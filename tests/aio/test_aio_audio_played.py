"""``duplex.aio``'s ``audio_played``: an asyncio host's playback report moves the barge-in cut
exactly as on the trio API (issue 14 item 4)."""

from __future__ import annotations

import asyncio
import math
import struct

import pytest

from duplex.aio import open_engine as open_aio_engine
from duplex.engine import (
    AudioFrame,
    AudioInterrupted,
    AudioOut,
    ConversationNotRunning,
    SessionUpdated,
)

from ._hosts import ASYNCIO_HOSTS, Host, run_on, simulator_thread, until

TIMEOUT_S = 20


def _tone(ms: int) -> bytes:
    n = 24 * ms
    return b"".join(
        struct.pack("<h", int(9000 * math.sin(2 * math.pi * 440 * i / 24000))) for i in range(n)
    )


@pytest.mark.parametrize("host", ASYNCIO_HOSTS, ids=lambda h: h.name)
def test_reported_playback_is_where_the_barge_in_cuts(host: Host) -> None:
    with simulator_thread() as server:
        config = server.config()

        async def scenario(host: Host) -> None:
            log: list[object] = []
            async with open_aio_engine(config, mechanism=host.mechanism) as engine:
                await engine.start(prompt="aio")
                events = engine.events()
                await host.within(TIMEOUT_S, until(events, log, SessionUpdated))
                await engine.send_text("tell me a long story about asyncio and trio hosts")
                first = await host.within(TIMEOUT_S, until(events, log, AudioOut))
                engine.audio_played(first.item_id, 15)  # the device is behind

                async def speak() -> None:
                    pcm = _tone(600) + bytes(2 * 24 * 800)
                    for i in range(0, len(pcm), 960):
                        engine.send_audio(AudioFrame(pcm[i : i + 960]))
                        await asyncio.sleep(0.02)

                talking = asyncio.ensure_future(speak())
                cut = await host.within(TIMEOUT_S, until(events, log, AudioInterrupted))
                await talking
                assert cut == AudioInterrupted(first.item_id, 15)
                await engine.close()
                with pytest.raises(ConversationNotRunning):
                    engine.audio_played(first.item_id, 30)

        run_on(host, scenario)
