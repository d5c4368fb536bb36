"""`pipeline`: whole jobs, from inputs to a complete run folder.

:func:`simulate` generates a scenario's traffic, replays it and writes the run folder (the
Python face of ``simkit run``); :func:`replay_run` replays a run folder's log and writes its
outputs (``simkit replay``); :func:`population_of` gives the population a scenario or a
folder holds, and :func:`pod_summaries` lists its pods (``simkit population``). Each job is
written once, here: reading and writing files is :mod:`simkit.io.runs`, drawing traffic is
:mod:`simkit.generate`, choosing and running an engine is :mod:`simkit.engines`. This module
applies no rule and draws no chart.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simkit.engines import DEFAULT_ENGINE, replay
from simkit.errors import RunDirError, ScenarioError
from simkit.generate import draw_population, generate
from simkit.io.runs import (
    INPUT_TABLES,
    OUTPUT_FILES,
    Run,
    read_population,
    read_run,
    write_inputs,
    write_outputs,
)
from simkit.population import Population
from simkit.results import Replay
from simkit.scenario import Scenario, load_scenario
from simkit.seeds import Seed, seed_record

__all__ = ["PodSummary", "pod_summaries", "population_of", "replay_run", "simulate"]


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
    target = run.path if out is None else Path(out)
    if target.exists() and not target.is_dir():
        raise RunDirError(f"{target}: not a folder; expected a folder to write the outputs into")
    # The folders this call creates, removed again (if still empty) on failure.
    made = [p for p in (target.absolute(), *target.absolute().parents) if not p.exists()]
    try:
        write_outputs(target, run, result, csv=csv)
    except BaseException:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
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


def _check_out(out: Path, overwrite: bool, building: Path | None = None) -> None:
    """Refuse `out` if it is a file, or holds anything (but the run `building` in it) without
    `overwrite`."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: not a folder; expected a folder to write the run into")
    if out.is_dir() and any(p != building for p in out.iterdir()) and not overwrite:
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


def _named_in_target(exc: BaseException, built: Path, target: Path) -> BaseException:
    """`exc`, naming the file of `target` where it names one in the temporary `built`."""
    if not isinstance(exc, OSError) or exc.filename is None or exc.errno is None:
        return exc
    name = Path(os.fsdecode(exc.filename))
    if not name.is_relative_to(built):
        return exc
    return OSError(exc.errno, exc.strerror, str(target / name.relative_to(built)))


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
    key, see :mod:`simkit.seeds`), the population (its seed; for a population read from a
    folder, ``population.from`` as written and the SHA-256 of each table read), the engine
    that ran and the versions. Everything is built in a temporary folder beside `out` (in
    it, if it exists: it may be a mount point) and moved in by renames only when complete,
    so a failure leaves `out` as it was.

    Parameters
    ----------
    scenario : Scenario, str or PathLike
        A scenario, or the path of a scenario file. A ``population.from`` folder is read
        (and checked as ``simkit validate`` checks a run folder) before anything is written.
    out : str or PathLike
        The run folder (created if missing). If it holds anything, `overwrite` must be
        true; then simkit's own run files there are replaced and other files left alone.
    seed : int or numpy.random.SeedSequence, optional
        Overrides the scenario's seed, the seed of the traffic; a spawned ``SeedSequence``
        draws one replication. The population and the crossPod plan follow the scenario's
        population seed (``population.seed``, else ``seed``) whatever `seed` is.
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
        The scenario file is refused, its ``population.from`` is not a folder, or a pair
        knob names a pod the population does not have.
    InputError
        A table of the ``population.from`` folder is refused (names file, row and column).

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
    given, given_files = _given_population(sc)
    target = Path(out)
    _check_out(target, overwrite)
    # The folders this call creates above `out`, removed again (if still empty) on failure.
    made = [p for p in target.absolute().parents if not p.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # The run is built on the file system it will live on, so that it moves into place by
        # renames: inside `out` if it exists (it may be a mount point), else beside it.
        home = target if target.is_dir() else target.parent
        built = Path(tempfile.mkdtemp(prefix=f".{target.name or 'run'}.", suffix=".tmp", dir=home))
    except OSError as exc:
        raise RunDirError(f"{target}: cannot create the run folder ({exc.strerror or exc})") from None
    steps = _Steps(
        ["generate", "write inputs", "replay", "write outputs"],
        _auto_progress() if progress is None else progress,
    )
    try:
        with steps.step(f"generating {sc.name}"):
            population, events, policy = generate(sc, seed, population=given)
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
                "population": _population_record(sc, given, given_files),
            }
            write_outputs(built, run, result, csv=csv, extra=extra)
        _check_out(target, overwrite, building=built)
        _move_into_place(built, target)
    except BaseException as exc:
        shutil.rmtree(built, ignore_errors=True)
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        named = _named_in_target(exc, built, target)
        if named is exc:
            raise
        raise named from None
    finally:
        steps.close()
        # Left over (emptied) when the files were moved into an existing folder.
        shutil.rmtree(built, ignore_errors=True)
    return result


# -- the population alone ---------------------------------------------------------------------


def _given_population(sc: Scenario) -> tuple[Population | None, dict[str, Path]]:
    """The population of ``population.from`` and the file of each table, if the scenario has one."""
    folder = sc.population_folder()
    if folder is None:
        return None, {}
    if not folder.is_dir():
        found = "a file" if folder.exists() else "no such folder"
        raise sc.error(
            "population.from", f"a folder of pods, users and crosspod tables, found {found}: {folder}"
        )
    return read_population(folder)


def _population_record(sc: Scenario, given: Population | None, files: Mapping[str, Path]) -> dict[str, Any]:
    """The manifest's ``population``: its seed and, when read from a folder, what was read."""
    record: dict[str, Any] = {"from": sc.population.from_, "seed": sc.population_seed}
    if given is not None:
        rows = {"pods": given.n_pods, "users": given.n_users, "crosspod": len(given.crosspod)}
        record["tables"] = {
            name: {"file": file.name, "rows": rows[name], "sha256": _sha256(file)}
            for name, file in sorted(files.items())
        }
    return record


def _sha256(file: Path) -> str:
    with file.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def population_of(source: Scenario | str | os.PathLike[str], overrides: Sequence[str] = ()) -> Population:
    """The population a scenario or a folder holds: the Python face of ``simkit population``.

    Parameters
    ----------
    source : Scenario, str or PathLike
        A scenario or a scenario file, whose population is drawn (from its population seed;
        no traffic is generated) or read from its ``population.from`` folder; or a folder
        holding ``pods``, ``users`` and ``crosspod`` tables, such as a run folder, read and
        checked as ``simkit validate`` checks them.
    overrides : sequence of str
        ``KEY=VALUE`` knobs changed in a scenario file, as ``--set`` (e.g.
        ``["population.seed=5"]``); none for a folder or a :class:`Scenario` (use
        :meth:`Scenario.with_overrides`).

    Raises
    ------
    ScenarioError
        The scenario is refused (including a pair knob naming a pod the population lacks),
        or overrides are given with a folder.
    InputError
        A table is refused (names file, row and column).
    RunDirError
        `source` is neither a file nor a folder.

    Examples
    --------
    >>> pop = population_of("data/scenarios/tiny.toml")
    >>> pop.n_pods, pop.n_users, len(pop.crosspod)
    (12, 300, 26)
    >>> population_of("data/samples/story").pod_name
    ('pod-10', 'pod-20', 'pod-30')
    """
    if isinstance(source, Scenario):
        if overrides:
            raise ValueError("population_of: change a Scenario with Scenario.with_overrides, not overrides")
        return draw_population(source, _given_population(source)[0])
    path = Path(source)
    if path.is_dir():
        if overrides:
            raise ScenarioError(str(path), "--set", "a scenario file to change knobs of, found a folder")
        return read_population(path)[0]
    if not path.exists():
        raise RunDirError(f"{path}: no such scenario file or folder")
    sc = load_scenario(path, overrides)
    return draw_population(sc, _given_population(sc)[0])


@dataclass(frozen=True)
class PodSummary:
    """One pod as ``simkit population`` lists it.

    `external` counts the pod's users entitled to communicate across pods; `partners` are
    the pods it has crossPod with at the start, by name, largest first.
    """

    pod_id: int
    name: str
    private: bool
    users: int
    external: int
    partners: tuple[str, ...]


def pod_summaries(population: Population, top: int | None = None) -> list[PodSummary]:
    """The pods of a population, largest first (ties in table order), with their partners.

    Parameters
    ----------
    population : Population
        Pods, users and the starting crossPod pairs.
    top : int, optional
        Only the `top` largest pods.

    Examples
    --------
    >>> from simkit.population import Pod, User
    >>> pop = Population.from_records(
    ...     pods=[Pod(1, "bank"), Pod(2, "fund"), Pod(3, "broker", private=False)],
    ...     users=[User(10, 1), User(11, 1, external=False), User(20, 2), User(30, 3)],
    ...     crosspod=[(1, 2), (3, 1)],
    ... )
    >>> for pod in pod_summaries(pop):
    ...     print(pod.name, pod.users, pod.external, pod.partners)
    bank 2 1 ('fund', 'broker')
    fund 1 1 ('bank',)
    broker 1 1 ('bank',)
    """
    ids = population.pod_id
    by_id = np.argsort(ids, kind="stable")

    def rows(pods: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return by_id[np.searchsorted(ids[by_id], pods)]

    user_row = rows(population.user_pod)
    size = np.bincount(user_row, minlength=population.n_pods)
    external = np.bincount(user_row[population.user_external], minlength=population.n_pods)
    pairs = rows(population.crosspod.reshape(-1, 2))
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    # Each pod's partners together, largest partner first, ties in table order.
    edges = np.lexsort((dst, -size[dst], src))
    src, dst = src[edges], dst[edges]
    bounds = np.searchsorted(src, np.arange(population.n_pods + 1))
    order = np.argsort(-size, kind="stable")[:top]
    names = population.pod_name
    return [
        PodSummary(
            pod_id=int(ids[r]),
            name=names[r],
            private=bool(population.pod_private[r]),
            users=int(size[r]),
            external=int(external[r]),
            partners=tuple(names[p] for p in dst[bounds[r] : bounds[r + 1]].tolist()),
        )
        for r in order.tolist()
    ]
