"""The package layout and the layering rules of SPEC §1, checked over the whole tree.

- Every first-party import names ``duplex.*`` (or is relative): a bare ``import protocol`` would
  load a second copy of a module under another name, so a class could exist twice.
- ``transports`` never imports ``engine``; ``engine`` never imports ``simulator``; the
  simulator uses ``transports`` only through its public names.
- The core install stays light: ``import duplex.engine`` loads no WebRTC stack.
- Outside ``protocol`` nothing branches on a dialect's version (SPEC §2): the runtime packages
  never name ``ProtocolVersion.V1``/``V2``; they ask ``dialect(version)`` for a capability.
- A host application with its own ``protocol.py``/``engine.py``/``benchmarks/`` next to it still
  imports ``duplex.engine``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_FOLDERS = (
    "protocol",
    "transports",
    "engine",
    "simulator",
    "benchmarks",
    "cli",
    "testing",
    "aio",
)
FIRST_PARTY_TOP_NAMES = frozenset(PACKAGE_FOLDERS) | {"duplex_cli", "duplex_demo"}
SKIPPED_DIRS = frozenset({".venv", "build", ".git", "node_modules", "results"})


def _python_files() -> list[Path]:
    return sorted(
        path
        for path in REPO_ROOT.rglob("*.py")
        if not SKIPPED_DIRS.intersection(path.relative_to(REPO_ROOT).parts)
    )


def _absolute_imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(REPO_ROOT)}:{line}: {module}"
        for path in sorted((REPO_ROOT / folder).rglob("*.py"))
        for line, module in _absolute_imports(path)
        if any(module == name or module.startswith(name + ".") for name in forbidden)
    ]


def test_no_bare_first_party_import_anywhere_in_the_tree() -> None:
    files = _python_files()
    assert len(files) > 50, "the scan found too few files to be looking at the tree"
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line}: import {module}"
        for path in files
        for line, module in _absolute_imports(path)
        if module.split(".")[0] in FIRST_PARTY_TOP_NAMES
    ]
    assert not offenders, "first-party imports must name duplex.*:\n" + "\n".join(offenders)


def test_scanner_sees_a_bare_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import protocol\nfrom engine._engine import Engine\nfrom . import x\n")
    assert _absolute_imports(sample) == [(1, "protocol"), (2, "engine._engine")]


def test_transports_never_import_the_engine_or_the_simulator() -> None:
    assert not _offenders("transports", ("duplex.engine", "duplex.simulator", "duplex.aio"))


def test_engine_never_imports_the_simulator_or_benchmarks() -> None:
    assert not _offenders("engine", ("duplex.simulator", "duplex.benchmarks", "duplex.cli"))


def test_protocol_imports_no_other_duplex_package() -> None:
    others = tuple(f"duplex.{name}" for name in PACKAGE_FOLDERS if name != "protocol")
    assert not _offenders("protocol", others)


def test_simulator_uses_transports_only_through_public_names() -> None:
    private = [
        hit
        for hit in _offenders("simulator", ("duplex.transports",))
        if hit.rsplit(": ", 1)[1] != "duplex.transports"
    ]
    assert not private


def _loaded_modules(code: str, cwd: Path) -> set[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def test_importing_the_engine_loads_no_webrtc_stack(tmp_path: Path) -> None:
    loaded = _loaded_modules("import duplex.engine", tmp_path)
    heavy = sorted(
        name for name in loaded if name.split(".")[0] in {"aiortc", "av", "numpy", "hypercorn"}
    )
    assert "duplex.engine" in loaded
    assert not heavy, f"`import duplex.engine` loaded {heavy}"


@pytest.mark.parametrize("shadow", ["protocol.py", "engine.py", "transports.py", "benchmarks"])
def test_a_host_with_its_own_module_of_the_same_name_imports_duplex(
    tmp_path: Path, shadow: str
) -> None:
    target = tmp_path / shadow
    if shadow.endswith(".py"):
        target.write_text("raise ImportError('the host module was imported instead')\n")
    else:
        target.mkdir()
        (target / "__init__.py").write_text("raise ImportError('host package imported')\n")
    loaded = _loaded_modules(
        "from duplex.engine import AudioFrame, EngineConfig, open_engine", tmp_path
    )
    assert "duplex.protocol" in loaded


def test_the_runtime_packages_never_branch_on_a_protocol_version() -> None:
    # An attribute access ``ProtocolVersion.V1``/``.V2`` in engine, transports or aio is a
    # version check (or a hard-coded dialect); capabilities come from ``dialect(version)``.
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
        for folder in ("engine", "transports", "aio")
        for path in sorted((REPO_ROOT / folder).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "ProtocolVersion"
        and node.attr != "__members__"
        and not (path.name == "_config.py" and node.attr == "V2")  # the default's value
    ]
    assert offenders == []
