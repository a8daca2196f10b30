"""What crosses the host boundary: exceptions leave ``open_engine`` as themselves (never as
exception groups), calls after the block raise ``EngineClosed``, a missing key fails before any
connection, start errors keep their cause and say where and how long, and ``HostEvent`` is a
closed union a type checker can use."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest
import trio

import duplex.engine
from duplex.engine import (
    ConversationStartError,
    EngineClosed,
    EngineConfig,
    HostEvent,
    UnsupportedByDialect,
    open_engine,
)
from duplex.simulator import SimulatorConfig, open_simulator
from duplex.transports import TransportError

from ._engine_helpers import API_KEY, sim_config


async def test_failed_start_is_caught_by_except_around_the_block() -> None:
    async with open_simulator(SimulatorConfig(api_key=API_KEY)) as sim:
        config = sim_config(sim, api_key="sk-wrong-key-0123456789abcdef")
        caught: ConversationStartError | None = None
        with trio.fail_after(10):
            try:
                async with open_engine(config) as engine:
                    await engine.start(prompt="hi")
            except ConversationStartError as exc:
                caught = exc
    assert caught is not None
    assert caught.status == 401
    assert isinstance(caught.__cause__, TransportError)
    assert caught.url is not None
    assert caught.url.startswith("ws://127.0.0.1")
    assert caught.url in str(caught)
    assert "sk-wrong" not in str(caught)


async def test_host_exception_leaves_the_block_as_itself() -> None:
    with pytest.raises(ValueError, match="host bug") as info:
        async with open_engine(EngineConfig(api_key=API_KEY)):
            raise ValueError("host bug")
    assert not isinstance(info.value, BaseExceptionGroup)


async def test_keyboard_interrupt_in_the_block_leaves_as_keyboard_interrupt() -> None:
    with pytest.raises(KeyboardInterrupt):
        async with open_engine(EngineConfig(api_key=API_KEY)):
            raise KeyboardInterrupt


async def _fail_mid_conversation(config: EngineConfig) -> None:
    async with open_engine(config) as engine:
        await engine.start(prompt="hi")
        await engine.send_text("hello")
        raise LookupError("mid-conversation")


async def test_host_exception_while_a_conversation_runs_leaves_as_itself() -> None:
    async with open_simulator() as sim:
        with trio.fail_after(10), pytest.raises(LookupError, match="mid-conversation"):
            await _fail_mid_conversation(sim_config(sim))


async def test_calls_after_the_block_raise_engine_closed() -> None:
    async with open_engine(EngineConfig(api_key=API_KEY)) as engine:
        pass
    with pytest.raises(EngineClosed):
        await engine.start(prompt="late")
    with pytest.raises(EngineClosed):
        await engine.send_text("late")
    with pytest.raises(EngineClosed):
        engine.send_audio(duplex.engine.AudioFrame(b"\0\0" * 480))
    with pytest.raises(EngineClosed):
        await engine.close()
    # The event stream simply ends.
    assert [event async for event in engine.events()] == []


@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
@pytest.mark.parametrize("key", [None, "", "   "])
async def test_missing_key_fails_before_connecting(
    transport: typing.Literal["websocket", "webrtc"], key: str | None
) -> None:
    # A listening socket that would see any connection attempt.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        config = EngineConfig(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=key, transport=transport
        )
        async with open_engine(config) as engine:
            with pytest.raises(ConversationStartError) as info:
                await engine.start(prompt="hi")
        message = str(info.value)
        assert "OPENAI_API_KEY" in message
        assert "api_key=" in message
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    finally:
        listener.close()


async def test_connect_timeout_names_the_url_and_the_timeout() -> None:
    # Accepts TCP but never answers the upgrade.
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        config = EngineConfig(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY, connect_timeout=0.3
        )
        with trio.fail_after(10):
            async with open_engine(config) as engine:
                with pytest.raises(ConversationStartError) as info:
                    await engine.start(prompt="hi")
    finally:
        listener.close()
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "0.3 s" in message
    assert info.value.__cause__ is not None


async def test_text_to_a_transcription_session_is_unsupported() -> None:
    async with (
        open_simulator() as sim,
        open_engine(sim_config(sim, mode="transcription")) as engine,
    ):
        with trio.fail_after(10):
            await engine.start()
            with pytest.raises(UnsupportedByDialect):
                await engine.send_text("hello")


def test_host_event_union_lists_exactly_the_exported_event_classes() -> None:
    members = set(typing.get_args(HostEvent))
    assert len(members) > 20
    for cls in members:
        assert cls.__name__ in duplex.engine.__all__, cls
        assert getattr(duplex.engine, cls.__name__) is cls


def test_mypy_checks_attribute_access_on_host_events(tmp_path: Path) -> None:
    host = tmp_path / "host.py"
    host.write_text(
        textwrap.dedent(
            """
            from duplex.engine import Engine, ResponseDone

            async def main(engine: Engine) -> None:
                async for event in engine.events():
                    if isinstance(event, ResponseDone):
                        print(event.response_id)
                    print(event.no_such_field)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(host)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no_such_field" in result.stdout
    assert "response_id" not in result.stdout
