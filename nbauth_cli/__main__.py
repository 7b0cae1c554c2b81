"""``python -m nbauth_cli``: the console script's entry point, for tests and benchmarks."""

from __future__ import annotations

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
