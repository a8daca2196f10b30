"""A simulator on its own trio loop in a background thread, driven from any test.

``running_simulator`` starts ``duplex.simulator.open_simulator`` in a thread and yields a
``SimulatorHandle``; leaving the block stops it and joins the thread. The handle's methods are
safe to call from any thread that is not the simulator's, including one running its own trio
or asyncio loop: scenario and fault knobs are a deque append and an attribute assignment (both
atomic) that the server reads only when a session opens, and the waits go through
``trio.from_thread`` with the simulator's token.

Invariants:
- the block is entered only once the server accepts connections, and a failure to start (a
  busy port) is raised in the caller's thread, bare;
- leaving the block always stops the server and joins its thread (bounded), even when the
  test failed; nothing outlives it;
- importing this module does not import the simulator (aiortc is loaded on first use), so the
  pytest plugin costs nothing in a run that never asks for a simulator.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

import trio

if TYPE_CHECKING:
    from duplex.simulator import FaultConfig, Scenario, SessionRecord, Simulator, SimulatorConfig

__all__ = ["DEFAULT_API_KEY", "SimulatorHandle", "running_simulator"]

#: the key the fixtures configure; clients must send it (or an ``ek_`` key minted by the handle)
DEFAULT_API_KEY: Final = "sk-duplex-test"
_JOIN_S: Final = 10.0


class SimulatorHandle:
    """A running simulator, seen from the test's thread. See the module docstring."""

    def __init__(self, simulator: Simulator, token: trio.lowlevel.TrioToken) -> None:
        self.simulator = simulator
        self._token = token
        assert simulator.base_url is not None
        #: ``http://127.0.0.1:P/v1``: the ``base_url`` for WebSocket and WebRTC clients
        self.base_url: str = simulator.base_url
        #: ``ws://127.0.0.1:P/v1/realtime`` (``wss://`` under TLS; add ``?model=…`` or
        #: ``?intent=…``)
        self.websocket_url: str = "ws" + self.base_url.removeprefix("http") + "/realtime"
        #: ``http://127.0.0.1:P/v1/realtime/calls``: where a WebRTC client posts its offer
        self.calls_url: str = self.base_url + "/realtime/calls"
        #: the key clients must send (``None``: the simulator accepts any non-empty key)
        self.api_key: str | None = simulator.config.api_key

    def __repr__(self) -> str:
        return f"<SimulatorHandle {self.base_url} sessions={len(self.simulator.sessions)}>"

    # ------------------------------------------------------------------ scripting

    def add_scenario(self, scenario: Scenario) -> None:
        """Queue a scripted scenario; the next session (or WebRTC call) to open claims it."""
        self.simulator.add_scenario(scenario)

    def set_faults(self, faults: FaultConfig) -> None:
        """Faults for every session and call opened from now on."""
        self.simulator.faults = faults

    @property
    def sessions(self) -> list[SessionRecord]:
        """The sessions opened so far (a snapshot), oldest first."""
        return list(self.simulator.sessions)

    def wait_for_session(self, count: int = 1, *, timeout: float = 10.0) -> SessionRecord:
        """Block until ``count`` sessions have opened; the ``count``-th.

        It blocks the calling thread: in an async test run it in a worker thread
        (``await trio.to_thread.run_sync(sim.wait_for_session)``, ``asyncio.to_thread``)."""

        async def wait() -> SessionRecord:
            with trio.fail_after(timeout):
                return await self.simulator.wait_for_session(count)

        record: SessionRecord = trio.from_thread.run(wait, trio_token=self._token)
        return record

    def wait_for_event(
        self,
        record: SessionRecord,
        type_: str,
        count: int = 1,
        *,
        sent: bool = False,
        timeout: float = 10.0,
    ) -> None:
        """Block until the session received ``count`` client events of ``type_`` (with
        ``sent``: sent that many server events of it). Same threading note as above."""

        async def wait() -> None:
            with trio.fail_after(timeout):
                await record.wait_for(type_, count, sent=sent)

        trio.from_thread.run(wait, trio_token=self._token)

    def mint_client_secret(self, session: dict[str, Any] | None = None) -> str:
        """An ``ek_`` key (``POST /v1/realtime/client_secrets``) whose calls start with
        ``session`` — what a host's backend does for a browser page."""
        import httpx

        body = {"session": session or {"type": "realtime"}}
        headers = {"Authorization": f"Bearer {self.api_key or DEFAULT_API_KEY}"}
        response = httpx.post(
            self.base_url + "/realtime/client_secrets", json=body, headers=headers, timeout=10
        )
        response.raise_for_status()
        value: str = response.json()["value"]
        return value


@contextmanager
def running_simulator(config: SimulatorConfig | None = None) -> Iterator[SimulatorHandle]:
    """A simulator serving on a background thread for the duration of the block."""
    from duplex.simulator import open_simulator

    ready = threading.Event()
    started: list[SimulatorHandle] = []
    failed: list[BaseException] = []
    stop: list[trio.Event] = []

    async def main() -> None:
        try:
            async with open_simulator(config) as sim:
                stop.append(trio.Event())
                started.append(SimulatorHandle(sim, trio.lowlevel.current_trio_token()))
                ready.set()
                await stop[0].wait()
        except BaseException as exc:
            failed.append(exc)
            raise
        finally:
            ready.set()

    def run() -> None:
        # The error is handed to the caller's thread (``failed``); do not print it twice.
        try:
            trio.run(main)
        except BaseException:
            return

    thread = threading.Thread(target=run, name="duplex-simulator", daemon=True)
    thread.start()
    ready.wait()
    if not started:
        thread.join(_JOIN_S)
        raise failed[0] if failed else RuntimeError("the simulator did not start")
    handle = started[0]
    try:
        yield handle
    finally:
        trio.from_thread.run_sync(stop[0].set, trio_token=handle._token)
        thread.join(_JOIN_S)
        if thread.is_alive():  # pragma: no cover - a hung shutdown is a simulator bug
            raise RuntimeError(f"the simulator thread did not stop in {_JOIN_S:g} s")
        if failed:
            raise failed[0]
