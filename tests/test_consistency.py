"""Run folders that cannot lie: crashes, interrupts, edited inputs and two writers at once.

Every test looks at what the user sees (exit status, the one line on stderr) and at what is
on disk afterwards: the complete old run or the complete new one, never a mix, and no
temporary file left behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import simkit.io.commit
import simkit.io.runs
from simkit.cli import main
from simkit.errors import RunDirError
from simkit.io.commit import JOURNAL, LOCK, RunFolderTransaction, lock, settle
from simkit.io.datafeed import export_datafeed
from simkit.io.runs import verify_run
from simkit.pipeline import replay_run, simulate
from simkit.report import write_report
from simkit.serve.pod import load_source
from tests.conftest import one_line

SCENARIO = "data/scenarios/tiny.toml"
CRASH = "SIMKIT_TEST_CRASH_AFTER_RENAME"
RUN_RENAMES = 10  # the journal, then 8 tables (demand among them) and the manifest
REPLAY_RENAMES = 4  # the journal, outcomes, connections, manifest
REPORT_RENAMES = 10  # the journal, 8 charts and the summary


def _digest(folder: Path) -> dict[str, str]:
    """Every file of `folder` (not below it) and its SHA-256, hidden files included."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def _simkit(*args: str, crash: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH}
    if crash is not None:
        env[CRASH] = str(crash)
    return subprocess.run(
        [sys.executable, "-m", "simkit", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two complete runs of the tiny scenario (seeds 1 and 2), each never changed again."""
    root = tmp_path_factory.mktemp("runs")
    simulate(SCENARIO, root / "old", seed=1, progress=False)
    simulate(SCENARIO, root / "new", seed=2, progress=False)
    return {"old": root / "old", "new": root / "new"}


@pytest.fixture
def old_run(runs: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(runs["old"], tmp_path / "run"))


# -- crashes between the renames ------------------------------------------------------------


@pytest.mark.parametrize("k", range(1, RUN_RENAMES + 1))
def test_run_overwrite_killed_after_each_rename(
    k: int, old_run: Path, runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    killed = _simkit("run", SCENARIO, "--out", str(old_run), "--overwrite", "--seed", "2", crash=k)
    assert killed.returncode == 99, killed.stderr
    assert (old_run / JOURNAL).exists()  # the new run is committed, not all in place yet
    # The next command finishes the swap: the folder is the complete new run.
    assert main(["validate", str(old_run)]) == 0
    assert "valid" in capsys.readouterr().out
    assert _digest(old_run) == _digest(runs["new"])


@pytest.mark.parametrize("k", range(1, REPLAY_RENAMES + 1))
def test_in_place_replay_killed_after_each_rename(
    k: int, old_run: Path, runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # The inputs of the second run replace the first run's: its outputs are now stale.
    for table in ("pods", "users", "crosspod", "policy", "events"):
        shutil.copy(runs["new"] / f"{table}.parquet", old_run / f"{table}.parquet")
    assert main(["validate", str(old_run)]) == 1
    one_line(capsys, "changed since", "simkit replay")
    killed = _simkit("replay", str(old_run), crash=k)
    assert killed.returncode == 99, killed.stderr
    # A reader that cannot finish the swap (another process holds the lock) refuses.
    with lock(old_run, "simkit test"):
        assert main(["report", str(old_run), "--out", str(old_run / "report")]) == 1
    one_line(capsys, f"{old_run}: in use by `simkit test`")
    verify_run(old_run)  # finishes the swap, then checks every hash
    for name in ("outcomes.parquet", "connections.parquet"):
        assert (old_run / name).read_bytes() == (runs["new"] / name).read_bytes()
    assert sorted(p.name for p in old_run.iterdir()) == sorted(p.name for p in runs["new"].iterdir())


@pytest.fixture(scope="module")
def reports(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The reports of the two runs."""
    root = tmp_path_factory.mktemp("reports")
    for which in ("old", "new"):
        write_report(runs[which], root / which)
    return {"old": root / "old", "new": root / "new"}


# The first rename (the journal) and the last (the summary); the renames between are those
# of the run and replay tests above, through the same commit.
@pytest.mark.parametrize("k", [1, REPORT_RENAMES])
def test_report_killed_after_a_rename(
    k: int, runs: dict[str, Path], reports: dict[str, Path], tmp_path: Path
) -> None:
    report = Path(shutil.copytree(reports["old"], tmp_path / "report"))
    killed = _simkit("report", str(runs["new"]), "--out", str(report), crash=k)
    assert killed.returncode == 99, killed.stderr
    assert (report / JOURNAL).exists()
    settle(report)  # what the next command writing there does first
    assert _digest(report) == _digest(reports["new"])


def test_a_crash_before_the_commit_leaves_the_old_run(old_run: Path, runs: dict[str, Path]) -> None:
    # What a SIGKILL while staging leaves: temporary files and a lock file, no journal.
    before = _digest(old_run)
    (old_run / ".outcomes.parquet.abcd1234.tmp").write_bytes(b"PAR1 half")
    (old_run / LOCK).write_text("999999999 simkit replay\n")
    assert main(["validate", str(old_run)]) == 0  # readers ignore them
    replay_run(old_run)  # the next writer removes them
    assert _digest(old_run) == before


def test_a_run_killed_while_staging_into_a_new_folder_is_started_again(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / ".events.parquet.abcd1234.tmp").write_bytes(b"PAR1 half")
    (out / LOCK).write_text("999999999 simkit run\n")
    assert main(["run", SCENARIO, "--out", str(out), "--seed", "2"]) == 0  # no --overwrite needed
    capsys.readouterr()
    assert _digest(out) == _digest(runs["new"])


# -- inputs edited without a replay -----------------------------------------------------------


def _edit_events(run: Path) -> None:
    """Swap actor and target in the first half of the events: as many rows, other answers."""
    events = pq.read_table(run / "events.parquet")
    half = events.num_rows // 2
    actor, target = events["actor"].to_pylist(), events["target"].to_pylist()
    actor[:half], target[:half] = target[:half], actor[:half]
    events = events.set_column(1, "actor", pa.array(actor, pa.int64()))
    events = events.set_column(2, "target", pa.array(target, pa.int64()))
    pq.write_table(events, run / "events.parquet")


def test_edited_inputs_are_refused_by_every_reader(
    old_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_events(old_run)
    events = old_run / "events.parquet"
    for argv in (
        ["validate", str(old_run)],
        ["report", str(old_run), "--out", str(tmp_path / "report")],
        ["datafeed", "export", str(old_run), "--out", str(tmp_path / "feed.jsonl")],
    ):
        assert main(argv) == 1
        one_line(capsys, str(events), "changed since", f"simkit replay {old_run}")
    assert not (tmp_path / "report").exists() and not (tmp_path / "feed.jsonl").exists()
    with pytest.raises(RunDirError, match="changed since"):
        load_source(old_run)
    with pytest.raises(RunDirError, match="changed since"):
        export_datafeed(old_run, tmp_path / "feed.jsonl")


def test_outputs_replaced_by_hand_are_refused(old_run: Path, runs: dict[str, Path]) -> None:
    shutil.copy(runs["new"] / "outcomes.parquet", old_run / "outcomes.parquet")
    with pytest.raises(RunDirError, match=r"outcomes\.parquet: changed since .*replay"):
        verify_run(old_run)
    (old_run / "manifest.json").unlink()
    with pytest.raises(RunDirError, match=r"outcomes\.parquet: no manifest\.json"):
        verify_run(old_run)


def test_in_place_replay_keeps_the_scenario_and_seed_of_unchanged_inputs(
    old_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = json.loads((old_run / "manifest.json").read_text())
    assert main(["replay", str(old_run), "--engine", "event"]) == 0
    assert "changed since" not in capsys.readouterr().out
    after = json.loads((old_run / "manifest.json").read_text())
    kept = ("scenario", "scenario_name", "seed", "seed_sequence", "population")
    assert {k: after[k] for k in kept} == {k: before[k] for k in kept}
    assert after["seed"] == 1 and after["engine"] == "event"


def test_in_place_replay_of_edited_inputs_says_so(old_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit_events(old_run)
    assert main(["replay", str(old_run)]) == 0
    out = capsys.readouterr().out
    assert "inputs:      changed since the run" in out
    manifest = json.loads((old_run / "manifest.json").read_text())
    assert "scenario" not in manifest and manifest["seed"] is None
    # The report now summarises the outputs of these inputs, not the earlier ones.
    expected = replay_run(old_run, out=old_run.parent / "check")
    assert main(["report", str(old_run)]) == 0
    accepted = expected.connections.status_counts()["ACCEPTED"]
    assert f"{accepted:,}" in (old_run / "report" / "report.md").read_text()
    assert verify_run(old_run) is not None


# -- one writer at a time ------------------------------------------------------------------------


def test_a_second_writer_is_refused_at_once(
    old_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digest(old_run)
    with lock(old_run, "simkit replay"):
        assert main(["replay", str(old_run)]) == 1
        line = one_line(capsys, str(old_run), "in use by `simkit replay` (pid ")
        assert f"(pid {os.getpid()})" in line
        assert main(["run", SCENARIO, "--out", str(old_run), "--overwrite"]) == 1
        one_line(capsys, "in use by")
    assert _digest(old_run) == before  # the lock file went with the lock


def test_two_replays_into_one_folder_never_mix(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    for _ in range(3):
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "simkit", "replay", str(runs[which]), "--out", str(out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for which in ("old", "new")
        ]
        results = [(p.communicate(timeout=120)[1], p.returncode) for p in procs]
        for err, code in results:
            # The holder may not have written its name into the lock file yet: "in use by
            # another simkit command".
            refused = code == 1 and err.startswith(f"simkit: error: {out}: in use by ")
            assert code == 0 or (refused and len(err.splitlines()) == 1), (code, err)
        assert any(code == 0 for _, code in results), results
        matches = []
        for which in ("old", "new"):
            try:
                verify_run(runs[which], out)
            except RunDirError:
                continue
            matches.append(which)
        assert len(matches) == 1, results
        assert sorted(p.name for p in out.iterdir()) == [
            "connections.parquet",
            "manifest.json",
            "outcomes.parquet",
        ]


# -- interrupts, a full disk, a read-only folder ---------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_writing_leaves_the_old_run_and_no_temporary_file(
    signum: int,
    old_run: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    before = _digest(old_run)
    real = pq.write_table
    # As in a terminal, whatever the test run inherited (a shell's background job ignores
    # SIGINT, and so would simkit).
    normal = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
    inherited = signal.signal(signum, normal)
    request.addfinalizer(lambda: signal.signal(signum, inherited))

    def write_table(table: Any, where: Any, **kwargs: Any) -> None:
        real(table, where, **kwargs)
        os.kill(os.getpid(), signum)

    monkeypatch.setattr(simkit.io.runs.pq, "write_table", write_table)
    assert main(["run", SCENARIO, "--out", str(old_run), "--overwrite", "--seed", "2"]) == 128 + signum
    assert capsys.readouterr().err == "simkit: interrupted\n"
    assert _digest(old_run) == before
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handlers are put back


def test_sigterm_kills_a_subprocess_cleanly(tmp_path: Path) -> None:
    # A real process, stopped at the first staged table by a SIGTERM it sends itself.
    code = (
        "import os, signal, sys\n"
        "import simkit.io.runs as runs\n"
        "real = runs.pq.write_table\n"
        "def write(t, w, **k):\n"
        "    real(t, w, **k); os.kill(os.getpid(), signal.SIGTERM)\n"
        "runs.pq.write_table = write\n"
        "from simkit.cli import main\n"
        f"sys.exit(main(['run', {SCENARIO!r}, '--out', {str(tmp_path / 'new')!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 128 + signal.SIGTERM and done.stderr == "simkit: interrupted\n"
    assert list(tmp_path.iterdir()) == []  # not even the folder it created


def _full_disk_at(n: int) -> Any:
    """A RunFolderTransaction.stage that fails as on a full disk at its `n`-th call."""
    real = RunFolderTransaction.stage
    calls = iter(range(1, 1000))

    def stage(self: RunFolderTransaction, name: str) -> Path:
        if next(calls) == n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.folder / name))
        return real(self, name)

    return stage


@pytest.mark.parametrize("n", [2, 8])
def test_a_full_disk_leaves_the_old_run(
    n: int, old_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digest(old_run)
    monkeypatch.setattr(RunFolderTransaction, "stage", _full_disk_at(n))
    assert main(["run", SCENARIO, "--out", str(old_run), "--overwrite", "--seed", "2"]) == 1
    one_line(capsys, str(old_run), "No space left on device")
    assert _digest(old_run) == before


def test_a_full_disk_leaves_the_old_report(
    runs: dict[str, Path],
    reports: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = Path(shutil.copytree(reports["old"], tmp_path / "report"))
    before = _digest(report)
    monkeypatch.setattr(RunFolderTransaction, "stage", _full_disk_at(6))
    assert main(["report", str(runs["new"]), "--out", str(report)]) == 1
    capsys.readouterr()
    assert _digest(report) == before


def test_a_read_only_folder_is_refused_inone_line(
    old_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digest(old_run)
    real_open = os.open

    def read_only(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(path).parent == old_run and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(simkit.io.commit.os, "open", read_only)
    assert main(["replay", str(old_run)]) == 1
    one_line(capsys, str(old_run), "Read-only file system")
    assert main(["validate", str(old_run)]) == 0  # reading needs no lock
    capsys.readouterr()
    assert _digest(old_run) == before


@pytest.fixture(autouse=True)
def _no_crash_hook() -> Iterator[None]:
    assert CRASH not in os.environ
    yield


@pytest.mark.parametrize("table", ["outcomes", "connections"])
def test_a_full_disk_while_the_outputs_are_written_side_by_side_leaves_the_old_run(
    table: str, old_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The records are written in another thread beside the outcomes: a failure in either
    # names its file, and neither leaves a temporary file or a mix of two runs.
    before = _digest(old_run)
    real = simkit.io.runs._write_parquet

    def write(data: Any, name: str, part: Path) -> None:
        if name == table:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(part))
        real(data, name, part)

    monkeypatch.setattr(simkit.io.runs, "_write_parquet", write)
    assert main(["replay", str(old_run)]) == 1
    one_line(capsys, f"{table}.parquet", "No space left on device")
    assert _digest(old_run) == before
