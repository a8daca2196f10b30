"""duplex.testing — run the duplex simulator inside a host application's own test suite.

Installed with duplex, this is also a pytest plugin (entry point ``pytest11``): any project
with duplex installed gets the fixtures below without configuration.

- ``duplex_simulator`` (fixture): a running simulator for one test, as a ``SimulatorHandle``:
  ``base_url`` (``http://127.0.0.1:P/v1``, for WebSocket and WebRTC alike), ``websocket_url``,
  ``calls_url``, ``api_key``; ``add_scenario`` (scripted turns), ``set_faults``,
  ``wait_for_session``, ``mint_client_secret``; ``simulator`` is the ``Simulator`` itself.
- ``duplex_base_url`` / ``duplex_api_key`` (fixtures): the two values a client needs.
- ``duplex_simulator_config`` (fixture): the ``SimulatorConfig`` used; override it, or mark a
  test ``@pytest.mark.duplex_simulator(seed=1, faults=FaultConfig(...))``.
- ``running_simulator(config)``: the same handle as a context manager, without pytest.

The simulator runs on its own trio loop in a background thread, so the fixtures serve sync,
trio, asyncio and anyio tests alike. See docs/testing.md for a complete example.
"""

from __future__ import annotations

from ._handle import DEFAULT_API_KEY, SimulatorHandle, running_simulator

__all__ = [
    "DEFAULT_API_KEY",
    "SimulatorHandle",
    "running_simulator",
]
