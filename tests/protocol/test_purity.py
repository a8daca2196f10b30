"""``duplex.protocol`` is sans-IO (SPEC §1): it may import only the standard library, attrs,
cattrs, orjson and pybase64, and never an event loop, a socket library or a clock."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from duplex import protocol

PACKAGE_DIR = Path(protocol.__file__).parent
REPO_ROOT = PACKAGE_DIR.parent

# The SPEC §1 list (exact module names), plus the I/O libraries of the rest of the tree and
# the stdlib modules that open sockets or run loops. ``_socket`` is deliberately absent:
# typing_extensions (a cattrs dependency) imports the C module without using the network.
FORBIDDEN_AT_RUNTIME = frozenset(
    {
        "trio",
        "trio_websocket",
        "aiortc",
        "av",
        "asyncio",
        "httpx",
        "httpcore",
        "anyio",
        "h11",
        "wsproto",
        "hypercorn",
        "websockets",
        "aiohttp",
        "requests",
        "urllib3",
        "socket",
        "ssl",
        "selectors",
        "http.client",
        "urllib.request",
        "duplex.engine",
        "duplex.transports",
        "duplex.simulator",
    }
)
THIRD_PARTY_ALLOWED = frozenset({"attrs", "attr", "cattrs", "orjson", "pybase64"})
# Stdlib modules the package must not use even though they are "just stdlib": I/O, event
# loops, threads, processes and clocks/id sources (time and ids are parameters, SPEC §1).
STDLIB_FORBIDDEN = frozenset(
    {
        "asyncio",
        "socket",
        "ssl",
        "select",
        "selectors",
        "threading",
        "multiprocessing",
        "concurrent",
        "subprocess",
        "http",
        "urllib.request",
        "time",
        "random",
        "secrets",
        "uuid",
        "importlib",
    }
)


def test_importing_protocol_loads_no_event_loop_socket_or_transport_module() -> None:
    code = "import json, sys\nimport duplex.protocol\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    loaded = set(json.loads(result.stdout))
    assert "duplex.protocol" in loaded
    offenders = sorted(
        name
        for name in loaded
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_AT_RUNTIME)
    )
    assert not offenders, f"`import duplex.protocol` pulled in {offenders}"


def test_spec_named_modules_are_checked_by_their_exact_names() -> None:
    assert {"trio", "trio_websocket", "aiortc", "av", "asyncio"} <= FORBIDDEN_AT_RUNTIME


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``; relative imports skipped."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            found.append((node.lineno, "__import__"))
    return found


def _allowed(module: str) -> bool:
    top = module.split(".")[0]
    if module == "__future__":
        return True
    if top in THIRD_PARTY_ALLOWED:
        return True
    if top not in sys.stdlib_module_names:
        return False
    parts = module.split(".")
    prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return not (prefixes & STDLIB_FORBIDDEN)


def test_protocol_sources_import_only_stdlib_attrs_cattrs_and_orjson() -> None:
    sources = sorted(PACKAGE_DIR.glob("*.py"))
    assert len(sources) > 5, sources
    offenders = [
        f"{path.name}:{line}: {module}"
        for path in sources
        for line, module in _imports(path)
        if not _allowed(module)
    ]
    assert not offenders, "forbidden imports in protocol/:\n" + "\n".join(offenders)


def test_import_scanner_flags_forbidden_imports() -> None:
    assert _allowed("urllib.parse")
    assert _allowed("orjson")
    assert not _allowed("urllib.request")
    assert not _allowed("trio")
    assert not _allowed("asyncio.tasks")
    assert not _allowed("time")
    assert not _allowed("trio_websocket")
