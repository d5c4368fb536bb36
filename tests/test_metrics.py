"""metrics: the headline numbers from the replay's arrays agree with analysis' frames."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simkit import analysis, read_run, replay
from simkit.events import Events
from simkit.generate import generate
from simkit.metrics import METRICS, metrics
from simkit.population import Pod, Population, User
from simkit.scenario import load_scenario
from tests.conftest import random_log


def _agree(values: dict[str, float | int], summary: pd.Series) -> None:
    labels = {
        "events": "events",
        **{f"answers_{c}": f"answers {c}" for c in analysis.CODES},
        **{f"records_{s.lower()}": f"records {s}" for s in analysis.STATUS_COLUMNS},
        "implicit_pairs": "implicit pairs",
        "acceptance_rate": "acceptance rate",
        "rerequest_rate": "re-request rate",
        "cross_pod_share": "users connected across pods",
    }
    for name, label in labels.items():
        expected, got = summary[label], values[name]
        if isinstance(expected, float) and math.isnan(expected):
            assert math.isnan(got), name
        else:
            assert got == pytest.approx(expected, rel=1e-12), name
    wait = summary["median time to accept"]
    if pd.isna(wait):
        assert math.isnan(values["median_time_to_accept_s"])
    else:
        assert values["median_time_to_accept_s"] == pytest.approx(wait.total_seconds(), rel=1e-12)


@pytest.mark.parametrize("folder", ["data/samples/story", "data/samples/order"])
def test_metrics_agree_with_analysis_on_bundled_runs(folder: str) -> None:
    run = read_run(folder)
    result = replay(run.population, run.events, run.policy)
    values = metrics(run.population, run.events, result)
    assert list(values) == list(METRICS)
    _agree(values, analysis.summary(analysis.from_run(run, result)))
    frames = analysis.from_run(run, result)
    requests = analysis.requests(frames)
    assert values["requests"] == len(requests)
    reasons = pd.Series([r for r in result.outcomes.reasons() if r is not None]).value_counts()
    for reason, n in reasons.items():
        assert values[f"reason_{reason}"] == n


@pytest.mark.parametrize(("scenario", "seed"), [("tiny", 7), ("tiny", 123), ("crosspod-rollout", 1)])
def test_metrics_agree_with_analysis_on_generated_runs(scenario: str, seed: int, tmp_path: Path) -> None:
    sc = load_scenario(f"data/scenarios/{scenario}.toml")
    if scenario != "tiny":
        sc = sc.with_overrides({"time.days": 20})
    population, events, policy = generate(sc, seed)
    result = replay(population, events, policy)
    from simkit.io.runs import Run

    values = metrics(population, events, result)
    run = Run(path=tmp_path, population=population, events=events, policy=policy)
    _agree(values, analysis.summary(analysis.from_run(run, result)))


def test_metrics_on_a_population_with_ids_out_of_order() -> None:
    # Users listed out of id order, with a gap: the rows are found by search, not offset.
    pop = Population.from_records(
        pods=[Pod(2, "fund"), Pod(1, "bank"), Pod(3, "open", private=False)],
        users=[User(50, 2), User(10, 1), User(11, 1), User(30, 3), User(31, 3)],
        crosspod=[(1, 2)],
    )
    log = Events.from_records(
        [
            (1, 10, 50, "connect"),
            (5, 50, 10, "accept"),
            (2, 30, 31, "connect"),
            (9, 31, 30, "reject"),
            (12, 30, 31, "connect"),
            (13, 99, 10, "connect"),
        ]
    )
    values = metrics(pop, log, replay(pop, log))
    assert values["implicit_pairs"] == 1  # the bank's two users; the open pod has records
    assert values["requests"] == 3 and values["acceptance_rate"] == 0.5
    assert values["median_time_to_accept_s"] == 0.004
    assert values["cross_pod_share"] == pytest.approx(2 / 5)
    assert values["rerequest_rate"] == 0.5
    assert values["answers_401"] == 1


def test_user_metrics_are_added_and_may_not_shadow() -> None:
    run = read_run("data/samples/story")
    result = replay(run.population, run.events, run.policy)
    extra = {"connects": lambda p, e, r: int(np.count_nonzero(e.action == 0))}
    assert metrics(run.population, run.events, result, extra)["connects"] > 0
    with pytest.raises(ValueError, match="built-in"):
        metrics(run.population, run.events, result, {"events": lambda p, e, r: 0})


def test_metrics_loads_no_frames() -> None:
    code = "import sys, simkit.metrics; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert not {"pandas", "pyarrow", "matplotlib"} & set(loaded)


@pytest.mark.parametrize("seed", range(6))
def test_metrics_agree_with_analysis_on_random_logs(seed: int, tmp_path: Path) -> None:
    # Few users and many calls, ts out of order and tied: every rule and reopen gets exercised.
    pop = Population.from_records(
        pods=[Pod(1, "a"), Pod(2, "b"), Pod(3, "open", private=False)],
        users=[User(u, 1 + u % 3, external=u % 5 != 0) for u in range(1, 10)],
        crosspod=[(1, 2), (2, 3)],
    )
    log = random_log(seed, 400, users=10, seconds=60)
    result = replay(pop, log)
    from simkit.events import Policy
    from simkit.io.runs import Run

    run = Run(path=tmp_path, population=pop, events=log, policy=Policy.empty())
    _agree(metrics(pop, log, result), analysis.summary(analysis.from_run(run, result)))


# -- the demand ---------------------------------------------------------------------------------


def test_the_demand_metrics_are_exact_on_a_hand_built_demand() -> None:
    from simkit.events import Demand
    from simkit.metrics import DEMAND

    run = read_run("data/samples/story")
    result = replay(run.population, run.events, run.policy)
    demand = Demand.from_records(
        [
            (0, 101, 201, "sent", 0),
            (1000, 101, 301, "deferred", 61_000),
            (2000, 102, 301, "deferred", 182_000),
            (3000, 201, 301, "deferred", 3000 + 3_600_000),
            (4000, 202, 301, "blocked", None),
            (5000, 102, 302, "dropped", None),
            (6000, 202, 302, "dropped", None),
            (7000, 201, 302, "sent", 7000),
        ]
    )
    values = metrics(run.population, run.events, result, demand=demand)
    assert [values[name] for name in DEMAND] == [8, 3, 3, 3 / 8, 3 / 8, 180.0]
    assert all(isinstance(values[n], int) for n in ("wishes", "deferred", "unmet_demand"))
    # The other metrics do not depend on the demand.
    without = metrics(run.population, run.events, result)
    assert {k: v for k, v in values.items() if k not in DEMAND} == {
        k: v for k, v in without.items() if k not in DEMAND
    }
    assert all(math.isnan(without[name]) for name in DEMAND)
    empty = metrics(run.population, run.events, result, demand=Demand.empty())
    assert [empty[n] for n in ("wishes", "deferred", "unmet_demand")] == [0, 0, 0]
    assert all(math.isnan(empty[n]) for n in ("deferred_share", "unmet_demand_share", "median_deferral_s"))


def test_more_crosspod_leaves_no_more_demand_unmet_with_the_same_seed() -> None:
    # Common random numbers: the same wishes whatever crossPod says; opening pods can only
    # send more of them, and sooner.
    from simkit.generate import draw

    sc = load_scenario("data/scenarios/tiny.toml")
    values = {}
    for name, scenario in (("without", sc.with_overrides({"crosspod.changes": []})), ("with", sc)):
        drawn = draw(scenario, 5)
        result = replay(drawn.population, drawn.events, drawn.policy)
        values[name] = metrics(drawn.population, drawn.events, result, demand=drawn.demand)
        fates = np.bincount(drawn.demand.fate, minlength=4)
        assert values[name]["wishes"] == len(drawn.demand) > 0
        assert values[name]["unmet_demand"] == fates[2] + fates[3]
        assert values[name]["deferred"] == fates[1]
    without, with_ = values["without"], values["with"]
    assert with_["wishes"] == without["wishes"]
    assert with_["unmet_demand"] < without["unmet_demand"]
    assert with_["requests"] > without["requests"]
    assert with_["reason_crosspod_disabled"] < without["reason_crosspod_disabled"]


def _ms(column: pd.Series) -> list[int]:
    return sorted(column.dropna().to_numpy().astype("datetime64[ms]").astype(np.int64).tolist())


@pytest.mark.parametrize("source", ["story", "tiny", "random"])
def test_the_request_rows_are_the_requests_and_acceptances_of_analysis(source: str, tmp_path: Path) -> None:
    from simkit.events import Policy
    from simkit.io.runs import Run
    from simkit.metrics import request_rows

    if source == "story":
        run = read_run("data/samples/story")
        population, log, policy = run.population, run.events, run.policy
    elif source == "tiny":
        population, log, policy = generate(load_scenario("data/scenarios/tiny.toml"), 3)
    else:
        rng = np.random.default_rng(1)
        population = Population.from_records(
            pods=[Pod(1, "a"), Pod(2, "b")],
            users=[User(u, 1 + u % 2) for u in range(1, 7)],
            crosspod=[(1, 2)],
        )
        actions = np.array(["connect", "accept", "reject", "remove"])
        log = Events.from_records(
            [
                (int(t), int(a), int(b), str(x))
                for t, a, b, x in zip(
                    rng.integers(0, 40, 300) * 1000,
                    rng.integers(1, 7, 300),
                    rng.integers(1, 7, 300),
                    rng.choice(actions, 300),
                )
            ]
        )
        policy = Policy.empty()
    result = replay(population, log, policy)
    made, accepted = request_rows(population, log, result)
    assert len(made) == metrics(population, log, result)["requests"]
    table = analysis.requests(analysis.from_run(Run(tmp_path, population, log, policy), result))
    assert sorted(log.ts[made].tolist()) == _ms(table["requested_at"])
    assert sorted(log.ts[accepted].tolist()) == _ms(table.loc[table["answer"] == "ACCEPTED", "answered_at"])
    assert (np.diff(made) > 0).all() and (np.diff(accepted) > 0).all()


def test_a_sweep_records_the_demand_of_each_run(tmp_path: Path) -> None:
    # One row per run gains the demand's metrics, as metrics gives them on the drawn run;
    # with common random numbers the roll-out has the same wishes and fewer of them unmet.
    import pyarrow.parquet as pq

    from simkit.generate import draw
    from simkit.metrics import DEMAND
    from simkit.sweeps import sweep

    tiny = "data/scenarios/tiny.toml"
    sc = load_scenario(tiny)
    changes = [[], sc.to_dict()["crosspod"]["changes"]]
    result = sweep(tiny, {"crosspod.changes": changes}, replications=2, out=tmp_path / "s", progress=False)
    table = pq.read_table(tmp_path / "s" / "runs.parquet")
    assert [str(table.schema.field(n).type) for n in DEMAND] == ["int64"] * 3 + ["double"] * 3
    rows = table.to_pylist()
    seed = np.random.SeedSequence(sc.seed).spawn(2)[1]
    drawn = draw(sc, seed)
    expected = metrics(
        drawn.population,
        drawn.events,
        replay(drawn.population, drawn.events, drawn.policy),
        demand=drawn.demand,
    )
    assert {n: rows[3][n] for n in METRICS} == expected
    for r in (0, 1):
        without, with_ = rows[r], rows[2 + r]
        assert with_["wishes"] == without["wishes"] > 0
        assert with_["unmet_demand"] < without["unmet_demand"]
    unmet = next(s for s in result.summary if s["point"] == 1 and s["metric"] == "unmet_demand")
    assert unmet["diff_mean"] < 0 and unmet["n"] == 2


def test_a_sweep_without_wishes_counts_none_whether_it_keeps_its_runs_or_not(tmp_path: Path) -> None:
    # A run that drew no wish writes no demand.parquet: a kept run still counts 0 wishes.
    from simkit.sweeps import sweep

    grid = {"behaviour.requests_per_user_per_day": [0.0]}
    kept = sweep("data/scenarios/tiny.toml", grid, out=tmp_path / "kept", keep_runs=True, progress=False)
    assert not (tmp_path / "kept" / "runs" / "point-0-replication-0" / "demand.parquet").exists()
    assert (kept.runs[0]["wishes"], kept.runs[0]["unmet_demand"]) == (0, 0)
    assert math.isnan(kept.runs[0]["unmet_demand_share"])
    sweep("data/scenarios/tiny.toml", grid, out=tmp_path / "rows", progress=False)
    assert (tmp_path / "kept" / "runs.parquet").read_bytes() == (
        tmp_path / "rows" / "runs.parquet"
    ).read_bytes()


# -- the engine's pair groups -------------------------------------------------------------------


def _nan_equal(a: dict[str, float | int], b: dict[str, float | int]) -> bool:
    return list(a) == list(b) and all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)


@pytest.mark.parametrize("seed", range(4))
def test_the_engines_pair_groups_are_pairs_in_apply_order_and_give_the_same_metrics(seed: int) -> None:
    from simkit import columnar
    from simkit.engines import replay as replay_with
    from simkit.events import apply_order
    from simkit.metrics import request_rows

    pop = Population.from_records(
        pods=[Pod(1, "a"), Pod(2, "b"), Pod(3, "open", private=False)],
        users=[User(u, 1 + u % 3, external=u % 5 != 0) for u in range(1, 10)],
        crosspod=[(1, 2), (2, 3)],
    )
    n = 600  # ts out of order and tied; unknown users (10) and self-calls
    log = random_log(seed, n, users=10, seconds=60)
    plain = replay(pop, log)
    assert plain.groups is None and replay_with(pop, log, engine="event", groups=True).groups is None
    expected, expected_rows = metrics(pop, log, plain), request_rows(pop, log, plain)
    rank = np.empty(n, np.int64)
    rank[apply_order(log.ts)] = np.arange(n)
    # Whole slices and threads, then pairs cut into blocks across many small slices.
    for options in ({}, {"block": 4, "chunk": 16, "threads": 2, "tail_below": 2}):
        result = columnar.replay(pop, log, groups=True, **options)
        groups = result.groups
        assert groups is not None
        rows = groups.rows
        assert len(np.unique(rows)) == len(rows)
        # Every event a pair record answered; not those between colleagues of a private pod.
        decided = (result.outcomes.status >= 0) & (result.outcomes.request_counter > 0)
        assert set(np.flatnonzero(decided).tolist()) <= set(rows.tolist())
        low = np.minimum(log.actor[rows], log.target[rows])
        high = np.maximum(log.actor[rows], log.target[rows])
        seen: set[tuple[int, int]] = set()
        for lo, hi in zip(groups.starts, [*groups.starts[1:], len(rows)]):
            pair = {(int(a), int(b)) for a, b in zip(low[lo:hi], high[lo:hi])}
            assert len(pair) == 1 and not pair & seen
            seen |= pair
            assert np.all(np.diff(rank[rows[lo:hi]]) > 0)
        assert _nan_equal(metrics(pop, log, result), expected)
        got_rows = request_rows(pop, log, result)
        assert all(np.array_equal(x, y) for x, y in zip(got_rows, expected_rows))


def test_a_generated_runs_metrics_are_the_same_with_the_engines_pair_groups() -> None:
    sc = load_scenario("data/scenarios/crosspod-rollout.toml").with_overrides({"time.days": 20})
    population, events, policy = generate(sc, 3)
    with_groups = replay(population, events, policy, groups=True)
    assert with_groups.groups is not None
    assert _nan_equal(
        metrics(population, events, with_groups),
        metrics(population, events, replay(population, events, policy)),
    )
