"""`python -m simkit`: the command line, see :mod:`simkit.cli`."""

from __future__ import annotations

import sys

from simkit.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
