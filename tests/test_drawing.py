"""Tests of simkit.drawing: charts laid out whole inside their figures, the same bytes in any
process, and helper processes that never outlive their caller."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import simkit.analysis as analysis
import simkit.drawing as drawing
import simkit.plots as plots
import simkit.report as report
from simkit.drawing import Chart, Drawers, fit, png

needs_helpers = pytest.mark.skipif(not drawing._helpers_here(), reason="helpers need Linux and two CPUs")


def _charts(run_dir: Path) -> dict[str, Chart]:
    return dict(report._charts(report._Tables(analysis.load(run_dir)), 20))


def _figures(charts: dict[str, Chart]) -> Iterator[tuple[str, Figure]]:
    """Each chart on a figure laid out as :func:`png` lays it out."""
    for name, chart in charts.items():
        fig = Figure(figsize=chart.size, dpi=drawing.DPI)
        FigureCanvasAgg(fig)
        getattr(plots, chart.plot)(*chart.args, ax=fig.subplots(), **chart.kwargs)
        fit(fig)
        yield name, fig


@pytest.mark.parametrize("run", ["story", "tiny"])
def test_every_report_chart_is_drawn_whole_inside_its_figure(
    run: str, story_dir: Path, tiny_dir: Path
) -> None:
    for name, fig in _figures(_charts(story_dir if run == "story" else tiny_dir)):
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        drawn = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
        pad = drawing.FIT_PAD * fig.dpi
        # Within a pixel of the padded edges: nothing cut off, and no wide empty margin.
        assert drawn.x0 == pytest.approx(pad, abs=1), name
        assert drawn.y0 == pytest.approx(pad, abs=1), name
        assert drawn.x1 == pytest.approx(fig.bbox.width - pad, abs=1), name
        assert drawn.y1 == pytest.approx(fig.bbox.height - pad, abs=1), name


def test_a_long_bar_label_beyond_its_axes_stays_inside_the_figure() -> None:
    # The whole network's largest pair: its label reaches past the Axes' right edge.
    index = pd.MultiIndex.from_tuples([("bank-0015", "bank-0688"), ("bank-0591", "bank-0688")])
    candidates = pd.DataFrame(
        {"crosspod_unmet": [373_410, 193_775], "crosspod_users": [107_730, 88_488]}, index=index
    )
    (_, fig), *_ = _figures({"c.png": Chart("crosspod_candidates", (candidates,), {}, (8.0, 3.0))})
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    drawn = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
    assert drawn.x1 <= fig.bbox.width - drawing.FIT_PAD * fig.dpi + 1


def test_fit_measures_again_when_moving_changed_the_ticks() -> None:
    fig = Figure(figsize=(8.0, 4.5), dpi=drawing.DPI)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    ax.set_ylabel("a label\non three\nlines")
    ax.set_position((0.45, 0.45, 0.1, 0.1))  # a short axis: few ticks until it is stretched
    assert fit(fig) >= 2


def test_fit_leaves_labels_wider_than_the_figure_where_matplotlib_put_them() -> None:
    fig = Figure(figsize=(2.0, 2.0), dpi=drawing.DPI)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set_yticks([0, 1], ["a label far wider than the whole figure it is drawn in", "b"])
    before = ax.get_position().bounds
    assert fit(fig) == 1
    assert ax.get_position().bounds == before


def _degrees() -> Chart:
    degrees = pd.DataFrame({"users": [4, 2, 1]}, index=pd.Index([0, 1, 2], name="connections"))
    return Chart("degree_distribution", (degrees,), {}, (4.0, 3.0))


@needs_helpers
def test_helpers_draw_the_same_bytes_as_here(story_dir: Path) -> None:
    charts = _charts(story_dir)
    with Drawers() as drawers:
        assert drawers._pool is not None
        for name, chart in charts.items():
            drawers.submit(name, chart)
        for name, chart in charts.items():
            assert drawers.result(name) == png(chart), name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def _helper_pids(drawers: Drawers) -> list[int]:
    pool = drawers._pool
    assert pool is not None
    return sorted({pool.submit(os.getpid).result() for _ in range(8)})


@needs_helpers
def test_no_helper_outlives_close() -> None:
    drawers = Drawers()
    drawers.submit("a.png", _degrees())
    assert drawers.result("a.png").startswith(b"\x89PNG")
    pids = _helper_pids(drawers)
    drawers.close()
    assert not [p for p in pids if _alive(p)]


_CALLER = """
import os, sys, time
from simkit.drawing import Drawers
if __name__ == "__main__":
    drawers = Drawers()
    pids = {drawers._pool.submit(os.getpid).result() for _ in range(8)}
    print(" ".join(map(str, sorted(pids))), flush=True)
    time.sleep(60)
"""


@needs_helpers
def test_helpers_end_with_a_caller_that_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "caller.py"
    script.write_text(_CALLER, encoding="utf-8")
    # (Its stderr: the semaphores of a process killed are reported by multiprocessing.)
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as caller:
        try:
            assert caller.stdout is not None
            pids = [int(p) for p in caller.stdout.readline().split()]
            assert pids and all(_alive(p) for p in pids)
        finally:
            caller.kill()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if _alive(p)]


def test_without_helpers_every_chart_is_drawn_here() -> None:
    with Drawers(helpers=False) as drawers:
        assert drawers._pool is None
        drawers.submit("a.png", _degrees())
        assert drawers.result("a.png") == png(_degrees())


def test_without_a_server_every_chart_is_drawn_here(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_server(processes: int) -> None:
        raise OSError("no room for the server's socket")

    monkeypatch.setattr(drawing, "_helpers_here", lambda: True)
    monkeypatch.setattr(drawing, "_pool", no_server)
    with Drawers() as drawers:
        assert drawers._pool is None
        drawers.submit("a.png", _degrees())
        assert drawers.result("a.png") == png(_degrees())


def test_helpers_that_cannot_start_leave_every_chart_here(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unstartable:
        def submit(self, *args: object) -> None:
            raise OSError("cannot fork")

        def shutdown(self, **kwargs: object) -> None:
            pass

    monkeypatch.setattr(drawing, "_helpers_here", lambda: True)
    monkeypatch.setattr(drawing, "_pool", lambda processes: Unstartable())
    with Drawers() as drawers:
        drawers.submit("a.png", _degrees())
        assert drawers.result("a.png") == png(_degrees())
