"""duplex's local realtime model server: protocol-faithful, deterministic, fault-injectable.

Public surface:

- ``SimulatorConfig`` / ``FaultConfig``: how it listens, how the scripted model behaves, which
  faults to inject.
- ``Simulator``: the server object (it owns its sockets: ``_http``) with the per-session records
  (``sessions``), WebRTC ``calls``, ``add_scenario`` and the mutable ``faults`` knob.
- ``serve_simulator`` (``await nursery.start(serve_simulator, cfg)`` → base URL),
  ``open_simulator`` (async context manager yielding a started ``Simulator``) and
  ``run_server`` (for ``duplex serve``: prints ``listening on http://H:P``);
  ``SimulatorBindError`` when the address cannot be bound (one-line message).
- ``add_serve_arguments`` / ``run_serve`` / ``config_from_args``: ``duplex serve``'s flags and
  runner, for the console script.
- ``Scenario`` / ``ScenarioStep``: scripted "expect → emit / close" steps for tests;
  ``SessionRecord`` / ``RecordedEvent``: what a session received.
- ``ScriptedModel``: the sans-IO model itself, for unit tests.
- ``synthesize`` / ``tone``: the deterministic audio helpers tests use to make "speech".

See ``_server`` for routes and dialect selection, ``_model`` for the scripted behaviour and
strictness rules (and the modules it is layered on), ``_session`` for fault injection.
"""

from __future__ import annotations

from ._audio import synthesize, tone
from ._config import FaultConfig, GarbageKind, IdGenerator, SimulatorConfig
from ._input_audio import MIN_COMMIT_MS
from ._model import ScriptedModel
from ._run import open_simulator, run_server, serve_simulator
from ._scenario import RecordedEvent, Scenario, ScenarioStep, SessionRecord
from ._serve_cli import add_serve_arguments, config_from_args, run_serve
from ._server import Simulator, SimulatorBindError
from ._wire import Rejection

__all__ = [
    # configuration
    "FaultConfig",
    "GarbageKind",
    "IdGenerator",
    "SimulatorConfig",
    # the server
    "Simulator",
    "SimulatorBindError",
    "open_simulator",
    "run_server",
    "serve_simulator",
    # duplex serve
    "add_serve_arguments",
    "config_from_args",
    "run_serve",
    # scripted tests
    "RecordedEvent",
    "Rejection",
    "Scenario",
    "ScenarioStep",
    "SessionRecord",
    # the sans-IO model and audio helpers
    "MIN_COMMIT_MS",
    "ScriptedModel",
    "synthesize",
    "tone",
]
