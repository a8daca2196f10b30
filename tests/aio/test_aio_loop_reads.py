"""In guest mode the asyncio loop reads a WebSocket conversation itself (engine/_loop_reads.py):
the engine's socket is watched with ``add_reader`` while the conversation runs and never
after, the thread mechanism leaves reading to trio, and what must go back to trio's reader
(a keepalive's pong, a full host queue) still works."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any, TypeVar

import pytest
import trio
from outcome import Outcome

from duplex.aio import EVENT_WINDOW, Mechanism, open_engine
from duplex.aio._engine import _LoopWatch
from duplex.engine import (
    AudioFrame,
    ConversationClosed,
    ConversationNotRunning,
    ConversationResumed,
    EngineConfig,
    OutputTranscriptDone,
    ReconnectPolicy,
    ResponseDone,
    SessionUpdated,
)
from duplex.engine._loop_reads import RECEIVE, LoopReads
from duplex.simulator import FaultConfig, SimulatorConfig
from duplex.transports import Inbound, TransportEnded, WebSocketTransport, connect_websocket

from .._support import wait_until
from ..transports._ws_server import RawServer, client_frames, frame, serve_raw, upgrade_then
from ._hosts import TRIO, Host, poll_until, run_on, simulator_thread, until, visible_types

T = TypeVar("T")

TIMEOUT_S = 20


class WatchingLoop(asyncio.SelectorEventLoop):
    """A selector loop that records the descriptors watched through the public
    ``add_reader`` (the loop's own self-pipe uses a private door) and counts the calls."""

    def __init__(self) -> None:
        super().__init__()
        self.watched: set[int] = set()
        self.ever: set[int] = set()
        self.calls = 0

    def add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:  # type: ignore[override]
        def counted() -> None:
            self.calls += 1
            callback(*args)

        self.watched.add(fd)
        self.ever.add(fd)
        super().add_reader(fd, counted)

    def remove_reader(self, fd: Any) -> bool:
        self.watched.discard(fd)
        return super().remove_reader(fd)


@contextmanager
def watching_runner() -> Iterator[tuple[asyncio.Runner, list[WatchingLoop]]]:
    loops: list[WatchingLoop] = []

    def factory() -> WatchingLoop:
        loops.append(WatchingLoop())
        return loops[-1]

    with asyncio.Runner(loop_factory=factory) as runner:
        yield runner, loops


async def text_turn(config: EngineConfig, mechanism: Mechanism, loop: WatchingLoop) -> list[Any]:
    log: list[Any] = []
    async with open_engine(config, mechanism=mechanism) as engine:
        events = engine.events()
        async with asyncio.timeout(TIMEOUT_S):
            await engine.start(prompt="be brief")
            await until(events, log, SessionUpdated)
            watched_while_running = set(loop.watched)
            await engine.send_text("hello")
            await until(events, log, ResponseDone)
            await engine.close()
            await until(events, log, ConversationClosed)
    log.append(watched_while_running)
    return log


def test_a_guest_engine_reads_its_websocket_on_the_loop_and_stops_watching_at_the_end() -> None:
    with simulator_thread() as server, watching_runner() as (runner, loops):
        log = runner.run(text_turn(server.config(), "guest", loops[0]))
        loop = loops[0]
        watched_while_running = log.pop()
        assert len(watched_while_running) == 1  # the conversation's socket
        assert loop.calls >= 3  # the handshake's answers and the reply came that way
        assert loop.watched == set()  # nothing left registered after the block
        assert [e.text for e in log if isinstance(e, OutputTranscriptDone)] == ["You said: hello."]


def test_the_thread_mechanism_leaves_reading_to_trio() -> None:
    with simulator_thread() as server, watching_runner() as (runner, loops):
        log = runner.run(text_turn(server.config(), "thread", loops[0]))
        assert log.pop() == set()
        assert loops[0].ever == set()
        assert any(isinstance(e, ResponseDone) for e in log)


def test_keepalive_pongs_are_read_while_the_loop_reads_an_idle_conversation() -> None:
    # liveness 0.6 s: a ping after 0.3 s of silence, its pong due within 0.3 s. A pong the
    # loop's reader took and lost would end the connection within 0.6 s.
    with simulator_thread() as server, watching_runner() as (runner, loops):

        async def scenario() -> list[Any]:
            log: list[Any] = []
            config = server.config(liveness_timeout=0.6)
            async with open_engine(config) as engine:
                events = engine.events()
                async with asyncio.timeout(TIMEOUT_S):
                    await engine.start()
                    await until(events, log, SessionUpdated)
                    for _ in range(4):  # 2 s idle: several pings, each answered
                        with suppress(TimeoutError):
                            log.append(await asyncio.wait_for(events.__anext__(), 0.5))
                    await engine.send_text("still there?")
                    await until(events, log, ResponseDone)
            return log

        log = runner.run(scenario())
        assert loops[0].calls > 0
        assert not any(isinstance(e, ConversationClosed) for e in log)
        assert [e.text for e in log if isinstance(e, OutputTranscriptDone)] == [
            "You said: still there?."
        ]


def test_a_host_that_stops_reading_stops_the_loops_reading_and_loses_nothing() -> None:
    # One batch of room in the engine's queue, the consumer away: the loop's reader meets a
    # full queue, hands the batch to trio's reader (which waits for room) and stops watching;
    # reading resumes once the host reads again, and the events are those the trio host gets.
    paused: list[set[int]] = []

    def make(server: Any, loop: WatchingLoop | None) -> Callable[[Host], Any]:
        async def scenario(host: Host) -> list[Any]:
            log: list[Any] = []
            config = server.config(event_queue_size=1)
            async with host.open_engine(config) as engine:
                events = engine.events()
                await host.within(TIMEOUT_S, engine.start(prompt="be brief"))
                await host.within(TIMEOUT_S, until(events, log, SessionUpdated))
                await engine.send_text("a longer question, for a reply of many events")
                if loop is not None:
                    # The hand-over window and the engine's one batch are full.
                    await host.within(
                        TIMEOUT_S,
                        poll_until(lambda: engine.statistics().queue_depths["host"] >= 1),
                    )
                    paused.append(set(loop.watched))
                await host.within(TIMEOUT_S, until(events, log, ResponseDone))
            return log

        return scenario

    with simulator_thread(SimulatorConfig(speech_transcript="ok")) as server:
        trio_log = run_on(TRIO, make(server, None))
        with watching_runner() as (runner, loops):
            aio_log = runner.run(make(server, loops[0])(Host("asyncio", "asyncio")))
    assert paused == [set()]  # nothing watched while the host was away
    assert visible_types(aio_log) == visible_types(trio_log)
    done = [e.text for e in aio_log if isinstance(e, OutputTranscriptDone)]
    assert done == [e.text for e in trio_log if isinstance(e, OutputTranscriptDone)]
    assert len(aio_log) > EVENT_WINDOW // 2  # enough to have filled what the host allows


def run_guest(
    trio_main: Callable[[asyncio.AbstractEventLoop], Awaitable[T]], *, uvloop: bool = False
) -> T:
    """``trio_main(loop)`` as a trio guest of a fresh asyncio (or uvloop) loop."""

    async def host() -> T:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Outcome[T]] = loop.create_future()
        trio.lowlevel.start_guest_run(
            trio_main,
            loop,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=done.set_result,
            host_uses_signal_set_wakeup_fd=True,
        )
        return (await done).unwrap()

    if uvloop:
        import uvloop as uvloop_module

        with asyncio.Runner(loop_factory=uvloop_module.new_event_loop) as runner:
            return runner.run(host())
    return asyncio.run(host())


@asynccontextmanager
async def read_by_the_loop(
    loop: asyncio.AbstractEventLoop, talk: Callable[[trio.SocketStream], Awaitable[object]]
) -> AsyncIterator[tuple[WebSocketTransport, LoopReads, RawServer, trio.Nursery]]:
    """A WebSocket to a raw server that runs ``talk``, and ``LoopReads`` on ``loop``."""
    async with (
        serve_raw(upgrade_then(b""), talk=talk) as server,
        trio.open_nursery() as nursery,
    ):
        transport = await connect_websocket(
            nursery, server.url(), {"authorization": "Bearer sk-test"}, ping_interval=None
        )
        reads = LoopReads(_LoopWatch(loop), trio.lowlevel.current_trio_token().run_sync_soon)
        yield transport, reads, server, nursery
        await transport.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "control", [frame(0x8, b"\x03\xe8bye"), frame(0x9, b"alive?")], ids=["close", "ping"]
)
def test_a_control_frame_read_with_a_message_goes_back_to_trio_at_once(control: bytes) -> None:
    # The server's last message and a close (or ping) in one write, then it waits for our
    # answer: the socket is drained, so the loop will never call again. The reader must be
    # handed back at once, get the message first, then answer the control frame.
    async def trio_main(loop: asyncio.AbstractEventLoop) -> list[Any]:
        go = trio.Event()

        async def talk(stream: trio.SocketStream) -> None:
            await go.wait()
            await stream.send_all(frame(0x1, b"last") + control)

        async with read_by_the_loop(loop, talk) as (transport, reads, server, nursery):
            got: list[list[Inbound]] = []
            go.set()
            with trio.fail_after(TIMEOUT_S):
                assert await reads.read(transport, got.append, lambda: True) is RECEIVE

                async def rest() -> None:
                    while not got or not isinstance(got[-1][-1], TransportEnded):
                        got.append(await transport.receive_batch())

                nursery.start_soon(rest)
                conn = server.conns[0]
                if control[0] == 0x89:  # the ping: answered
                    await wait_until(lambda: (0xA, b"alive?") in client_frames(conn.received))
                else:  # the close: reported (and replied to)
                    await wait_until(lambda: len(got) >= 2)
        return got

    got = run_guest(trio_main)
    assert got[0] == ["last"]
    if control[0] == 0x88:
        assert got[1] == [TransportEnded("closed", 1000, None)]


def test_audio_sent_around_a_session_expiry_is_held_not_refused() -> None:
    # The batch that ends the connection resumably is read on the loop: from that moment the
    # conversation is reconnecting for every call (a frame is held for the next connection),
    # never "not running" (which duplex.aio would then remember past ConversationResumed).
    frame_20ms = AudioFrame(b"\x00\x00" * 480, 24000, 1)
    faults = FaultConfig(session_max_duration_s=0.3)
    with simulator_thread(SimulatorConfig(faults=faults)) as server:

        async def scenario() -> tuple[int, str]:
            refused = 0
            config = server.config(reconnect=ReconnectPolicy(initial_backoff=0))
            async with open_engine(config) as engine:
                events = engine.events()
                stop = asyncio.Event()

                async def mic() -> None:
                    nonlocal refused
                    while not stop.is_set():
                        try:
                            engine.send_audio(frame_20ms)
                        except ConversationNotRunning:
                            refused += 1
                        await asyncio.sleep(0)

                async with asyncio.timeout(TIMEOUT_S):
                    await engine.start()
                    task = asyncio.create_task(mic())
                    end = await until(events, [], ConversationResumed, ConversationClosed)
                    stop.set()
                    await task
                    assert engine.send_audio(frame_20ms) in (True, False)  # does not raise
            return refused, type(end).__name__

        refused, end = asyncio.run(scenario())
    assert end == "ConversationResumed"
    assert refused == 0


@pytest.mark.parametrize("size", [10, 100_000], ids=["short", "longer-than-a-read"])
@pytest.mark.parametrize("uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_a_reset_right_behind_the_last_message_reaches_the_reader(uvloop: bool, size: int) -> None:
    # uvloop calls a reader once on POLLERR and then stops watching: the callback must read
    # until nothing is left (also past a read that brought only part of a message), or the
    # reset behind the message would never be seen.
    if uvloop:
        pytest.importorskip("uvloop")
    message = b"w" * size
    if size < 126:
        data = frame(0x1, message)
    else:  # a 64-bit length: longer than one 64 KiB read
        data = bytes([0x81, 127]) + size.to_bytes(8, "big") + message

    async def trio_main(loop: asyncio.AbstractEventLoop) -> tuple[object, list[list[Inbound]]]:
        go, gone = trio.Event(), trio.Event()

        async def talk(stream: trio.SocketStream) -> None:
            await go.wait()
            await stream.send_all(data)
            # A reset (RST), as a crashed server or a middlebox sends it.
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            stream.socket.close()
            gone.set()

        async with read_by_the_loop(loop, talk) as (transport, reads, _, _):
            got: list[list[Inbound]] = []
            go.set()
            await gone.wait()  # the message and the reset are in this side's kernel (loopback)
            with trio.fail_after(TIMEOUT_S):
                result = await reads.read(transport, got.append, lambda: True)
                if result is RECEIVE:
                    got.append(await transport.receive_batch())
        return result, got

    result, got = run_guest(trio_main, uvloop=uvloop)
    assert result is RECEIVE
    assert got[0] == [message.decode()]
    ended = got[-1][-1]
    assert isinstance(ended, TransportEnded)
    assert ended.reason == "error"
