"""`simkit.io`: files, one module per format.

:mod:`simkit.io.runs` reads and writes run folders (``connections.md`` §5),
:mod:`simkit.io.commit` makes each write of a run folder one locked transaction (the
manifest is the commit record), :mod:`simkit.io.atomic` writes any file so that it is
complete or absent, and :mod:`simkit.io.datafeed` reads and writes §6 datafeed files.
These are adapters at the edge: they import the core and pyarrow, and nothing in the core
imports them.
"""

__all__: list[str] = []
