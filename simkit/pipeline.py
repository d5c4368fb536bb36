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
import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simkit.engines import DEFAULT_ENGINE, replay
from simkit.errors import RunDirError, ScenarioError, SimkitError
from simkit.generate import draw, draw_population, estimate
from simkit.io.commit import Handoff, RunFolderTransaction, alongside, file_sha256, is_own, settle
from simkit.io.runs import (
    CSV_OUTPUTS,
    OWN_FILES,
    RUN_FILES,
    Run,
    read_population,
    read_run,
    recorded_inputs_match,
    write_demand,
    write_inputs,
    write_outputs,
)
from simkit.population import Population
from simkit.results import Replay
from simkit.scenario import DEFAULT_MAX_EVENTS, Scenario, load_scenario
from simkit.seeds import Seed, seed_record

__all__ = ["PodSummary", "inputs_changed", "pod_summaries", "population_of", "replay_run", "simulate"]


def replay_run(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    engine: str = DEFAULT_ENGINE,
    csv: bool = False,
) -> Replay:
    """Replay a run folder and write its outputs: the Python face of ``simkit replay``.

    Outputs go into the run folder itself unless `out` names another folder, in which
    case the run folder is left untouched. The outputs and the manifest are put in place
    together, under the folder's lock (:class:`~simkit.io.commit.RunFolderTransaction`).
    In place, the manifest keeps the scenario, the seed and the rest of what the run's
    manifest recorded if the inputs are still the files it records
    (:func:`inputs_changed` tells). simkit's own ``demand.parquet`` is neither read nor
    needed nor copied: in place it stays, and stays recorded while the inputs and it are
    the files the manifest records; once they changed, the new manifest no longer records
    it and readers ignore it (:func:`simkit.io.runs.read_demand`). Nothing is written if
    the inputs are refused.
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
    source = Path(path)
    if out is None and source.is_dir():
        # In place: the folder is locked before its inputs are read.
        with RunFolderTransaction(source, "simkit replay") as txn:
            run = read_run(source)
            result = replay(run.population, run.events, run.policy, engine=engine)
            write_outputs(txn, run, result, csv=csv, extra=_carried_over(run, source / "manifest.json"))
            txn.commit(last="manifest.json", stale=() if csv else CSV_OUTPUTS)
        return result
    settle(source)
    run = read_run(source)
    result = replay(run.population, run.events, run.policy, engine=engine)
    target = run.path if out is None else Path(out)
    if target.exists() and not target.is_dir():
        raise RunDirError(f"{target}: not a folder; expected a folder to write the outputs into")
    # The folders this call creates, removed again (if still empty) on failure.
    made = [p for p in (target.absolute(), *target.absolute().parents) if not p.exists()]
    try:
        target.mkdir(parents=True, exist_ok=True)
        with RunFolderTransaction(target, "simkit replay") as txn:
            write_outputs(txn, run, result, csv=csv)
            txn.commit(last="manifest.json", stale=() if csv else CSV_OUTPUTS)
    except BaseException:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return result


# Keys of a manifest that describe where a run's inputs came from; an in-place replay of
# unchanged inputs keeps them.
_PROVENANCE = ("scenario", "scenario_name", "seed", "seed_sequence", "population", "served", "datafeed")


def _carried_over(run: Run, manifest_file: Path) -> dict[str, Any]:
    """What of the manifest at `manifest_file` still describes `run` (nothing if its inputs
    changed: the demand drawn with the old log, among the rest, would lie about the new one)."""
    if not manifest_file.is_file():
        return {}
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(manifest, dict) or not recorded_inputs_match(run, manifest):
        return {}
    kept = {key: manifest[key] for key in _PROVENANCE if key in manifest}
    own = _own_unchanged(manifest_file.parent, manifest.get("own"))
    if own:
        kept["own"] = own
    return kept


def _own_unchanged(folder: Path, recorded: Any) -> dict[str, Any]:
    """The records of simkit's own tables (``own`` of a manifest) whose file in `folder` is
    still the one recorded: those still describe the run's inputs."""
    if not isinstance(recorded, dict):
        return {}
    kept = {}
    for name, record in sorted(recorded.items()):
        file = folder / str(record.get("file", "")) if isinstance(record, dict) else None
        if file is None or file.name not in OWN_FILES or not file.is_file():
            continue
        if file_sha256(file) == record.get("sha256"):
            kept[name] = record
    return kept


def inputs_changed(path: str | os.PathLike[str]) -> bool:
    """Whether the input tables of the run folder `path` differ from those its manifest
    records (False without a manifest, or if they cannot be read)."""
    manifest_file = Path(path) / "manifest.json"
    if not manifest_file.is_file():
        return False
    try:
        run = read_run(path)
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (SimkitError, OSError, ValueError):
        return False
    return (
        isinstance(manifest, dict)
        and isinstance(manifest.get("inputs"), dict)
        and not recorded_inputs_match(run, manifest)
    )


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


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse `out` if it is a file, or holds anything (but the files of a commit, see
    :func:`simkit.io.commit.is_own`) without `overwrite`."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: not a folder; expected a folder to write the run into")
    if out.is_dir() and not overwrite and not all(is_own(p.name) for p in out.iterdir()):
        raise RunDirError(f"{out}: folder is not empty; give --overwrite to replace the run in it")


def simulate(
    scenario: Scenario | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    seed: Seed | None = None,
    overwrite: bool = False,
    engine: str = DEFAULT_ENGINE,
    csv: bool = False,
    progress: bool | None = None,
    max_events: int | None = DEFAULT_MAX_EVENTS,
) -> Replay:
    """Generate a scenario's traffic, replay it, and write the complete run folder.

    The Python face of ``simkit run``. The folder gets the input tables (Parquet), the
    outputs, the wishes behind the log (``demand.parquet``, simkit's own table, see
    :func:`simkit.io.runs.write_demand`; none when there are no wishes) and a manifest
    recording the scenario, the seed (with its entropy and spawn key, see
    :mod:`simkit.seeds`), the population (its seed; for a population read from a folder,
    ``population.from`` as written and the SHA-256 of each table read), the engine that
    ran and the versions. Everything is written under temporary names in `out`, under
    its lock, and put in place by one commit (:class:`~simkit.io.commit.RunFolderTransaction`)
    only when complete, so a failure, an interrupt or a crash never leaves a mix of two runs.
    The inputs and the demand are written by a second thread while the replay runs (the
    bytes are those of writing them one after the other), and waited for before the folder
    is committed or cleaned up.

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
    max_events : int, optional
        Refuse a scenario estimated (:func:`simkit.generate.estimate`) to need more events
        than this (``None``: no limit but memory). A scenario estimated to need more memory
        than the machine has available is refused whatever this is.

    Raises
    ------
    RunDirError
        `out` is a file, or a non-empty folder without `overwrite`.
    ScenarioError
        The scenario file is refused, its ``population.from`` is not a folder, a pair
        knob names a pod the population does not have, or the run would be too large
        (key ``(size)``): all before anything is drawn or written.
    InputError
        A table of the ``population.from`` folder is refused (names file, row and column).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     result = simulate("data/scenarios/tiny.toml", Path(tmp) / "tiny")
    ...     sorted(p.name for p in (Path(tmp) / "tiny").iterdir())
    ['connections.parquet', 'crosspod.parquet', 'demand.parquet', 'events.parquet', 'manifest.json', 'outcomes.parquet', 'pods.parquet', 'policy.parquet', 'users.parquet']
    >>> sorted(result.outcomes.code_counts()), result.engine
    ([200, 400, 403, 404], 'columnar')
    """
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    seed = sc.seed if seed is None else seed
    recorded = seed_record(seed)  # refuses a bad seed before anything is written
    given, given_files = _given_population(sc)
    _check_size(sc, given, max_events)
    target = Path(out)
    _check_out(target, overwrite)
    # The folders this call creates, removed again (if still empty) on failure.
    made = [p for p in (target.absolute(), *target.absolute().parents) if not p.exists()]
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"{target}: cannot create the run folder ({exc.strerror or exc})") from None
    steps = _Steps(
        ["generate", "replay and write inputs", "write outputs"],
        _auto_progress() if progress is None else progress,
    )
    try:
        # Under the folder's lock, the new run is staged beside the old one and put in place
        # by one commit, the manifest last: until then the old run stays whole.
        with RunFolderTransaction(target, "simkit run") as txn:
            _check_out(target, overwrite)
            handoff = Handoff()  # the draw hands the writer the demand, then the inputs

            def write_log(stop: threading.Event) -> dict[str, Path]:
                # The demand as soon as it is drawn (the manifest write_outputs writes records
                # it), while the log is put in order; then the inputs, while it is replayed.
                demand = handoff.take(stop)
                if demand is None:
                    return {}
                demand_file = write_demand(txn, demand)
                del demand  # the writer's was the only reference: its memory goes now
                tables = handoff.take(stop)
                if tables is None or stop.is_set():
                    return {}
                files = write_inputs(txn, *tables, stop=stop)
                # The digests the manifest records, while the replay runs (hashlib lets go of
                # the GIL): write_outputs then hashes only the outputs.
                for file in (*files.values(), *([demand_file] if demand_file else [])):
                    if stop.is_set():
                        break
                    txn.sha256(file)
                return files

            # The demand and the inputs are written while the log is sorted and replayed:
            # pyarrow's encoders let go of the GIL, and the columnar engine's numpy passes much
            # of the time. Every file's bytes depend on its own table only, so they are the
            # same whatever the timing.
            with alongside(write_log) as log_written:
                with steps.step(f"generating {sc.name}"):
                    drawn = draw(sc, seed, population=given, on_demand=handoff.put)
                    population, events, policy = drawn.population, drawn.events, drawn.policy
                    del drawn
                    handoff.put((population, events, policy))
                    # What the draw freed is not handed back: under `simkit run` (see
                    # simkit.memory) the replay's arrays reuse it instead of fresh pages.
                with steps.step(f"replaying {len(events):,} events ({engine} engine), writing them"):
                    result = replay(population, events, policy, engine=engine)
            files = log_written.result()
            with steps.step("writing outputs"):
                run = Run(target, population, events, policy, files)
                extra = {
                    "scenario": sc.to_dict(),
                    "scenario_name": sc.name,
                    "seed": recorded["entropy"],
                    "seed_sequence": recorded,
                    "population": _population_record(sc, given, given_files),
                }
                write_outputs(txn, run, result, csv=csv, extra=extra)
            # simkit's files of an earlier run that this one does not write go (a demand
            # among them); other files stay.
            txn.commit(last="manifest.json", stale=RUN_FILES)
    except BaseException:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    finally:
        steps.close()
    return result


def _check_size(sc: Scenario, given: Population | None, max_events: int | None) -> None:
    """Refuse a scenario estimated to need more events than `max_events` or more memory
    than this machine has available."""
    need = estimate(sc, given)
    memory = _available_memory()
    if (max_events is None or need.events <= max_events) and (memory is None or need.bytes <= memory):
        return
    limits = []
    if max_events is not None:
        limits.append(f"--max-events {max_events:,}")
    if memory is not None:
        limits.append(f"the {_bytes_text(memory)} of memory this machine has available")
    raise sc.error(
        "(size)",
        f"a run within {' and '.join(limits)}, found one needing about {_count_text(need.events)} "
        f"events and {_bytes_text(need.bytes)} of memory",
    )


def _available_memory() -> int | None:
    """Bytes of memory available to a new run: MemAvailable, else free pages, else unknown."""
    with contextlib.suppress(OSError, ValueError), Path("/proc/meminfo").open(encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return None


def _count_text(n: int) -> str:
    """``250,000`` below a million, ``1.9e8`` above."""
    if n < 1_000_000:
        return f"{n:,}"
    mantissa, exponent = f"{n:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _bytes_text(n: int) -> str:
    """``850 MB``, ``7.8 GB``, ``210 GB``."""
    if n < 1_000_000_000:
        return f"{n / 1e6:.0f} MB"
    return f"{n / 1e9:.2g} GB" if n < 10**10 else f"{n / 1e9:,.0f} GB"


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
            name: {"file": file.name, "rows": rows[name], "sha256": file_sha256(file)}
            for name, file in sorted(files.items())
        }
    return record


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
