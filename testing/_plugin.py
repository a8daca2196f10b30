"""The pytest plugin (entry point ``pytest11``): fixtures for a running duplex simulator.

Registered by duplex's packaging, so a host project's tests get ``duplex_simulator``,
``duplex_base_url``, ``duplex_api_key`` and ``duplex_simulator_config`` once duplex (with its
``simulator`` extra) is installed. Every fixture is function-scoped: each test gets a fresh
simulator (a few milliseconds), so scenarios, faults and session records never leak between
tests.

Invariants:
- loading the plugin imports neither the simulator nor aiortc (only a test that uses a fixture
  pays for them);
- the ``duplex_simulator`` marker is registered, so ``--strict-markers`` suites can use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ._handle import DEFAULT_API_KEY, SimulatorHandle, running_simulator

if TYPE_CHECKING:
    from duplex.simulator import SimulatorConfig

__all__ = [
    "duplex_api_key",
    "duplex_base_url",
    "duplex_simulator",
    "duplex_simulator_config",
]

_MARKER = "duplex_simulator"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**fields): SimulatorConfig fields for this test's duplex_simulator "
        "(e.g. seed=1, faults=FaultConfig(close_after_events=3))",
    )


@pytest.fixture
def duplex_simulator_config(request: pytest.FixtureRequest) -> SimulatorConfig:
    """The simulator's config: loopback, a free port, ``DEFAULT_API_KEY`` required, random ids;
    a ``@pytest.mark.duplex_simulator(**fields)`` marker overrides fields. Override the fixture
    itself for a project-wide default."""
    from duplex.simulator import SimulatorConfig

    fields: dict[str, object] = {"host": "127.0.0.1", "port": 0, "api_key": DEFAULT_API_KEY}
    for marker in reversed(list(request.node.iter_markers(_MARKER))):
        fields.update(marker.kwargs)
    return SimulatorConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture
def duplex_simulator(duplex_simulator_config: SimulatorConfig) -> Iterator[SimulatorHandle]:
    """A simulator serving for this test (see ``duplex.testing.SimulatorHandle``)."""
    with running_simulator(duplex_simulator_config) as handle:
        yield handle


@pytest.fixture
def duplex_base_url(duplex_simulator: SimulatorHandle) -> str:
    """``http://127.0.0.1:P/v1``: the ``base_url`` to give a realtime client."""
    return duplex_simulator.base_url


@pytest.fixture
def duplex_api_key(duplex_simulator: SimulatorHandle) -> str:
    """The API key the simulator expects."""
    return duplex_simulator.api_key or DEFAULT_API_KEY
