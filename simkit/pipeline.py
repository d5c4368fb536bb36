"""`pipeline`: whole jobs, from inputs to a complete run folder.

:func:`simulate` generates a scenario's traffic, replays it and writes the run folder (the
Python face of ``simkit run``); :func:`replay_run` replays a run folder's log and writes its
outputs (``simkit replay``). Each job is written once, here: reading and writing files is
:mod:`simkit.io.runs`, drawing traffic is :mod:`simkit.generate`, choosing and running an
engine is :mod:`simkit.engines`. This module applies no rule and draws no chart.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from simkit.engines import DEFAULT_ENGINE, replay
from simkit.errors import RunDirError
from simkit.generate import generate
from simkit.io.runs import INPUT_TABLES, OUTPUT_FILES, Run, read_run, write_inputs, write_outputs
from simkit.results import Replay
from simkit.scenario import Scenario, load_scenario
from simkit.seeds import Seed, seed_record

__all__ = ["replay_run", "simulate"]


def replay_run(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    engine: str = DEFAULT_ENGINE,
    csv: bool = False,
) -> Replay:
    """Replay a run folder and write its outputs: the Python face of ``simkit replay``.

    Outputs go into the run folder itself unless `out` names another folder, in which
    case the run folder is left untouched. Nothing is written if the inputs are refused.
    `engine` names one of :data:`simkit.engines.ENGINES`; every engine gives the same
    outcomes and connections, and the manifest records the one that ran.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     result = replay_run("data/samples/story", out=tmp)
    ...     sorted(p.name for p in Path(tmp).iterdir())
    ['connections.parquet', 'manifest.json', 'outcomes.parquet']
    >>> result.engine, result.connections.status_counts()
    ('columnar', {'PENDING': 2, 'ACCEPTED': 2, 'REJECTED': 0})
    """
    run = read_run(path)
    result = replay(run.population, run.events, run.policy, engine=engine)
    write_outputs(run.path if out is None else out, run, result, csv=csv)
    return result


# -- a whole generated run --------------------------------------------------------------------


def _auto_progress() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


class _Steps:
    """A progress bar over the named steps of a run, or nothing when it would not be seen."""

    def __init__(self, steps: list[str], show: bool) -> None:
        self._bar: Any = None
        if show:
            from tqdm import tqdm

            self._bar = tqdm(total=len(steps), file=sys.stderr, unit="step", leave=False)

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        if self._bar is not None:
            self._bar.set_description(label)
        yield
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


_OWNED_SUFFIXES = (".csv", ".parquet")


def _owned(name: str) -> bool:
    """Whether a file name is one simkit writes in a run folder (and may replace)."""
    stems = (*INPUT_TABLES, "outcomes", "connections")
    return name in OUTPUT_FILES or any(name == s + x for s in stems for x in _OWNED_SUFFIXES)


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: not a folder; expected a folder to write the run into")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise RunDirError(f"{out}: folder is not empty; give --overwrite (overwrite=True) to replace its run")


def _move_into_place(built: Path, out: Path) -> None:
    """Put the files of `built` into `out`, the manifest last; remove stale run files there."""
    if not out.exists():
        # mkdtemp made the folder private; give it the permissions a plain mkdir would.
        umask = os.umask(0)
        os.umask(umask)
        built.chmod(0o777 & ~umask)
        built.rename(out)
        return
    fresh = {p.name for p in built.iterdir()}
    for old in sorted(out.iterdir()):
        if old.is_file() and _owned(old.name) and old.name not in fresh:
            old.unlink()
    for name in sorted(fresh, key=lambda n: (n == "manifest.json", n)):
        os.replace(built / name, out / name)


def simulate(
    scenario: Scenario | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    seed: Seed | None = None,
    overwrite: bool = False,
    engine: str = DEFAULT_ENGINE,
    csv: bool = False,
    progress: bool | None = None,
) -> Replay:
    """Generate a scenario's traffic, replay it, and write the complete run folder.

    The Python face of ``simkit run``. The folder gets the input tables (Parquet), the
    outputs and a manifest recording the scenario, the seed (with its entropy and spawn
    key, see :mod:`simkit.seeds`), the engine that ran and the versions. Everything is
    built in a temporary folder beside `out` and moved in only when complete, so a failure
    leaves `out` as it was.

    Parameters
    ----------
    scenario : Scenario, str or PathLike
        A scenario, or the path of a scenario file.
    out : str or PathLike
        The run folder (created if missing). If it holds anything, `overwrite` must be
        true; then simkit's own run files there are replaced and other files left alone.
    seed : int or numpy.random.SeedSequence, optional
        Overrides the scenario's seed; a spawned ``SeedSequence`` draws one replication.
    engine : {"columnar", "event"}
        The replay engine (:data:`simkit.engines.ENGINES`): the numpy columnar engine
        (default), or the per-event reference engine; both give the same outputs.
    csv : bool
        Also write ``outcomes.csv`` and ``connections.csv``.
    progress : bool, optional
        Show a progress bar on stderr; by default only when stderr is a terminal and the
        environment variable ``CI`` is not set.

    Raises
    ------
    RunDirError
        `out` is a file, or a non-empty folder without `overwrite`.
    ScenarioError
        The scenario file is refused.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     result = simulate("data/scenarios/tiny.toml", Path(tmp) / "tiny")
    ...     sorted(p.name for p in (Path(tmp) / "tiny").iterdir())
    ['connections.parquet', 'crosspod.parquet', 'events.parquet', 'manifest.json', 'outcomes.parquet', 'pods.parquet', 'policy.parquet', 'users.parquet']
    >>> sorted(result.outcomes.code_counts()), result.engine
    ([200, 400, 403, 404], 'columnar')
    """
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    seed = sc.seed if seed is None else seed
    recorded = seed_record(seed)  # refuses a bad seed before anything is written
    target = Path(out)
    _check_out(target, overwrite)
    # The folders this call creates above `out`, removed again (if still empty) on failure.
    made = [p for p in target.absolute().parents if not p.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        built = Path(tempfile.mkdtemp(prefix=f".{target.name or 'run'}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise RunDirError(f"{target}: cannot create the run folder ({exc.strerror or exc})") from None
    steps = _Steps(
        ["generate", "write inputs", "replay", "write outputs"],
        _auto_progress() if progress is None else progress,
    )
    try:
        with steps.step(f"generating {sc.name}"):
            population, events, policy = generate(sc, seed)
        with steps.step(f"writing {len(events):,} events"):
            files = write_inputs(built, population, events, policy)
        with steps.step(f"replaying ({engine} engine)"):
            result = replay(population, events, policy, engine=engine)
        with steps.step("writing outputs"):
            run = Run(built, population, events, policy, files)
            extra = {
                "scenario": sc.to_dict(),
                "scenario_name": sc.name,
                "seed": recorded["entropy"],
                "seed_sequence": recorded,
            }
            write_outputs(built, run, result, csv=csv, extra=extra)
        _check_out(target, overwrite)
        _move_into_place(built, target)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    finally:
        steps.close()
        # Left over (emptied) when the files were moved into an existing folder.
        shutil.rmtree(built, ignore_errors=True)
    return result
