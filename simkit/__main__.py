"""`python -m simkit`: the command line, see :mod:`simkit.cli`."""

from __future__ import annotations

from simkit.cli import run

__all__: list[str] = []

if __name__ == "__main__":
    run()
