"""`sweeps`: run a scenario over a grid of knob values, replicated, and summarise with intervals.

:func:`sweep` runs every point of a grid (the product of each knob's values, or the values
side by side with ``zipped=True``) `replications` times. Replication ``r`` of every point
draws its traffic from the same seed, ``SeedSequence(seed).spawn(replications)[r]``, so
the points are compared with common random numbers; the population stays the scenario's
unless the grid names ``population.seed``. Each run is generated and replayed in memory and
reduced to its headline numbers by :func:`simkit.metrics.metrics`; nothing else of it is
kept (unless ``keep_runs``), so memory does not grow with the number of runs.

Runs go to an executor: serial, a process pool, any :class:`concurrent.futures.Executor`,
or a Dask cluster (``dask.distributed``, imported only then). Each finished run is appended
at once to a part file in the output folder, so an interrupted sweep resumes where it
stopped; at the end the rows are put in point and replication order, so the output files
are the same bytes whatever the executor and the number of workers.

The sweep writes into its folder:

- ``runs.parquet`` and ``runs.csv``: one row per run: ``point``, one column per swept knob,
  ``replication``, ``seed``, ``spawn_key``, every metric, ``error`` (null unless it failed);
- ``summary.csv``: per point and metric, ``mean``, ``std``, the 95 % Student-t interval
  ``ci_low``/``ci_high``, ``n``, ``failures``, and the paired difference from the baseline
  point over the replications (``diff_mean``, ``diff_ci_low``, ``diff_ci_high``);
- ``manifest.json``: the scenario, the grid, the points (with their ``--set`` options), the
  seed, versions and SHA-256 of every file;
- one chart per charted metric, ``METRIC.png``, against the swept knob with interval bands.

Errors a user can cause (a bad grid, a baseline outside the points, an unreachable Dask
scheduler, a folder in use) are :class:`~simkit.errors.SweepError` or :class:`~simkit.errors.ScenarioError`,
raised before anything is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simkit.engines import DEFAULT_ENGINE, replay
from simkit.errors import SimkitError, SweepError
from simkit.events import Demand
from simkit.generate import draw
from simkit.io.atomic import atomic_path, write_bytes
from simkit.metrics import METRICS, SHARES, Metric, UserMetric, metrics
from simkit.scenario import Scenario, load_scenario
from simkit.version import __version__

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["CHARTED", "Sweep", "interval", "parse_grid", "points_of", "sweep", "t_quantile"]

CHARTED: tuple[str, ...] = ("acceptance_rate", "rerequest_rate", "cross_pod_share")
"""The metrics charted when none are named."""

_PARTS = ".sweep"  # the folder of the part file and the plan, inside the output folder
_DASK_TIMEOUT_S = 10.0
_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


# -- the grid -----------------------------------------------------------------------------------


def parse_grid(options: Sequence[str]) -> dict[str, list[Any]]:
    """Knob values from ``--grid KEY=VALUES`` options, VALUES one TOML array.

    Raises
    ------
    SweepError
        An option without ``=``, a knob named twice, or VALUES that is not a non-empty
        TOML array.

    Examples
    --------
    >>> parse_grid(["behaviour.accept=[0.5, 0.7]", "crosspod.changes=[[], [{day = 3, enable = 0.5}]]"])
    {'behaviour.accept': [0.5, 0.7], 'crosspod.changes': [[], [{'day': 3, 'enable': 0.5}]]}
    >>> parse_grid(["behaviour.accept=0.5"])
    Traceback (most recent call last):
    ...
    simkit.errors.SweepError: --grid behaviour.accept=0.5: expected KEY=VALUES with VALUES a TOML array, e.g. behaviour.accept=[0.5, 0.6]
    """
    grid: dict[str, list[Any]] = {}
    for option in options:
        key, sep, text = option.partition("=")
        key = key.strip()
        hint = "expected KEY=VALUES with VALUES a TOML array, e.g. behaviour.accept=[0.5, 0.6]"
        if not sep or not key:
            raise SweepError(f"--grid {option}: {hint}")
        try:
            values = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            values = None
        if not isinstance(values, list):
            raise SweepError(f"--grid {option}: {hint}")
        if not values:
            raise SweepError(f"--grid {option}: expected at least one value")
        if key in grid:
            raise SweepError(f"--grid {key}: the knob is named twice")
        grid[key] = values
    return grid


def points_of(grid: Mapping[str, Sequence[Any]], zipped: bool = False) -> list[dict[str, Any]]:
    """The points of a grid, numbered by their place in the list.

    The product of the knobs' values, the first knob changing slowest; with `zipped`, the
    values side by side (every knob needs as many).

    Examples
    --------
    >>> points_of({"a": [1, 2], "b": ["x", "y"]})
    [{'a': 1, 'b': 'x'}, {'a': 1, 'b': 'y'}, {'a': 2, 'b': 'x'}, {'a': 2, 'b': 'y'}]
    >>> points_of({"a": [1, 2], "b": ["x", "y"]}, zipped=True)
    [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'y'}]
    """
    keys = list(grid)
    if not keys:
        return [{}]
    if zipped:
        lengths = {key: len(values) for key, values in grid.items()}
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"{key} has {n}" for key, n in lengths.items())
            raise SweepError(f"--zip: every --grid needs as many values ({sizes})")
        return [dict(zip(keys, values)) for values in zip(*grid.values())]
    return [dict(zip(keys, values)) for values in itertools.product(*grid.values())]


# -- Student's t --------------------------------------------------------------------------------


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (continued fraction, Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(
        a * math.log(x) + b * math.log1p(-x) - math.lgamma(a) - math.lgamma(b) + math.lgamma(a + b)
    )
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f / a


@functools.lru_cache(maxsize=256)  # a sweep asks for the same few over and over
def t_quantile(p: float, df: int) -> float:
    """The `p` quantile of Student's t distribution with `df` degrees of freedom (p ≥ 0.5).

    Examples
    --------
    >>> round(t_quantile(0.975, 4), 3), round(t_quantile(0.975, 1), 3), round(t_quantile(0.975, 10_000), 2)
    (2.776, 12.706, 1.96)
    """
    if not 0.5 <= p < 1 or df < 1:
        raise ValueError(f"t_quantile: needs 0.5 <= p < 1 and df >= 1, got p={p}, df={df}")

    def cdf(t: float) -> float:
        return 1.0 - 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        lo, hi = hi, hi * 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def interval(values: Sequence[float]) -> tuple[float, float, float, float, int]:
    """Mean, std (n - 1), and the 95 % Student-t interval of the finite `values`; and n.

    Examples
    --------
    >>> mean, std, low, high, n = interval([1.0, 2.0, 3.0])
    >>> mean, std, round(low, 3), round(high, 3), n
    (2.0, 1.0, -0.484, 4.484, 3)
    """
    x = np.array([v for v in values if math.isfinite(v)], dtype=np.float64)
    n = len(x)
    if not n:
        return math.nan, math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, math.nan, n
    std = float(x.std(ddof=1))
    half = t_quantile(0.975, n - 1) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half, n


# -- one run ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Job:
    point: int
    replication: int
    scenario: Scenario
    entropy: int
    engine: str
    threads: int | None
    run_dir: str | None
    extra: Mapping[str, UserMetric]


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, SimkitError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


def _run(job: _Job) -> dict[str, Any]:
    """Generate, replay and measure one run; a failure becomes its one-line error."""
    seed = np.random.SeedSequence(job.entropy, spawn_key=(job.replication,))
    row: dict[str, Any] = {"point": job.point, "replication": job.replication}
    try:
        sc = job.scenario
        # The file-reading and -writing modules (pyarrow) are imported only by a run that
        # reads or writes files: a worker starts faster without them.
        given = None
        if sc.population.from_ is not None:
            from simkit.pipeline import population_of

            given = population_of(sc)
        if job.run_dir is not None:
            from simkit.io.runs import read_demand, read_run
            from simkit.pipeline import simulate

            result = simulate(sc, job.run_dir, seed=seed, overwrite=True, engine=job.engine, progress=False)
            run = read_run(job.run_dir)
            population, events = run.population, run.events
            # A generated run writes no demand.parquet when it drew no wish.
            demand = read_demand(job.run_dir, population) or Demand.empty()
        else:
            drawn = draw(sc, seed, population=given, threads=2 if job.threads is None else job.threads)
            population, events, demand = drawn.population, drawn.events, drawn.demand
            result = replay(
                population, events, drawn.policy, engine=job.engine, threads=job.threads, groups=True
            )
        values = metrics(population, events, result, job.extra, demand=demand)
        row.update({name: _plain(value) for name, value in values.items()})
        row["error"] = None
    except Exception as exc:
        row["error"] = _one_line(exc)
    return row


def _plain(value: Metric) -> Metric:
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    return float(value)


# -- executors ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _executor(workers: int | None, executor: Executor | None, dask: str | None) -> Iterator[Executor | None]:
    """The executor the runs go to (``None``: run them here, one after another)."""
    if executor is not None:
        yield executor
        return
    if dask is not None:
        with _dask_executor(dask, workers) as pool:
            yield pool
        return
    if workers is None or workers <= 1:
        yield None
        return
    import multiprocessing

    # forkserver: no fork of a process that may hold threads, and a worker starts in ms.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["simkit.sweeps"])
    pool = ProcessPoolExecutor(workers, mp_context=context)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def _dask_executor(address: str, workers: int | None) -> Iterator[Executor]:
    try:
        import dask.config
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise SweepError("--dask needs dask.distributed: pip install 'simkit[dask]'") from exc
    with contextlib.ExitStack() as stack:
        if address == "local":
            # Dask starts its workers with glibc's MALLOC_TRIM_THRESHOLD_ at 64 KiB, which
            # hands freed memory back to the system at once: a run allocates and frees large
            # arrays, and was 1.5x slower for it (benchmarks/bench_sweep.py). Our own
            # cluster's workers keep glibc's default (or the caller's environment); their
            # memory is bounded by one run each. A cluster named by address is left alone.
            stack.enter_context(dask.config.set({_TRIM: None}))
            n = workers if workers is not None and workers > 1 else os.cpu_count() or 1
            cluster = stack.enter_context(
                LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
            )
            client = stack.enter_context(Client(cluster))  # type: ignore[no-untyped-call]
        else:
            try:
                client = stack.enter_context(Client(address, timeout=_DASK_TIMEOUT_S))  # type: ignore[no-untyped-call]
            except (OSError, TimeoutError, ValueError) as exc:
                raise SweepError(
                    f"--dask {address}: cannot reach a Dask scheduler there within {_DASK_TIMEOUT_S:g} s ({_one_line(exc)})"
                ) from exc
        executor: Executor = client.get_executor()
        yield executor


# -- the sweep ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Sweep:
    """What a sweep gives: its points, one record per run and the summary, as plain records.

    Attributes
    ----------
    knobs : tuple of str
        The swept knobs, in grid order.
    points : list of dict
        The knob values of each point, by point number.
    runs : list of dict
        One record per run in point and replication order, keyed as the columns of
        ``runs.parquet``.
    summary : list of dict
        One record per point and metric, keyed as the columns of ``summary.csv``.
    out : Path or None
        The folder written, if any.
    """

    knobs: tuple[str, ...]
    points: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    out: Path | None = None

    def runs_frame(self) -> pd.DataFrame:
        """The runs as a pandas DataFrame (the columns of ``runs.parquet``)."""
        import pandas as pd

        return pd.DataFrame.from_records(self.runs)

    def summary_frame(self) -> pd.DataFrame:
        """The summary as a pandas DataFrame (the columns of ``summary.csv``)."""
        import pandas as pd

        return pd.DataFrame.from_records(self.summary)


def sweep(
    scenario: Scenario | str | os.PathLike[str],
    grid: Mapping[str, Sequence[Any]],
    *,
    zipped: bool = False,
    replications: int = 1,
    seed: int | None = None,
    out: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    executor: Executor | None = None,
    dask: str | None = None,
    baseline: int = 0,
    charts: Sequence[str] = CHARTED,
    extra: Mapping[str, UserMetric] | None = None,
    keep_runs: bool = False,
    resume: bool = False,
    engine: str = DEFAULT_ENGINE,
    progress: bool | None = None,
) -> Sweep:
    """Run `scenario` at every point of `grid`, `replications` times each, and summarise.

    Parameters
    ----------
    scenario : Scenario or path
        The scenario, or its TOML file.
    grid : mapping of knob to values
        Each knob's values (dotted keys as for ``--set``; Python values as for
        :meth:`Scenario.with_overrides`). The points are their product, first knob slowest.
    zipped : bool
        Take the values side by side instead (for knobs that move together).
    replications : int
        Runs per point; replication ``r`` uses ``SeedSequence(seed).spawn(replications)[r]``.
    seed : int, optional
        The sweep's seed (default: the scenario's).
    out : path, optional
        The folder to write (new or empty, or a sweep's folder with `resume`); nothing is
        written without it.
    workers : int, optional
        Processes to run on (default 1: one after another, here); with ``dask="local"``,
        the number of Dask workers (default: the cores).
    executor : concurrent.futures.Executor, optional
        Where to run instead (not shut down here); ``Client.get_executor()`` for Dask.
    dask : str, optional
        ``"local"``: a Dask ``LocalCluster`` on 127.0.0.1, dashboard off; or the address of
        a running scheduler (``tcp://HOST:PORT``).
    baseline : int
        The point the others are compared with, pairing replications.
    charts : sequence of str
        Metrics to chart, one PNG each, in `out`.
    extra : mapping of name to callable, optional
        Metrics of one's own, ``f(population, events, replay) -> number`` (picklable to run
        on processes or Dask).
    keep_runs : bool
        Also write each run folder, under ``out/runs/``.
    resume : bool
        Continue the sweep in `out`: finished runs are kept, the others run.
    engine : str
        The replay engine.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).

    Raises
    ------
    ScenarioError
        A knob or value the scenario refuses (with ``--set``'s message).
    SweepError
        A bad grid, baseline, metric, executor or output folder.

    Examples
    --------
    >>> result = sweep("data/scenarios/tiny.toml", {"behaviour.rerequest_chance": [0.0, 0.8]}, replications=2)
    >>> [(r["point"], r["replication"], r["spawn_key"]) for r in result.runs]
    [(0, 0, '[0]'), (0, 1, '[1]'), (1, 0, '[0]'), (1, 1, '[1]')]
    >>> rows = [s for s in result.summary if s["metric"] == "rerequest_rate"]
    >>> rows[0]["mean"] < rows[1]["mean"], rows[1]["diff_mean"] > 0, rows[0]["diff_mean"]
    (True, True, 0.0)
    """
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    if replications < 1:
        raise SweepError(f"--replications: expected a positive integer, found {replications}")
    entropy = sc.seed if seed is None else seed
    if not isinstance(entropy, int) or isinstance(entropy, bool) or entropy < 0:
        raise SweepError(f"--seed: expected a non-negative integer, found {entropy!r}")
    knobs = tuple(grid)
    points = points_of({k: list(v) for k, v in grid.items()}, zipped)
    scenarios = [sc.with_overrides(point) for point in points]  # a bad knob or value: ScenarioError
    if not 0 <= baseline < len(points):
        raise SweepError(f"--baseline {baseline}: expected a point from 0 to {len(points) - 1}")
    extra = dict(extra or {})
    names = [*METRICS, *(n for n in extra if n not in METRICS)]
    clash = [n for n in extra if n in METRICS]
    if clash:
        raise SweepError(f"metric {clash[0]!r} is a built-in metric; name yours otherwise")
    unknown = [m for m in charts if m not in names]
    if unknown:
        raise SweepError(f"--metric {unknown[0]}: expected one of {', '.join(names)}")
    if workers is not None and workers < 1:
        raise SweepError(f"--workers: expected a positive integer, found {workers}")
    plan = {
        "scenario": _jsonable(sc.to_dict()),
        "grid": {k: _jsonable(list(v)) for k, v in grid.items()},
        "zip": zipped,
        "replications": replications,
        "seed": entropy,
        "engine": engine,
        "metrics": names,
        "keep_runs": keep_runs,
    }
    folder = Path(out) if out is not None else None
    done: dict[tuple[int, int], dict[str, Any]] = {}
    if folder is not None:
        done = _check_folder(folder, plan, resume)

    pool_threads = 1 if (workers or 1) > 1 or executor is not None or dask is not None else None
    jobs = [
        _Job(
            point=p,
            replication=r,
            scenario=scenarios[p],
            entropy=entropy,
            engine=engine,
            threads=pool_threads,
            run_dir=None
            if folder is None or not keep_runs
            else str(folder / "runs" / f"point-{p}-replication-{r}"),
            extra=extra,
        )
        for p in range(len(points))
        for r in range(replications)
        if (p, r) not in done
    ]
    with _executor(workers, executor, dask) as pool:
        if pool is not None and folder is not None:
            # The runs go to other processes: import the writers' libraries here meanwhile.
            threading.Thread(target=_import_writers, name="simkit-imports", daemon=True).start()
        if folder is not None:
            (folder / _PARTS).mkdir(parents=True, exist_ok=True)
            write_bytes(folder / _PARTS / "plan.json", _json_bytes(plan))
        rows = dict(done)
        with _part_writer(folder) as append, _progress(len(jobs) + len(done), len(done), progress) as bar:
            for row in _results(jobs, pool):
                append(row)
                rows[(row["point"], row["replication"])] = row
                bar(1)
    ordered = [_full_row(rows[(p, r)], p, r, points[p], knobs, names, entropy) for p, r in sorted(rows)]
    summary = _summary(ordered, points, knobs, names, replications, baseline)
    result = Sweep(knobs=knobs, points=points, runs=ordered, summary=summary, out=folder)
    if folder is not None:
        _write(folder, result, plan, sc, baseline, charts, names)
    return result


def _results(jobs: list[_Job], pool: Executor | None) -> Iterator[dict[str, Any]]:
    """Each job's row as it finishes."""
    if pool is None:
        for job in jobs:
            yield _run(job)
        return
    futures: list[Future[dict[str, Any]]] = [pool.submit(_run, job) for job in jobs]
    try:
        for future in as_completed(futures):
            yield future.result()
    finally:
        for future in futures:
            future.cancel()


@contextlib.contextmanager
def _part_writer(folder: Path | None) -> Iterator[Callable[[dict[str, Any]], None]]:
    if folder is None:
        yield lambda row: None
        return
    with open(folder / _PARTS / "runs.jsonl", "a", encoding="utf-8") as part:

        def append(row: dict[str, Any]) -> None:
            # One whole line per run, flushed at once: an interrupted sweep loses no finished run.
            part.write(json.dumps(row, sort_keys=True) + "\n")
            part.flush()

        yield append


@contextlib.contextmanager
def _progress(total: int, initial: int, show: bool | None) -> Iterator[Callable[[int], object]]:
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        yield lambda n: None
        return
    from tqdm import tqdm

    with tqdm(total=total, initial=initial, unit="run", desc="sweep", file=sys.stderr) as bar:
        yield bar.update


def _check_folder(folder: Path, plan: dict[str, Any], resume: bool) -> dict[tuple[int, int], dict[str, Any]]:
    """The finished runs of a sweep to resume in `folder` (none for a new one)."""
    if folder.exists() and not folder.is_dir():
        raise SweepError(f"{folder}: not a folder")
    entries = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    if not entries:
        return {}
    plan_file = folder / _PARTS / "plan.json"
    if not resume:
        raise SweepError(f"{folder}: not empty; name a new folder, or --resume the sweep in it")
    if not plan_file.exists():
        raise SweepError(f"{folder}: holds no sweep to resume")
    if json.loads(plan_file.read_text(encoding="utf-8")) != json.loads(_json_bytes(plan)):
        raise SweepError(f"{folder}: holds another sweep (scenario, grid, seed or replications differ)")
    done: dict[tuple[int, int], dict[str, Any]] = {}
    part = folder / _PARTS / "runs.jsonl"
    if part.exists():
        for line in part.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of an interrupted write
            done[(int(row["point"]), int(row["replication"]))] = row
    return done


def _full_row(
    row: Mapping[str, Any],
    point: int,
    replication: int,
    values: Mapping[str, Any],
    knobs: Sequence[str],
    names: Sequence[str],
    entropy: int,
) -> dict[str, Any]:
    full: dict[str, Any] = {"point": point}
    full.update({knob: _cell(values[knob]) for knob in knobs})
    full.update({"replication": replication, "seed": entropy, "spawn_key": f"[{replication}]"})
    failed = row.get("error") is not None
    full.update({name: None if failed else row.get(name) for name in names})
    full["error"] = row.get("error")
    return full


def _cell(value: Any) -> Any:
    """A knob's value in a table: itself if a number, text or truth value, else its TOML text."""
    if isinstance(value, bool | int | float | str):
        return value
    return _toml(value)


def _summary(
    rows: Sequence[Mapping[str, Any]],
    points: Sequence[Mapping[str, Any]],
    knobs: Sequence[str],
    names: Sequence[str],
    replications: int,
    baseline: int,
) -> list[dict[str, Any]]:
    def value(row: Mapping[str, Any], name: str) -> float:
        v = row.get(name)
        return math.nan if v is None else float(v)

    by_point: dict[int, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_point.setdefault(int(row["point"]), []).append(row)
    base = {int(r["replication"]): r for r in by_point.get(baseline, [])}
    out: list[dict[str, Any]] = []
    for p in range(len(points)):
        mine = by_point.get(p, [])
        failures = sum(1 for r in mine if r.get("error") is not None)
        for name in names:
            mean, std, lo, hi, n = interval([value(r, name) for r in mine])
            diffs = [
                value(r, name) - value(base[int(r["replication"])], name)
                for r in mine
                if int(r["replication"]) in base
            ]
            d_mean, _, d_lo, d_hi, _ = interval(diffs)
            record: dict[str, Any] = {"point": p}
            record.update({knob: _cell(points[p][knob]) for knob in knobs})
            record.update(
                {
                    "metric": name,
                    "mean": mean,
                    "std": std,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n": n,
                    "failures": failures,
                    "diff_mean": d_mean,
                    "diff_ci_low": d_lo,
                    "diff_ci_high": d_hi,
                }
            )
            out.append(record)
    return out


# -- files --------------------------------------------------------------------------------------


def _write(
    folder: Path,
    result: Sweep,
    plan: Mapping[str, Any],
    sc: Scenario,
    baseline: int,
    charts: Sequence[str],
    names: Sequence[str],
) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    columns: dict[str, pa.Array] = {"point": pa.array([r["point"] for r in result.runs], pa.int64())}
    for knob in result.knobs:
        columns[knob] = pa.array([r[knob] for r in result.runs])
    columns["replication"] = pa.array([r["replication"] for r in result.runs], pa.int64())
    columns["seed"] = pa.array([r["seed"] for r in result.runs], pa.int64())
    columns["spawn_key"] = pa.array([r["spawn_key"] for r in result.runs], pa.string())
    for name in names:
        kind = pa.int64() if name in METRICS and not _is_real(name) else pa.float64()
        cells = [r[name] for r in result.runs]
        if kind == pa.int64():  # a count a run could not give (NaN) is null, as a failed run's
            cells = [None if isinstance(v, float) and math.isnan(v) else v for v in cells]
        columns[name] = pa.array(cells, kind)
    columns["error"] = pa.array([r["error"] for r in result.runs], pa.string())
    table = pa.table(columns)
    with atomic_path(folder / "runs.parquet") as tmp:
        pq.write_table(table, tmp)
    with atomic_path(folder / "runs.csv") as tmp:
        pacsv.write_csv(table, tmp)
    with atomic_path(folder / "summary.csv") as tmp:
        _write_summary(tmp, result)
    for metric in charts:
        with atomic_path(folder / f"{metric}.png") as tmp:
            _chart(tmp, result, metric, baseline)
    files = ["runs.parquet", "runs.csv", "summary.csv", *(f"{m}.png" for m in charts)]
    import pyarrow

    manifest = {
        "kind": "sweep",
        "scenario_name": sc.name,
        "scenario": plan["scenario"],
        "seed": plan["seed"],
        "replications": plan["replications"],
        "grid": plan["grid"],
        "zip": plan["zip"],
        "baseline": baseline,
        "engine": plan["engine"],
        "points": [
            {"point": p, "set": [f"{k}={_toml(v)}" for k, v in point.items()]}
            for p, point in enumerate(result.points)
        ],
        "metrics": list(names),
        "runs": len(result.runs),
        "failures": sum(1 for r in result.runs if r["error"] is not None),
        "versions": {"simkit": __version__, "numpy": np.__version__, "pyarrow": pyarrow.__version__},
        "files": {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in files},
    }
    write_bytes(folder / "manifest.json", _json_bytes(manifest))
    # The part file and the plan stay, in run order, so that a finished sweep resumes at once.
    _rewrite_part(folder, result.runs, names)


def _rewrite_part(folder: Path, runs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
    lines = [
        json.dumps(
            {
                "point": r["point"],
                "replication": r["replication"],
                "error": r["error"],
                **{n: r[n] for n in names},
            },
            sort_keys=True,
        )
        for r in runs
    ]
    write_bytes(folder / _PARTS / "runs.jsonl", ("".join(line + "\n" for line in lines)).encode())


def _is_real(name: str) -> bool:
    return name in SHARES or name.endswith("_s")


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    return str(value)


def _write_summary(path: Path, result: Sweep) -> None:
    import csv

    header = ["point", *result.knobs, "metric", "mean", "std", "ci_low", "ci_high", "n", "failures"]
    header += ["diff_mean", "diff_ci_low", "diff_ci_high"]
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for record in result.summary:
            writer.writerow([_number(record[c]) if c not in result.knobs else record[c] for c in header])


def _import_writers() -> None:
    """Import what :func:`_write` needs: pyarrow, and pandas, which pyarrow imports when it
    first builds an array from Python values (0.2 s); and for :func:`_chart`, matplotlib
    (0.3 s, mostly its fonts)."""
    import importlib

    for name in (
        "matplotlib.backends.backend_agg",
        "matplotlib.figure",
        "pandas",
        "pyarrow.csv",
        "pyarrow.parquet",
    ):
        importlib.import_module(name)


def _chart(path: Path, result: Sweep, metric: str, baseline: int) -> None:
    """The metric's chart, drawn with the Agg renderer on a figure of its own: never through
    pyplot or the caller's backend (a notebook's stays as it was)."""
    _figure(result, metric, baseline).savefig(path, format="png", metadata={"Software": None})


def _figure(result: Sweep, metric: str, baseline: int) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [s for s in result.summary if s["metric"] == metric]
    knob, others = result.knobs[0], result.knobs[1:]
    values = [p[knob] for p in result.points]
    # On the first knob's own scale where it gives each point its own number (alone, or
    # zipped with knobs that move with it); else the points side by side, named by value.
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values) and len(
        set(values)
    ) == len(values)
    x = [float(v) for v in values] if numeric else list(range(len(result.points)))
    mean = np.array([r["mean"] for r in rows], dtype=float)
    lo = np.array([r["ci_low"] for r in rows], dtype=float)
    hi = np.array([r["ci_high"] for r in rows], dtype=float)
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.fill_between(x, lo, hi, alpha=0.25, label="95 % interval (Student's t)")
    ax.plot(x, mean, marker="o", label=f"mean of {rows[0]['n'] if rows else 0} replications")
    base_x = x[baseline]
    ax.axvline(base_x, color="0.6", linewidth=0.8, linestyle=":", label=f"baseline (point {baseline})")
    if numeric:
        ax.set_xticks(x)
        moving = f"\n({', '.join(others)} moving with it)" if others else ""
        ax.set_xlabel(f"{knob}{moving}")
    else:
        ax.set_xticks(x, labels=[_point_label(p, result.knobs) for p in result.points], fontsize="small")
        ax.set_xlabel("point (" + ", ".join(result.knobs) + ")")
    unit = " (s)" if metric.endswith("_s") else (" (share)" if metric in SHARES else "")
    ax.set_ylabel(metric + unit)
    ax.set_title(f"{metric} by {knob if numeric else 'point'}")
    fig.legend(loc="outside lower center", ncol=3, frameon=False, fontsize="small")
    return fig


def _point_label(point: Mapping[str, Any], knobs: Sequence[str]) -> str:
    """A point's knob values, one a line, short enough for a tick label."""
    values = (_toml(point[k]) for k in knobs)
    return "\n".join(v if len(v) <= 18 else v[:17] + "…" for v in values)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode()


def _toml(value: Any) -> str:
    """`value` as TOML text, for ``--set KEY=VALUE``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")
