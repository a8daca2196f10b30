"""``python -m duplex.cli``: the console script without its installed wrapper."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
