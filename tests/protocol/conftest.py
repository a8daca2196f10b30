"""Hypothesis profiles for the protocol tests.

- ``ci`` (the default): no per-example deadline (CI machines stall) and a moderate example
  count, so the whole protocol property suite stays well under 40 s.
- ``dev``: fewer examples for a fast edit loop.
- ``thorough``: many examples, for hunting bugs locally.

Select one with ``HYPOTHESIS_PROFILE=thorough pytest tests/protocol``.

These live here rather than in ``tests/conftest.py`` on purpose: ``tests/`` has no
``__init__.py``, so a conftest there makes pytest (default ``prepend`` import mode) put
``tests/`` on ``sys.path``, and then ``tests/protocol`` (a namespace package) shadows the real
``protocol`` package for every test module.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=100)
settings.register_profile("dev", deadline=None, max_examples=20)
settings.register_profile("thorough", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
