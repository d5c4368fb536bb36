"""Tests of simkit.report and `simkit report`: the files, their bytes, and the numbers shown."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import networkx as nx
import pandas as pd
import pytest

import simkit.analysis as analysis
import simkit.report as report
from simkit import graph, replay_run
from simkit.cli import main
from simkit.drawing import Chart, Drawers
from simkit.errors import RunDirError
from simkit.report import CHARTS, Report, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def story_report(story_dir: Path) -> Report:
    return write_report(story_dir)


def test_report_writes_every_chart_and_the_summary_into_run_dir_report(
    story_report: Report, story_dir: Path
) -> None:
    out = story_dir / "report"
    assert story_report.summary == out / "report.md"
    assert sorted(p.name for p in out.iterdir()) == sorted([*CHARTS, "report.md"])
    assert [p.name for p in story_report.files] == [*CHARTS, "report.md"]


@pytest.mark.parametrize("chart", CHARTS)
def test_charts_are_pngs_without_version_or_timestamp(story_report: Report, chart: str) -> None:
    data = (story_report.summary.parent / chart).read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert b"Software" not in data and b"matplotlib" not in data.lower()
    assert b"tIME" not in data


def test_summary_shows_the_headline_numbers_and_every_chart(story_report: Report) -> None:
    text = story_report.summary.read_text(encoding="utf-8")
    assert text.startswith("# simkit report: run run\n")
    for line in [
        "| events | 46 |",
        "| answers 200 | 20 |",
        "| answers 403 | 5 |",
        "| records PENDING | 2 |",
        "| records ACCEPTED | 2 |",
        "| implicit pairs | 4 |",
        "| acceptance rate | 60.0 % |",
        "| median time to accept | 1 min |",
        "| re-request rate | 25.0 % |",
        "| users connected across pods | 28.6 % |",
        "3 pods, 7 users, 46 action events from 2023-11-14 22:13 to 2023-11-14 22:58 UTC.",
        "4 stored records: 2 PENDING, 2 ACCEPTED, 0 REJECTED.",
        "Re-request rate: 25.0 %; median time to accept: 1 min; never answered by the end of the "
        "run: 2 of 7 requests (28.6 %).",
        "| period (UTC) | length | crossPod at its start | requests sent / day | accepted / day | "
        "403 crosspod_disabled / day |",
        # 4 requests, 2 accepted, 1 refused in 0.948 days; 2 refused in 2 minutes; 3, 1 and 1 in 73 min.
        "| 2023-11-14 00:00 – 2023-11-14 22:45 | 22 h 45 min | as at the start | 4.2 | 2.1 | 1.1 |",
        "| 2023-11-14 22:45 – 2023-11-14 22:47 | 2 min | disabled 1 pod pair | 0.0 | 0.0 | 1,440.0 |",
        "| 2023-11-14 22:47 – 2023-11-15 00:00 | 1 h 13 min | enabled 1 pod pair | 59.4 | 19.8 | 19.8 |",
        "This run has no demand table (`demand.parquet`; only `simkit run` writes one): the wishes "
        "behind its events, and which of them were never sent, are unknown.",
        "| accepted connections per user | 0.571 |",
        "| most bridging pod | n/a |",
    ]:
        assert line in text.splitlines(), line
    assert (
        "2 policy events (2 changed the relation) in 2 stages. The run is cut at each stage: each row is "
        "the whole network from one stage to the next"
    ) in text
    assert "; this run has no demand table, so its wishes are unknown (see `crosspod_periods` in " in text
    for chart in CHARTS:
        assert f"]({chart})" in text


def test_summary_counts_agree_with_their_nouns(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree("data/samples/story", run)
    policy = (run / "policy.csv").read_text(encoding="utf-8").splitlines()
    (run / "policy.csv").write_text("\n".join(policy[:2]) + "\n", encoding="utf-8")
    replay_run(run)
    text = write_report(run).summary.read_text(encoding="utf-8")
    assert "1 policy event (1 changed the relation) in 1 stage. The run is cut" in text
    assert "1 stages" not in text and "1 policy events" not in text


@pytest.mark.parametrize("top", [1, 2])
def test_top_limits_the_pod_graph_and_the_heat_map(
    story_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, top: int
) -> None:
    drawn: dict[str, object] = {}
    charts_of = report._charts

    def spy(*args: object, **kwargs: object) -> Iterator[tuple[str, Chart]]:
        for name, chart in charts_of(*args, **kwargs):  # type: ignore[arg-type]
            drawn[name] = chart.args[0]
            yield name, chart

    # What the charts are drawn from (some are drawn in a helper process).
    monkeypatch.setattr(report, "_charts", spy)
    write_report(story_dir, tmp_path / "r", top=top)
    g = drawn["pod-graph.png"]
    assert isinstance(g, nx.Graph)
    other = f"other ({3 - top} pod{'s' if 3 - top > 1 else ''})"
    assert [g.nodes[p]["name"] for p in g.nodes] == [*["pod-20", "pod-10", "pod-30"][:top], other]
    assert graph.OTHER in g
    matrix = drawn["pod-heatmap.png"]
    assert isinstance(matrix, pd.DataFrame)
    assert matrix.index.tolist() == [*["pod-20", "pod-10", "pod-30"][:top], g.nodes[graph.OTHER]["name"]]


def test_summary_names_no_absolute_path(story_report: Report, story_dir: Path) -> None:
    assert str(story_dir) not in story_report.summary.read_text(encoding="utf-8")
    assert str(Path.home()) not in story_report.summary.read_text(encoding="utf-8")


def test_same_run_same_bytes(story_dir: Path, story_report: Report, tmp_path: Path) -> None:
    again = write_report(story_dir, tmp_path / "again")
    for first, second in zip(story_report.files, again.files, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


def test_charts_drawn_here_or_in_the_helpers_are_the_same_bytes(
    story_dir: Path, story_report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The story report drew its charts in the helpers (on two CPUs or more); now all here.
    monkeypatch.setattr(report, "Drawers", lambda processes: Drawers(helpers=False))
    alone = write_report(story_dir, tmp_path / "alone")
    for first, second in zip(story_report.files, alone.files, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


def test_a_chart_the_helpers_cannot_draw_is_drawn_here(
    story_dir: Path, story_report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        def submit(self, *args: object) -> Future[bytes]:
            failed: Future[bytes] = Future()
            failed.set_exception(BrokenProcessPool("a helper died"))
            return failed

        def shutdown(self, **kwargs: object) -> None:
            pass

    def broken(processes: int) -> Drawers:
        drawers = Drawers(helpers=False)
        drawers._pool = Broken()  # type: ignore[assignment]
        return drawers

    monkeypatch.setattr(report, "Drawers", broken)
    again = write_report(story_dir, tmp_path / "again")
    for first, second in zip(story_report.files, again.files, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


@pytest.mark.parametrize(("one_from", "processes"), [(10**9, 2), (1, 1)])
def test_a_large_run_is_drawn_by_one_helper(
    story_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_from: int, processes: int
) -> None:
    asked: list[int] = []

    def spy(processes: int) -> Drawers:
        asked.append(processes)
        return Drawers(helpers=False)

    monkeypatch.setattr(report, "_ONE_DRAWER_FROM", one_from)
    monkeypatch.setattr(report, "Drawers", spy)
    write_report(story_dir, tmp_path / "r")
    assert asked == [processes]


def test_headline_text_lines_up(story_report: Report) -> None:
    lines = story_report.headline_text().splitlines()
    assert lines[0] == "events:                      46"
    assert lines[-1] == "users connected across pods: 28.6 %"
    assert len({line.index(line.split()[-1]) for line in lines if line.endswith("%")}) == 1


def test_report_of_outputs_written_elsewhere(tmp_path: Path) -> None:
    replay_run("data/samples/story", out=tmp_path / "outputs")
    report = write_report(
        "data/samples/story", tmp_path / "report", outputs=tmp_path / "outputs", graphml=True
    )
    names = sorted(p.name for p in (tmp_path / "report").iterdir())
    assert names == sorted([*CHARTS, "report.md", "users.graphml", "pods.graphml"])
    assert report.headline["events"] == 46
    assert not (Path("data/samples/story") / "report").exists()


def test_no_report_without_outputs(tmp_path: Path) -> None:
    shutil.copytree("data/samples/story", tmp_path / "run")
    with pytest.raises(RunDirError, match=r"outcomes\.parquet: missing"):
        write_report(tmp_path / "run")
    assert not (tmp_path / "run" / "report").exists()


def test_the_scenario_names_the_report(story_dir: Path, tmp_path: Path) -> None:
    manifest = (story_dir / "manifest.json").read_text(encoding="utf-8")
    outputs = tmp_path / "outputs"
    shutil.copytree(story_dir, outputs, ignore=shutil.ignore_patterns("report"))
    (outputs / "manifest.json").write_text(
        manifest.replace('"seed": null', '"scenario": {"name": "story"}, "seed": 7'), encoding="utf-8"
    )
    report = write_report(story_dir, tmp_path / "named", outputs=outputs)
    assert report.summary.read_text(encoding="utf-8").startswith("# simkit report: scenario story, seed 7\n")


def test_report_leaves_pyplot_alone(story_dir: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from simkit.report import write_report\n"
        f"write_report({str(story_dir)!r}, {str(tmp_path / 'r')!r})\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


# -- the command line -------------------------------------------------------------------------


def test_cli_report(story_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(story_dir), "--out", str(tmp_path / "cli"), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "acceptance rate:             60.0 %\n" in out
    assert out.endswith(f"wrote:       {tmp_path / 'cli' / 'report.md'} and {len(CHARTS)} more files\n")
    assert (tmp_path / "cli" / "pod-heatmap.png").is_file()


def test_cli_report_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err == f"simkit: error: {tmp_path / 'nowhere'}: no such run folder\n"


@pytest.mark.parametrize("top", ["0", "-3", "many"])
def test_cli_report_refuses_a_bad_top(story_dir: Path, top: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(story_dir), "--top", top])
    assert exit_.value.code == 2
    assert "argument --top: expected a positive integer" in capsys.readouterr().err


def test_write_report_refuses_a_bad_top(story_dir: Path) -> None:
    with pytest.raises(ValueError, match="top must be at least 1"):
        write_report(story_dir, top=0)


def test_each_derived_table_is_computed_once_per_report(
    story_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simkit.analysis as analysis

    calls: dict[str, int] = {}
    names = (
        "_moves_of_log",  # the record history
        "_asked_of",  # the requests with their answers
        "_record_pods_of",
        "_crosspod_history_of",
        "_crosspod_periods",
        "_status_timeline",
    )
    for name in names:
        compute = getattr(analysis, name)

        def counted(*args: object, _name: str = name, _compute: object = compute) -> object:
            calls[_name] = calls.get(_name, 0) + 1
            return _compute(*args)  # type: ignore[operator]

        monkeypatch.setattr(analysis, name, counted)
    waits: list[object] = []
    compute_waits = analysis._waits

    def counted_waits(frames: object, kind: object = None) -> object:
        waits.append(kind)
        return compute_waits(frames, kind)  # type: ignore[arg-type]

    monkeypatch.setattr(analysis, "_waits", counted_waits)
    write_report(story_dir, tmp_path / "report")
    assert calls == dict.fromkeys(names, 1)
    # The waits of accepted requests serve both the median and the time-to-answer chart.
    assert sorted(waits) == sorted([analysis.Kind.ACCEPTED, analysis.Kind.REJECTED])


def test_report_builds_no_user_graph_unless_graphml_is_asked(
    story_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[object] = []
    monkeypatch.setattr(graph, "user_graph", lambda frames, **kw: built.append(frames) or nx.DiGraph())
    write_report(story_dir, tmp_path / "report")
    assert built == []


def test_progress_bar_names_the_stages_only_when_asked(
    story_dir: Path, story_report: Report, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = write_report(story_dir, tmp_path / "shown", progress=True)
    err = capsys.readouterr().err
    assert "reading the run" in err and "/13 [" in err
    for first, second in zip(story_report.files, shown.files, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name
    write_report(story_dir, tmp_path / "quiet")  # stderr is not a terminal here
    assert capsys.readouterr().err == ""


# -- a real run, with the wishes behind its events ---------------------------------------------


@pytest.fixture(scope="module")
def tiny_report(tiny_dir: Path) -> Report:
    return write_report(tiny_dir)


def _table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of the rows of the Markdown table whose header starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_report_ranks_pod_pairs_by_wishes_crosspod_alone_left_unsent(
    tiny_dir: Path, tiny_report: Report
) -> None:
    frames = analysis.load(tiny_dir)
    ranked = analysis.with_pod_names(analysis.crosspod_candidates(frames), frames)
    text = tiny_report.summary.read_text(encoding="utf-8")
    rows = _table_rows(text, "| pod pair | wishes never sent for want of crossPod |")
    assert len(rows) == min(20, len(ranked)) > 1
    expected = [
        [
            f"{a} – {b}",
            str(r["crosspod_unmet"]),
            str(r["crosspod_users"]),
            str(r["wishes"]),
            str(r["sent"] + r["deferred"]),
        ]
        for (a, b), r in zip(ranked.index, ranked.to_dict("records"), strict=False)
    ]
    assert rows == expected[: len(rows)]
    assert [int(r[1]) for r in rows] == sorted((int(r[1]) for r in rows), reverse=True)
    table = analysis.unmet_demand(frames)
    assert f"Of {table['wishes'].sum():,} wishes to connect, {table['unmet'].sum():,} were never sent" in text
    opened = table.loc[table["crosspod"], "unmet"].sum()
    others = table["unmet"].sum() - opened - table["crosspod_unmet"].sum()
    assert f"{opened:,} of them were between pods that have crossPod by the end of the run" in text
    assert f"and {others:,} between pods without it but with a user lacking the external entitlement." in text
    assert f"crossPod alone stood in the way of the other {table['crosspod_unmet'].sum():,} (both" in text
    assert "![pod pairs without crossPod by wishes never sent](crosspod-candidates.png)" in text
    assert (tiny_report.summary.parent / "crosspod-candidates.png").read_bytes().startswith(PNG_SIGNATURE)


def test_report_shows_each_period_between_crosspod_stages(tiny_dir: Path, tiny_report: Report) -> None:
    frames = analysis.load(tiny_dir)
    periods = analysis.crosspod_periods(frames)
    text = tiny_report.summary.read_text(encoding="utf-8")
    assert "; the wishes never sent are those made in the period that were never sent at all (see " in text
    rows = _table_rows(text, "| period (UTC) |")
    assert [r[:3] for r in rows] == [
        ["2024-03-04 – 2024-03-11", "7 d", "as at the start"],
        ["2024-03-11 – 2024-03-18", "7 d", f"enabled {len(frames.policy)} pod pairs"],
    ]
    for row, period in zip(rows, periods.to_dict("records"), strict=True):
        per_day = [f"{period[m] / 7:,.1f}" for m in ("requests", "accepted", "crosspod_disabled")]
        share = f"{100 * period['unmet'] / period['wishes']:.1f} %"
        assert row[3:] == [*per_day, f"{period['unmet'] / 7:,.1f} ({share})"]


def test_a_report_of_a_run_with_demand_computes_its_tables_once(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: dict[str, int] = {}
    for name in ("_unmet_demand", "_crosspod_periods", "_moves_of_log"):
        compute = getattr(analysis, name)

        def counted(*args: object, _name: str = name, _compute: object = compute) -> object:
            calls[_name] = calls.get(_name, 0) + 1
            return _compute(*args)  # type: ignore[operator]

        monkeypatch.setattr(analysis, name, counted)
    write_report(tiny_dir, tmp_path / "report")
    assert calls == {"_unmet_demand": 1, "_crosspod_periods": 1, "_moves_of_log": 1}


def test_a_report_with_demand_gives_the_same_bytes_again(
    tiny_dir: Path, tiny_report: Report, tmp_path: Path
) -> None:
    again = write_report(tiny_dir, tmp_path / "again")
    for first, second in zip(tiny_report.files, again.files, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


def test_the_program_ends_at_once_with_its_output_whole(story_dir: Path, tmp_path: Path) -> None:
    # `python -m simkit` exits without tearing the interpreter down: what it printed (to a
    # pipe, buffered) and wrote is all there, and a failure still exits 1 with its one line.
    done = subprocess.run(
        [sys.executable, "-m", "simkit", "report", str(story_dir), "--out", str(tmp_path / "report")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "users connected across pods:" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("wrote:") and done.stdout.endswith("files\n")
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted([*CHARTS, "report.md"])
    failed = subprocess.run(
        [sys.executable, "-m", "simkit", "report", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1 and failed.stdout == ""
    assert len(failed.stderr.splitlines()) == 1 and str(tmp_path / "missing") in failed.stderr
