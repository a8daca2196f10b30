"""The one mapping from what leaves the engine's tasks to what a host sees (``host_exception``):
each row of its table."""

from __future__ import annotations

import trio

from duplex.engine import ConversationStartError, EngineError
from duplex.engine._boundary import host_exception
from duplex.transports import ConnectError

URL = "ws://127.0.0.1:1/v1/realtime"


def _cancelled() -> trio.Cancelled:
    caught: list[trio.Cancelled] = []

    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            try:
                await trio.lowlevel.checkpoint()
            except trio.Cancelled as exc:
                caught.append(exc)
                raise

    trio.run(main)
    return caught[0]


def test_interrupts_win_over_everything() -> None:
    interrupt = KeyboardInterrupt()
    group = BaseExceptionGroup("g", [ValueError("host"), interrupt])
    assert host_exception(group, host_error=ValueError("other")) is interrupt


def test_the_hosts_own_exception_leaves_as_itself() -> None:
    mine = ValueError("host bug")
    group = BaseExceptionGroup("g", [mine, _cancelled()])
    assert host_exception(group, host_error=mine) is mine


def test_an_engine_error_leaves_as_itself() -> None:
    error = ConversationStartError("refused")
    assert host_exception(ExceptionGroup("g", [error])) is error


def test_a_cancelled_start_raises_the_cancellation() -> None:
    cancelled = _cancelled()
    group = BaseExceptionGroup("g", [cancelled])
    assert host_exception(group, start_url=URL, connect_timeout=1.0) is cancelled


def test_a_transport_error_during_start_is_a_start_error_with_its_cause() -> None:
    cause = ConnectError("HTTP 401")
    error = host_exception(ExceptionGroup("g", [cause]), start_url=URL, connect_timeout=1.0)
    assert isinstance(error, ConversationStartError)
    assert error.__cause__ is cause
    assert error.url == URL


def test_a_start_timeout_names_the_setting() -> None:
    error = host_exception(trio.TooSlowError(), start_url=URL, connect_timeout=3.0)
    assert isinstance(error, ConversationStartError)
    assert "3 s" in str(error)
    assert "connect_timeout" in str(error)


def test_anything_else_from_an_engine_task_is_an_internal_engine_error() -> None:
    bug = RuntimeError("boom")
    error = host_exception(ExceptionGroup("g", [bug]))
    assert type(error) is EngineError
    assert error.__cause__ is bug
