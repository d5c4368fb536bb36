"""`drawing`: chart files as PNG bytes, drawn in helper processes beside the work that
computes them.

A :class:`Chart` names a :mod:`simkit.plots` function, what it is given and the figure's
size: plain data, so that another process can draw it. :func:`png` draws one on its own
figure with matplotlib's Agg renderer (never ``pyplot``, never the caller's backend), laid
out by :func:`fit`; the same chart gives the same bytes in any process.

:class:`Drawers` is where :mod:`simkit.report` sends its charts. On Linux with two CPUs or
more they are drawn by two processes forked from a server process that imported matplotlib
and :mod:`simkit.plots` once (multiprocessing's ``forkserver``); ``simkit report`` starts
that server with :func:`start_server` before it imports anything else, so that the server
imports the drawing modules while the report imports the rest and reads the run, and the
report's own process never imports matplotlib. Elsewhere, or if a helper fails, a chart is
drawn in the caller's process, to the same bytes.

This module imports neither matplotlib nor pandas: only :func:`png` does, where it draws.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import sys
import threading
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simkit.blocks import cpus

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DPI", "Chart", "Drawers", "fit", "png", "start_server"]

DPI = 100
"""Dots per inch of every chart file."""
# Space left around a chart's drawing by `fit`, in inches (constrained layout's default).
FIT_PAD = 3 / 72
# Passes `fit` makes at most, and the least share of the figure it leaves the Axes.
_FIT_PASSES = 4
_FIT_LEAST = 0.05
# How close to the padded edges, in pixels, the drawing must come for `fit` to stop early.
_FIT_CLOSE = 0.5
# What the server imports once for every helper forked from it: all that drawing needs.
_PRELOAD = ["simkit.plots", "matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.transforms"]
# Helpers at most: the report has little left to compute once its charts are known, so two
# keep two CPUs busy.
_PROCESSES = 2


@dataclass(frozen=True)
class Chart:
    """One chart: the :mod:`simkit.plots` function that draws it, what it is given, and the
    figure size in inches."""

    plot: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    size: tuple[float, float]


def png(chart: Chart) -> bytes:
    """The chart drawn on its own figure with the Agg renderer, laid out by :func:`fit`, as
    PNG bytes.

    >>> import pandas as pd
    >>> degrees = pd.DataFrame({"users": [4, 2, 1]}, index=pd.Index([0, 1, 2], name="connections"))
    >>> png(Chart("degree_distribution", (degrees,), {}, (4.0, 3.0)))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    import simkit.plots as plots

    fig = Figure(figsize=chart.size, dpi=DPI)
    FigureCanvasAgg(fig)
    getattr(plots, chart.plot)(*chart.args, ax=fig.subplots(), **chart.kwargs)
    fit(fig)
    buffer = io.BytesIO()
    # No "Software" entry: the bytes must not change with matplotlib's version. zlib's
    # fastest level: a third less encoding, and smaller files than its default on these charts.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def _ticks(fig: Figure) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    """Where every Axes of `fig` has its ticks: what moving an Axes can change."""
    return [(tuple(a.get_xticks()), tuple(a.get_yticks())) for a in fig.axes]


def _beyond(fig: Figure, renderer: Any) -> bool:
    """Whether a text of an Axes of `fig` reaches outside that Axes."""
    for a in fig.axes:
        inside = a.bbox
        for text in a.texts:
            if text.get_visible():
                box = text.get_window_extent(renderer)
                if box.x0 < inside.x0 or box.x1 > inside.x1 or box.y0 < inside.y0 or box.y1 > inside.y1:
                    return True
    return False


def fit(fig: Figure, passes: int = _FIT_PASSES) -> int:
    """Move the Axes of `fig` so that they and everything drawn around them (titles, labels,
    tick labels, legends outside, a colorbar) fill the figure, `FIT_PAD` from its edges.

    What matplotlib's constrained layout does for these charts, at a third of its cost: on
    `baseline` that layout took 0.55 s of the nine charts' 1.75 s of drawing. The Axes keep
    their places relative to one another (a colorbar beside its heat map): their bounding
    box is stretched so that the box of all they draw meets the padded edges. Decorations
    keep their size in pixels, so one pass is exact unless moving an Axes changed its ticks
    (a longer axis can hold more), an Axes keeps its data's shape (equal scales) or a text in
    data coordinates reaches beyond its Axes (a long bar's label); then it measures again,
    up to `passes` times. Returns the passes measured.
    """
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    width, height = fig.bbox.width, fig.bbox.height
    pad = FIT_PAD * fig.dpi
    for a in fig.axes:
        if a.get_box_aspect() is not None and a.get_aspect() == "auto":
            # A box of a fixed shape (a colorbar's) within its place: it takes that box as its
            # place, and is stretched with the others from there (to within a few percent of
            # its shape), so that one pass fits it.
            a.apply_aspect()
            a.set_position(a.get_position(original=False))
            a.set_box_aspect(None)
    shaped = any(a.get_aspect() != "auto" for a in fig.axes)
    for done in range(1, passes + 1):
        ticks = _ticks(fig)
        drawn = Bbox.union([b for a in fig.axes if (b := a.get_tightbbox(renderer)) is not None])
        if done == 1:
            # A text placed in data coordinates beyond its Axes (a bar's label) moves with the
            # data's scale, not with the Axes' edge: measured again, as a shape is.
            shaped = shaped or _beyond(fig, renderer)
        off = (pad - drawn.x0, pad - drawn.y0, width - pad - drawn.x1, height - pad - drawn.y1)
        if done > 1 and max(map(abs, off)) < _FIT_CLOSE:
            return done
        area = Bbox.union([a.get_position() for a in fig.axes])
        fitted = Bbox.from_extents(
            area.x0 + off[0] / width,
            area.y0 + off[1] / height,
            area.x1 + off[2] / width,
            area.y1 + off[3] / height,
        )
        if fitted.width <= _FIT_LEAST or fitted.height <= _FIT_LEAST:
            return done  # labels wider than the figure: leave matplotlib's places
        sx, sy = fitted.width / area.width, fitted.height / area.height
        for a in fig.axes:
            at = a.get_position(original=True)
            a.set_position(
                (
                    fitted.x0 + (at.x0 - area.x0) * sx,
                    fitted.y0 + (at.y0 - area.y0) * sy,
                    at.width * sx,
                    at.height * sy,
                )
            )
        if not shaped and _ticks(fig) == ticks:
            return done
    return passes


def _helpers_here() -> bool:
    """Whether charts can be drawn in helper processes here: Linux (a server to fork from)
    with two CPUs or more."""
    return sys.platform == "linux" and "forkserver" in multiprocessing.get_all_start_methods() and cpus() >= 2


def start_server() -> None:
    """Start the server the drawing helpers are forked from, now, if there will be helpers:
    it imports matplotlib and :mod:`simkit.plots` while the caller imports the rest. A server
    already running is reused (then it may lack the drawing modules, and each helper imports
    them when it first draws)."""
    if not _helpers_here():
        return
    import multiprocessing.forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(_PRELOAD)
    with contextlib.suppress(OSError, RuntimeError):  # no server (no room for its socket, say)
        multiprocessing.forkserver.ensure_running()


def _watch(caller: int) -> None:
    """In each helper: end it when the process that asked for it ends, however that ends.

    A helper waits for work on a pipe whose other end it holds too, so it would never see
    the caller go; and the server lives as long as its helpers. A thread here waits on the
    caller's process (a pidfd) and ends the helper with it."""

    def wait() -> None:
        import select

        try:
            handle = os.pidfd_open(caller)
        except OSError:  # already gone
            os._exit(0)
        select.select([handle], [], [])
        os._exit(0)

    if hasattr(os, "pidfd_open"):
        threading.Thread(target=wait, name="simkit-drawing-watch", daemon=True).start()


class Drawers:
    """Charts drawn by helper processes where there are any, else here.

    >>> import pandas as pd
    >>> degrees = pd.DataFrame({"users": [4, 2, 1]}, index=pd.Index([0, 1, 2], name="connections"))
    >>> with Drawers(helpers=False) as drawers:  # no helper: every chart is drawn here
    ...     drawers.submit("a.png", Chart("degree_distribution", (degrees,), {}, (4.0, 3.0)))
    ...     drawers.result("a.png")[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """

    def __init__(self, helpers: bool = True, processes: int = _PROCESSES) -> None:
        self._charts: dict[str, Chart] = {}
        self._drawn: dict[str, Future[bytes]] = {}
        self._pool: Executor | None = None
        self._starting: threading.Thread | None = None
        self._broken = False
        if helpers and _helpers_here():
            try:
                self._pool = pool = _pool(processes)
            except (OSError, RuntimeError, ValueError):  # no server here: every chart drawn here
                return
            # Each helper starts now, not at its first chart; on a thread, as starting one
            # waits for the server to have imported what it preloads.
            self._starting = threading.Thread(
                target=_start, args=(pool, processes), name="simkit-drawing-start"
            )
            self._starting.start()

    def __enter__(self) -> Drawers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, name: str, chart: Chart) -> None:
        """Have `chart` drawn, beside the caller where there are helpers."""
        self._charts[name] = chart
        if self._pool is not None and not self._broken:
            try:
                self._drawn[name] = self._pool.submit(png, chart)
            except Exception:  # the pool broke (a helper died, or none could start): drawn here
                self._broken = True

    def result(self, name: str) -> bytes:
        """The PNG bytes of the chart submitted as `name`: a helper's, or drawn here if no
        helper drew it (none, or it failed)."""
        drawn = self._drawn.pop(name, None)
        if drawn is not None:
            try:
                return drawn.result()
            except Exception:  # the helper failed it (or died): draw it here, as it would
                pass
        return png(self._charts[name])

    def close(self) -> None:
        """Stop the helpers, once a chart still being drawn is done: no process outlives the
        caller's work (and its semaphores go with it)."""
        if self._starting is not None:
            self._starting.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _ready() -> None:
    """Nothing: the first task of each helper, which starts it."""


def _start(pool: Executor, processes: int) -> None:
    """Start the helpers; if they cannot start, the pool breaks and the charts are drawn
    in the caller's process."""
    try:
        for _ in range(processes):
            pool.submit(_ready)
    except Exception:  # the pool broke, was shut down, or could not fork: drawn here
        pass


def _pool(processes: int) -> Executor:
    from concurrent.futures import ProcessPoolExecutor

    start_server()
    context = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(processes, mp_context=context, initializer=_watch, initargs=(os.getpid(),))
