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
    rng = np.random.default_rng(seed)
    pop = Population.from_records(
        pods=[Pod(1, "a"), Pod(2, "b"), Pod(3, "open", private=False)],
        users=[User(u, 1 + u % 3, external=u % 5 != 0) for u in range(1, 10)],
        crosspod=[(1, 2), (2, 3)],
    )
    n = 400
    actions = np.array(["connect", "accept", "reject", "remove"])
    records = [
        (int(t), int(a), int(b), str(x))
        for t, a, b, x in zip(
            rng.integers(0, 60, n) * 1000,
            rng.integers(1, 11, n),
            rng.integers(1, 11, n),
            rng.choice(actions, n),
        )
    ]
    log = Events.from_records(records)
    result = replay(pop, log)
    from simkit.events import Policy
    from simkit.io.runs import Run

    run = Run(path=tmp_path, population=pop, events=log, policy=Policy.empty())
    _agree(metrics(pop, log, result), analysis.summary(analysis.from_run(run, result)))
