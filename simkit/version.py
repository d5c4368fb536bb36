"""`version`: the installed version of simkit, in a module of its own.

Modules that record the version (manifests, ``--version``) import it from here rather than
from the package root, so that nothing inside the package imports ``simkit`` itself.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
