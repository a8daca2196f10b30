"""The one conftest of the suite: hypothesis profiles for every folder.

- ``ci`` (the default): no per-example deadline (CI machines stall) and a moderate example
  count, so the whole property suite stays well under a minute.
- ``dev``: fewer examples for a fast edit loop.
- ``thorough``: many examples, for hunting bugs locally.

Select one with ``HYPOTHESIS_PROFILE=thorough pytest``. ``tests/`` is a package and every
first-party import names ``duplex.*``, so nothing under ``tests/`` can shadow the library.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=100)
settings.register_profile("dev", deadline=None, max_examples=20)
settings.register_profile("thorough", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
