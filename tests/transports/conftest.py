"""Test configuration for ``tests/transports``.

Makes the repository root importable when the project is not installed into the virtualenv
(``make test`` installs it; a bare ``.venv/bin/pytest`` run does not).
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
