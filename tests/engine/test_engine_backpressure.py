"""A slow host: structural events are never lost and arrive in order later, the engine's
queues stay bounded (it stops reading the network instead of buffering), and host audio that
arrives faster than it can be sent is dropped and counted (peer-libraries.md §7 #27)."""

from __future__ import annotations

from typing import Any

import trio
import trio.lowlevel

from duplex.engine import (
    AudioFrame,
    EngineConfig,
    OutputTranscriptDelta,
    SessionUpdated,
    open_engine,
)
from duplex.simulator import Scenario, open_simulator

from ._engine_helpers import (
    API_KEY,
    MemoryServer,
    PeerHandle,
    host_events,
    of_type,
    poll_until,
    sim_config,
    wire,
)

IN_HAND = 1  # the batch held by the parser/session-state task, blocked on the host send


def _quiet_peer(_handle: PeerHandle, _event: dict[str, Any]) -> list[str]:
    return []


def _deltas(events: list[Any]) -> list[str]:
    return [e.delta for e in events if isinstance(e, OutputTranscriptDelta)]


async def test_slow_host_loses_nothing_and_engine_stops_reading_memory() -> None:
    burst, chunk, queue = 5000, 25, 4
    config = EngineConfig(api_key=API_KEY, event_queue_size=queue)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _quiet_peer)
            async with open_engine(config, transport_factory=server) as engine:
                await engine.start()
                handle = server.peers[0]
                for i in range(0, burst, chunk):
                    for j in range(i, i + chunk):
                        handle.peer.send_text_nowait(wire(OutputTranscriptDelta(f"{j} ", "it")))
                    await trio.lowlevel.checkpoint()
                await trio.sleep(0.2)  # the host is busy elsewhere

                stats = engine.statistics()
                transport = handle.client.statistics()
                assert stats.queue_depths["host"] <= queue
                bound = (queue + IN_HAND) * transport.largest_batch
                assert stats.server_events <= bound, (stats, transport)
                assert stats.server_events < burst  # the rest waits on the "network"
                assert transport.messages_in == burst

                async with host_events(engine) as events:
                    await events.until(
                        lambda e: (
                            isinstance(e, OutputTranscriptDelta) and e.delta == f"{burst - 1} "
                        )
                    )
                    assert _deltas(events.log) == [f"{i} " for i in range(burst)]
            nursery.cancel_scope.cancel()


async def test_slow_host_over_websocket_keeps_queues_bounded_and_order() -> None:
    burst = 4000
    deltas = tuple(
        {
            "type": "response.output_audio_transcript.delta",
            "response_id": "resp_1",
            "item_id": "item_1",
            "output_index": 0,
            "content_index": 0,
            "delta": f"{i} ",
        }
        for i in range(burst)
    )
    async with open_simulator() as sim:
        sim.add_scenario(Scenario(on_connect=deltas))
        config = sim_config(sim, event_queue_size=2)
        with trio.fail_after(30):
            async with open_engine(config) as engine:
                await engine.start()
                record = await sim.wait_for_session()
                await record.wait_for("session.update")
                await trio.sleep(0.5)  # the host does not read
                stats = engine.statistics()
                assert stats.queue_depths["host"] <= 2
                assert stats.server_events < burst, stats  # it stopped reading
                async with host_events(engine) as events:
                    await events.until(
                        lambda e: (
                            isinstance(e, OutputTranscriptDelta) and e.delta == f"{burst - 1} "
                        )
                    )
                    assert _deltas(events.log) == [f"{i} " for i in range(burst)]
                assert engine.statistics().parse_failures == 0


async def test_audio_faster_than_the_queue_drains_is_dropped_and_counted() -> None:
    config = EngineConfig(api_key=API_KEY, audio_queue_size=8)
    frame = AudioFrame(b"\x01\x00" * 480, 24000, 1)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = MemoryServer(nursery, _quiet_peer)
            async with open_engine(config, transport_factory=server) as engine:
                await engine.start()
                # 1000 frames without yielding: the audio actor cannot drain meanwhile.
                results = [engine.send_audio(frame) for _ in range(1000)]
                # The queue holds 8; one more may go straight to the parked audio actor.
                accepted = sum(results)
                assert accepted in (8, 9)
                assert results == [True] * accepted + [False] * (1000 - accepted)
                stats = engine.statistics()
                assert stats.audio_frames_in == accepted
                assert stats.audio_frames_dropped == 1000 - accepted
                assert stats.queue_depths["audio_in"] == 8
                # Once the queue drains, frames are accepted again and reach the wire.
                handle = server.peers[0]
                await poll_until(
                    lambda: (
                        sum('"input_audio_buffer.append"' in t for t in handle.received) >= accepted
                    )
                )
                assert engine.send_audio(frame) is True
                assert engine.statistics().audio_frames_dropped == 1000 - accepted
            nursery.cancel_scope.cancel()


async def test_session_events_still_flow_after_a_slow_host_catches_up() -> None:
    """After the backlog drains the conversation is healthy: a new turn works."""
    async with open_simulator() as sim:
        with trio.fail_after(15):
            async with open_engine(sim_config(sim, event_queue_size=1)) as engine:
                await engine.start()
                await engine.send_text("one")
                await engine.send_text("two")
                await trio.sleep(0.3)
                async with host_events(engine) as events:
                    await events.until(
                        lambda e: isinstance(e, OutputTranscriptDelta) and "two" in e.delta
                    )
                    await engine.send_text("three")
                    await events.until(
                        lambda e: isinstance(e, OutputTranscriptDelta) and "three" in e.delta
                    )
                    assert [e for e in events.log if of_type(SessionUpdated)(e)]
