"""The network guard for every Python subprocess the test suite starts.

The root conftest puts this folder first on ``PYTHONPATH`` and names a log file in
``DUPLEX_NETGUARD_LOG``; Python imports ``sitecustomize`` at start-up, so a child process (a
simulator or load server, a console script, a benchmark client) runs under the same guard as
the suite and appends each blocked attempt to that file, which the suite reads back and
reports like its own. Without the variable (the folder on a path by accident) it does nothing.

The guard is installed when the child first imports ``socket``, not at start-up: nothing
reaches the network without that module, and a child that never imports it (the tests that
check what ``import duplex.protocol`` loads) keeps its module list as it would be.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

_LOG = os.environ.get("DUPLEX_NETGUARD_LOG")


def _install_guard() -> None:
    path = Path(__file__).resolve().parent.parent / "_netguard.py"
    spec = importlib.util.spec_from_file_location("_duplex_netguard", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    module.guard_this_process(_LOG)


class _GuardedSocketLoader(importlib.abc.Loader):
    """The stdlib ``socket`` loader, then the guard over the module it made."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        _install_guard()


class _OnSocketImport(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "socket":
            return None
        sys.meta_path.remove(self)  # once: the real finders locate the module
        spec = importlib.util.find_spec("socket")
        if spec is not None and spec.loader is not None:
            spec.loader = _GuardedSocketLoader(spec.loader)
        return spec


if _LOG:
    if "socket" in sys.modules:  # already imported during start-up
        _install_guard()
    else:
        sys.meta_path.insert(0, _OnSocketImport())
