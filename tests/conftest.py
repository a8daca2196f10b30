"""The one conftest of the suite: hypothesis profiles and the network guard, for every folder.

Hypothesis profiles:

- ``ci`` (the default): no per-example deadline (CI machines stall) and a moderate example
  count, so the whole property suite stays well under a minute.
- ``dev``: fewer examples for a fast edit loop.
- ``thorough``: many examples, for hunting bugs locally.

Select one with ``HYPOTHESIS_PROFILE=thorough pytest``. ``tests/`` is a package and every
first-party import names ``duplex.*``, so nothing under ``tests/`` can shadow the library.

The network guard (``_netguard``, SPEC §8) is installed for the whole session before any test
module is imported: a resolution of, or a packet to, anything beyond this machine is blocked
and fails the test phase (setup, call or teardown) during which it was attempted, with the
target and the stack of every attempt. An attempt from a thread that outlived its test (aioice
keeps checking a closed call for a while) is reported by the phase running when it happens; one
made between tests fails the session. Tests that provoke attempts on purpose use the
``network_guard`` fixture's ``expect_blocked()``. Python subprocesses (simulator and load
servers, console scripts, benchmark clients) run under the guard too (``_netguard_site``, on
``PYTHONPATH``): their attempts are logged to a file and reported the same way.

Shared fixtures: ``self_signed`` (a self-signed certificate for 127.0.0.1/localhost with its
TLS contexts, from ``_support``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Generator
from pathlib import Path

import pytest
from hypothesis import settings

from ._netguard import Attempt, NetworkGuard
from ._support import SelfSignedCert, self_signed_cert

settings.register_profile("ci", deadline=None, max_examples=100)
settings.register_profile("dev", deadline=None, max_examples=20)
settings.register_profile("thorough", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_GUARD = pytest.StashKey[NetworkGuard]()


_CHILDREN_LOG = pytest.StashKey[Path]()
_SITE = Path(__file__).resolve().parent / "_netguard_site"


def pytest_configure(config: pytest.Config) -> None:
    guard = NetworkGuard()
    guard.install()
    config.stash[_GUARD] = guard
    # Every Python subprocess runs under a guard of its own that logs here (sitecustomize).
    fd, name = tempfile.mkstemp(prefix="duplex-netguard-", suffix=".jsonl")
    os.close(fd)
    config.stash[_CHILDREN_LOG] = Path(name)
    guard.watch(name)
    os.environ["DUPLEX_NETGUARD_LOG"] = name
    paths = [str(_SITE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)


def pytest_unconfigure(config: pytest.Config) -> None:
    guard = config.stash.get(_GUARD, None)
    if guard is not None:
        guard.uninstall()
    log = config.stash.get(_CHILDREN_LOG, None)
    if log is not None:
        log.unlink(missing_ok=True)


def _report(attempts: list[Attempt], phase: str) -> str:
    lines = [f"{len(attempts)} network attempt(s) beyond this machine during {phase}:"]
    lines += [attempt.describe() for attempt in attempts]
    return "\n".join(lines)


def _fail_on_attempts(item: pytest.Item, phase: str) -> None:
    attempts = item.config.stash[_GUARD].take()
    if attempts:
        pytest.fail(_report(attempts, phase), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        _fail_on_attempts(item, "setup")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        _fail_on_attempts(item, "the test")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        _fail_on_attempts(item, "teardown")


def pytest_sessionfinish(session: pytest.Session) -> None:
    guard = session.config.stash.get(_GUARD, None)
    attempts = guard.take() if guard is not None else []
    if attempts:
        print("\n" + _report(attempts, "no test (between tests or after the last one)"))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def network_guard(request: pytest.FixtureRequest) -> NetworkGuard:
    """The session's network guard (``expect_blocked()`` collects deliberate attempts)."""
    return request.config.stash[_GUARD]


@pytest.fixture
def self_signed(tmp_path: Path) -> SelfSignedCert:
    """A fresh self-signed certificate for ``127.0.0.1``/``localhost`` in ``tmp_path``."""
    return self_signed_cert(tmp_path)
