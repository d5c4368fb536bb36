"""`simkit.io`: files, one module per format.

:mod:`simkit.io.runs` reads and writes run folders (``connections.md`` §5) and
:mod:`simkit.io.atomic` writes any file so that it is complete or absent. These are adapters
at the edge: they import the core and pyarrow, and nothing in the core imports them.
"""

__all__: list[str] = []
