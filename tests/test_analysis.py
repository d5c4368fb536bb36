"""Tests of simkit.analysis: numbers counted by hand on a small run, and the rebuilt record
history checked against the per-event engine on random logs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simkit.blocks
from simkit import Engine, Events, Pod, Policy, Population, User, analysis, read_run, replay_run
from simkit.cli import main
from simkit.errors import RunDirError
from simkit.events import Demand, apply_order
from simkit.io.runs import Run, read_demand
from simkit.rules import ACTIONS
from simkit.schema import TABLES

# A world whose answers are counted by hand in the tests below. Pods 1 and 2 are private
# with crossPod between them; pod 3 is public; 13 is not external; 99 does not exist.
PODS = "pod_id,name,private\n1,one,true\n2,two,true\n3,three,false\n"
USERS = (
    "user_id,pod_id,external\n11,1,true\n12,1,true\n21,2,true\n22,2,true\n31,3,true\n32,3,true\n13,1,false\n"
)
CROSSPOD = "pod_a,pod_b\n1,2\n"
POLICY = "ts,pod_a,pod_b,crosspod\n7500,3,1,true\n"
EVENTS = [
    (1000, 11, 21, "connect"),  # 0  create 11-21
    (2000, 21, 11, "accept"),  # 1  accept, 1 s
    (3000, 11, 22, "connect"),  # 2  create 11-22
    (4000, 22, 11, "reject"),  # 3  decline, 1 s
    (5000, 11, 22, "connect"),  # 4  re-request, counter 2
    (5000, 11, 12, "connect"),  # 5  implicit: no record
    (6000, 31, 32, "connect"),  # 6  create 31-32 inside the public pod
    (7000, 11, 31, "connect"),  # 7  403 crosspod_disabled
    (8000, 32, 31, "accept"),  # 8  accept, 2 s
    (8500, 11, 31, "connect"),  # 9  create 11-31 (crossPod 1-3 enabled at 7500)
    (9000, 21, 11, "remove"),  # 10 delete 11-21
    (9500, 99, 11, "connect"),  # 11 401 unknown_caller
    (10000, 22, 11, "accept"),  # 12 accept 11-22, 5 s after the re-request
    (10000, 13, 21, "connect"),  # 13 403 entitlement
    (11000, 31, 11, "reject"),  # 14 decline, 2.5 s
    (12000, 11, 31, "connect"),  # 15 re-request, counter 2
    (12000, 31, 11, "remove"),  # 16 same ts, after 15: the recipient declines, 0 s
    (13000, 31, 11, "remove"),  # 17 the decliner reopens it
    (14000, 31, 11, "accept"),  # 18 accepted, a second answer to request 15
    (1500, 12, 22, "connect"),  # 19 out of order: applies second
    (15000, 22, 12, "reject"),  # 20 decline, 13.5 s
]
# (ts, PENDING, ACCEPTED, REJECTED) after the last event at each ts that changed a record.
TIMELINE = [
    (1000, 1, 0, 0),
    (1500, 2, 0, 0),
    (2000, 1, 1, 0),
    (3000, 2, 1, 0),
    (4000, 1, 1, 1),
    (5000, 2, 1, 0),
    (6000, 3, 1, 0),
    (8000, 2, 2, 0),
    (8500, 3, 2, 0),
    (9000, 3, 1, 0),
    (10000, 2, 2, 0),
    (11000, 1, 2, 1),
    (12000, 1, 2, 1),
    (13000, 2, 2, 0),
    (14000, 1, 3, 0),
    (15000, 0, 3, 1),
]


def _write_run(
    folder: Path,
    events: Sequence[tuple[int, int, int, str]],
    *,
    pods: str = PODS,
    users: str = USERS,
    crosspod: str = CROSSPOD,
    policy: str | None = POLICY,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pods.csv").write_text(pods)
    (folder / "users.csv").write_text(users)
    (folder / "crosspod.csv").write_text(crosspod)
    if policy is not None:
        (folder / "policy.csv").write_text(policy)
    rows = "".join(f"{ts},{a},{b},{act}\n" for ts, a, b, act in events)
    (folder / "events.csv").write_text("ts,actor,target,action\n" + rows)
    return folder


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory) -> analysis.RunFrames:
    folder = _write_run(tmp_path_factory.mktemp("hand") / "run", EVENTS)
    replay_run(folder)
    return analysis.load(folder)


def _ms(ts: int) -> pd.Timestamp:
    return pd.Timestamp(ts, unit="ms")


# -- loading ---------------------------------------------------------------------------------


def test_load_joins_outcomes_to_their_events(hand: analysis.RunFrames) -> None:
    ev = hand.events
    assert len(ev) == len(EVENTS)
    assert ev.loc[19, ["ts", "actor", "target", "action"]].tolist() == [1500, 12, 22, "connect"]
    assert ev.loc[7, "reason"] == "crosspod_disabled"
    assert pd.isna(ev.loc[11, "status"])
    assert ev.loc[11, "actor_pod"] is pd.NA
    assert ev["implicit"].tolist() == [i == 5 for i in range(len(EVENTS))]


def test_load_matches_from_run(hand: analysis.RunFrames, tmp_path: Path) -> None:
    folder = _write_run(tmp_path / "run", EVENTS)
    memory = analysis.from_run(read_run(folder))
    for name in ("pods", "users", "crosspod", "policy", "events", "connections"):
        pd.testing.assert_frame_equal(getattr(memory, name), getattr(hand, name), check_dtype=False)


def test_load_reads_outputs_from_another_folder(tmp_path: Path) -> None:
    folder = _write_run(tmp_path / "run", EVENTS)
    replay_run(folder, out=tmp_path / "out")
    frames = analysis.load(folder, outputs=tmp_path / "out")
    assert len(frames.connections) == 4


def test_load_without_outputs_says_what_to_do(tmp_path: Path) -> None:
    folder = _write_run(tmp_path / "run", EVENTS)
    with pytest.raises(RunDirError, match=r"outcomes\.parquet: missing; run `simkit replay`"):
        analysis.load(folder)


def test_load_refuses_outputs_of_other_events(tmp_path: Path) -> None:
    folder = _write_run(tmp_path / "run", EVENTS)
    replay_run(folder)
    _write_run(folder, EVENTS[:-1])
    with pytest.raises(RunDirError, match="21 rows for 20 events"):
        analysis.load(folder)


# -- stored records ----------------------------------------------------------------------------


def test_status_counts_overall(hand: analysis.RunFrames) -> None:
    table = analysis.status_counts(hand)
    assert table.loc["all"].to_dict() == {"PENDING": 0, "ACCEPTED": 3, "REJECTED": 1, "implicit": 4}


def test_status_counts_per_pod_counts_a_record_for_each_of_its_pods(hand: analysis.RunFrames) -> None:
    table = analysis.status_counts(hand, by="pod")
    assert table.index.tolist() == [1, 2, 3]
    assert table.to_dict("index") == {
        1: {"PENDING": 0, "ACCEPTED": 2, "REJECTED": 1, "implicit": 3},
        2: {"PENDING": 0, "ACCEPTED": 1, "REJECTED": 1, "implicit": 1},
        3: {"PENDING": 0, "ACCEPTED": 2, "REJECTED": 0, "implicit": 0},
    }


def test_status_counts_per_pod_pair_keeps_implicit_apart(hand: analysis.RunFrames) -> None:
    table = analysis.status_counts(hand, by="pod_pair")
    assert table.to_dict("index") == {
        (1, 1): {"PENDING": 0, "ACCEPTED": 0, "REJECTED": 0, "implicit": 3, "crosspod": False},
        (1, 2): {"PENDING": 0, "ACCEPTED": 1, "REJECTED": 1, "implicit": 0, "crosspod": True},
        (1, 3): {"PENDING": 0, "ACCEPTED": 1, "REJECTED": 0, "implicit": 0, "crosspod": True},
        (2, 2): {"PENDING": 0, "ACCEPTED": 0, "REJECTED": 0, "implicit": 1, "crosspod": False},
        (3, 3): {"PENDING": 0, "ACCEPTED": 1, "REJECTED": 0, "implicit": 0, "crosspod": False},
    }


def test_status_counts_refuses_an_unknown_grouping(hand: analysis.RunFrames) -> None:
    with pytest.raises(ValueError, match="by must be"):
        analysis.status_counts(hand, by="user")  # type: ignore[arg-type]


def test_request_counters_and_rerequest_rate(hand: analysis.RunFrames) -> None:
    counts = analysis.request_counter_counts(hand)
    assert counts["records"].to_dict() == {1: 2, 2: 2}
    assert counts["share"].tolist() == [0.5, 0.5]
    assert analysis.rerequest_rate(hand) == 0.5


def test_cross_pod_share_counts_users_with_an_accepted_record_to_another_pod(
    hand: analysis.RunFrames,
) -> None:
    # 11-22 and 11-31 are accepted across pods; 31-32 is inside pod 3 and does not count.
    assert analysis.cross_pod_share(hand) == pytest.approx(3 / 7)


# -- history -----------------------------------------------------------------------------------


def test_transitions_by_hand(hand: analysis.RunFrames) -> None:
    moves = analysis.transitions(hand)
    assert list(zip(moves["event"], moves["effect"], strict=True)) == [
        (0, "create"),
        (19, "create"),
        (1, "accept"),
        (2, "create"),
        (3, "decline"),
        (4, "rerequest"),
        (6, "create"),
        (8, "accept"),
        (9, "create"),
        (10, "delete"),
        (12, "accept"),
        (14, "decline"),
        (15, "rerequest"),
        (16, "decline"),
        (17, "reopen"),
        (18, "accept"),
        (20, "decline"),
    ]


@pytest.mark.parametrize("at_once", [1, 4, 9])
def test_transitions_read_a_share_of_the_pairs_at_a_time_are_the_same(
    hand: analysis.RunFrames, at_once: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A large log is read in shares of its pairs (to bound memory); the hand log is out of
    # ts order, so the shares must be put back in apply order.
    whole = analysis.transitions(hand)
    monkeypatch.setattr(analysis, "_CHANGES_AT_ONCE", at_once)
    monkeypatch.setattr(simkit.blocks, "cpus", lambda: 2)  # the shares put in place on two threads
    frames = analysis.RunFrames(
        hand.pods, hand.users, hand.crosspod, hand.policy, hand.events, hand.connections
    )
    pd.testing.assert_frame_equal(analysis.transitions(frames), whole)
    pd.testing.assert_frame_equal(analysis.requests(frames), analysis.requests(hand))


def test_status_timeline_by_hand(hand: analysis.RunFrames) -> None:
    timeline = analysis.status_timeline(hand)
    expected = pd.DataFrame(
        [row[1:] for row in TIMELINE],
        columns=list(analysis.STATUS_COLUMNS),
        index=pd.DatetimeIndex([_ms(row[0]) for row in TIMELINE], name="time"),
    )
    pd.testing.assert_frame_equal(timeline, expected, check_index_type=False, check_dtype=False)


def test_status_timeline_in_bins_gives_the_counts_at_the_end_of_each_bin(hand: analysis.RunFrames) -> None:
    timeline = analysis.status_timeline(hand, freq="4s")
    assert [t.value // 1_000_000 for t in timeline.index.as_unit("ns")] == [0, 4000, 8000, 12000]
    assert timeline.to_numpy().tolist() == [[2, 1, 0], [3, 1, 0], [1, 2, 1], [0, 3, 1]]
    assert timeline.attrs["freq"] == pd.Timedelta("4s")


@pytest.mark.parametrize("at_once", [1, 2, 3, 5])
def test_passes_a_block_at_a_time_are_the_same(
    hand: analysis.RunFrames, at_once: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The passes over the whole history hold a block of it at a time (to bound memory); a
    # block may end in the middle of the changes that share a time.
    whole = {
        "all": analysis.status_timeline(hand),
        "bins": analysis.status_timeline(hand, freq="4s"),
        "most": analysis.status_timeline(hand, most=3),
        "periods": analysis.crosspod_periods(hand),
        "requests": analysis.requests(hand),
        "counts": analysis.status_counts(hand),
        "pod": analysis.status_counts(hand, by="pod"),
        "pod_pair": analysis.status_counts(hand, by="pod_pair"),
        "matrix": analysis.pod_matrix(hand),
        "other": analysis.pod_matrix(hand, top=1, other=True),
        "counters": analysis.request_counter_counts(hand),
        "answered": analysis.answered_within(hand),
    }
    monkeypatch.setattr(simkit.blocks, "ROWS_AT_ONCE", at_once)
    frames = analysis.RunFrames(
        hand.pods, hand.users, hand.crosspod, hand.policy, hand.events, hand.connections
    )
    pd.testing.assert_frame_equal(analysis.status_timeline(frames), whole["all"])
    pd.testing.assert_frame_equal(analysis.status_timeline(frames, freq="4s"), whole["bins"])
    pd.testing.assert_frame_equal(analysis.status_timeline(frames, most=3), whole["most"])
    pd.testing.assert_frame_equal(analysis.crosspod_periods(frames), whole["periods"])
    pd.testing.assert_frame_equal(analysis.requests(frames), whole["requests"])
    pd.testing.assert_frame_equal(analysis.status_counts(frames), whole["counts"])
    pd.testing.assert_frame_equal(analysis.status_counts(frames, by="pod"), whole["pod"])
    pd.testing.assert_frame_equal(analysis.status_counts(frames, by="pod_pair"), whole["pod_pair"])
    pd.testing.assert_frame_equal(analysis.pod_matrix(frames), whole["matrix"])
    pd.testing.assert_frame_equal(analysis.pod_matrix(frames, top=1, other=True), whole["other"])
    pd.testing.assert_frame_equal(analysis.request_counter_counts(frames), whole["counters"])
    pd.testing.assert_frame_equal(analysis.answered_within(frames), whole["answered"])
    pd.testing.assert_series_equal(analysis.summary(frames), analysis.summary(hand))
    assert len(whole["all"]) > 3 > len(whole["most"])
    assert len(whole["periods"]) > 1 and whole["periods"]["requests"].gt(0).all()


def test_requests_by_hand(hand: analysis.RunFrames) -> None:
    table = analysis.requests(hand)
    got = [
        (r.requester, r.recipient, r.request_counter, r.answer, r.answer_action, r.time_to_answer)
        for r in table.itertuples()
    ]
    s = pd.Timedelta
    assert got == [
        (11, 21, 1, "ACCEPTED", "accept", s("1s")),
        (12, 22, 1, "REJECTED", "reject", s("13.5s")),
        (11, 22, 1, "REJECTED", "reject", s("1s")),
        (11, 22, 2, "ACCEPTED", "accept", s("5s")),
        (31, 32, 1, "ACCEPTED", "accept", s("2s")),
        (11, 31, 1, "REJECTED", "reject", s("2.5s")),
        # Declined by a remove at the same ts; the later reopen and accept are not a new answer.
        (11, 31, 2, "REJECTED", "remove", s("0s")),
    ]
    assert table["requested_at"].iloc[1] == _ms(1500)


def test_acceptance_by_hand(hand: analysis.RunFrames) -> None:
    assert analysis.acceptance_rate(hand) == pytest.approx(3 / 7)
    assert analysis.median_time_to_accept(hand) == pd.Timedelta("2s")
    assert analysis.answer_times(hand).tolist() == [pd.Timedelta(s) for s in ("1s", "5s", "2s")]
    assert analysis.answer_times(hand, "REJECTED").index.tolist() == [1, 2, 5, 6]
    assert len(analysis.answer_times(hand, None)) == 7
    with pytest.raises(ValueError, match="answer must be"):
        analysis.answer_times(hand, "PENDING")
    table = analysis.acceptance_by_pod_pair(hand)
    assert table.to_dict("index") == {
        (1, 2): {
            "requests": 4,
            "answered": 4,
            "accepted": 2,
            "rejected": 2,
            "acceptance_rate": 0.5,
            "crosspod": True,
        },
        (1, 3): {
            "requests": 2,
            "answered": 2,
            "accepted": 0,
            "rejected": 2,
            "acceptance_rate": 0.0,
            "crosspod": True,
        },
        (3, 3): {
            "requests": 1,
            "answered": 1,
            "accepted": 1,
            "rejected": 0,
            "acceptance_rate": 1.0,
            "crosspod": False,
        },
    }


def test_unanswered_requests_have_no_answer_and_no_rate(tmp_path: Path) -> None:
    folder = _write_run(tmp_path / "run", [(1000, 11, 21, "connect")])
    frames = analysis.from_run(read_run(folder))
    table = analysis.requests(frames)
    assert table["answer"].isna().all() and table["time_to_answer"].isna().all()
    assert np.isnan(analysis.acceptance_rate(frames))
    assert pd.isna(analysis.median_time_to_accept(frames))
    assert np.isnan(analysis.acceptance_by_pod_pair(frames).loc[(1, 2), "acceptance_rate"])


# -- answers and crossPod ----------------------------------------------------------------------


def test_error_counts_by_hand(hand: analysis.RunFrames) -> None:
    errors = analysis.error_counts(hand, freq="5s")
    assert errors.columns.tolist() == ["unknown_caller", "entitlement", "crosspod_disabled"]
    assert [t.value // 1_000_000 for t in errors.index.as_unit("ns")] == [0, 5000, 10000, 15000]
    assert errors.to_numpy().tolist() == [[0, 0, 0], [1, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert errors.attrs["freq"] == pd.Timedelta("5s")


def test_error_counts_picks_fewer_than_60_bins(hand: analysis.RunFrames) -> None:
    errors = analysis.error_counts(hand)
    assert errors.attrs["freq"] == pd.Timedelta("1s")  # 14 s of events
    assert len(errors) == 15
    assert int(errors.to_numpy().sum()) == 3


@pytest.mark.parametrize(("bins", "width"), [(60, "1s"), (14, "10s"), (15, "1s"), (2, "10s"), (1, "1min")])
def test_bin_width_cuts_the_run_into_fewer_bins_than_asked(
    hand: analysis.RunFrames, bins: int, width: str
) -> None:
    assert analysis.bin_width(hand, bins) == pd.Timedelta(width)  # events span 14 s


def test_largest_pods(hand: analysis.RunFrames) -> None:
    assert analysis.largest_pods(hand) == [1, 2, 3]
    assert analysis.largest_pods(hand, top=1) == [1]
    with pytest.raises(ValueError, match="top must be at least 1"):
        analysis.largest_pods(hand, top=0)


@pytest.mark.parametrize("freq", ["0s", "-1min"])
def test_error_counts_refuses_a_width_that_is_not_positive(hand: analysis.RunFrames, freq: str) -> None:
    with pytest.raises(ValueError, match="positive"):
        analysis.error_counts(hand, freq=freq)


def test_crosspod_at_end_applies_the_policy(hand: analysis.RunFrames) -> None:
    assert analysis.crosspod_at_end(hand).to_numpy().tolist() == [[1, 2], [1, 3]]
    matrix = analysis.crosspod_matrix(hand, [3, 2, 1])
    assert matrix.to_numpy().tolist() == [[False, False, True], [False, False, True], [True, True, False]]


def test_pod_matrix_lists_the_largest_pods_first(hand: analysis.RunFrames) -> None:
    matrix = analysis.pod_matrix(hand)
    assert matrix.index.tolist() == [1, 2, 3]  # 3 users, then 2 and 2: the smaller id first
    assert matrix.to_numpy().tolist() == [[0, 1, 1], [1, 0, 0], [1, 0, 1]]
    assert analysis.pod_matrix(hand, top=2).to_numpy().tolist() == [[0, 1], [1, 0]]
    assert analysis.pod_matrix(hand, "REJECTED").to_numpy().tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]


@pytest.mark.parametrize(("status", "top"), [("ACCEPTED_", None), ("ACCEPTED", 0)])
def test_pod_matrix_refuses_bad_arguments(hand: analysis.RunFrames, status: str, top: int | None) -> None:
    with pytest.raises(ValueError, match=r"status|top"):
        analysis.pod_matrix(hand, status, top)


def test_crosspod_changes_by_hand(hand: analysis.RunFrames) -> None:
    table = analysis.crosspod_changes(hand)
    row = table.iloc[0].to_dict()
    assert {k: row[k] for k in ("pod_a", "pod_b", "crosspod", "changed", "window")} == {
        "pod_a": 1,
        "pod_b": 3,
        "crosspod": True,
        "changed": True,
        "window": pd.Timedelta("6.5s"),  # to the first event; the last is further
    }
    assert row["time"] == _ms(7500)
    before = {k[: -len("_before")]: v for k, v in row.items() if k.endswith("_before")}
    after = {k[: -len("_after")]: v for k, v in row.items() if k.endswith("_after")}
    assert before == {"events": 1, "ok": 0, "crosspod_disabled": 1, "requests": 0, "accepted": 0}
    # [7500, 14000): events 9 and 14-17; the accept at 14000 is on the far edge.
    assert after == {"events": 5, "ok": 5, "crosspod_disabled": 0, "requests": 2, "accepted": 0}


def test_crosspod_changes_with_a_window(hand: analysis.RunFrames) -> None:
    row = analysis.crosspod_changes(hand, window="10s").iloc[0]
    assert (row["events_after"], row["accepted_after"], row["events_before"]) == (6, 1, 1)


def test_crosspod_changes_marks_a_policy_event_that_changes_nothing(tmp_path: Path) -> None:
    policy = "ts,pod_a,pod_b,crosspod\n2000,2,1,true\n3000,1,2,false\n4000,1,2,false\n"
    folder = _write_run(tmp_path / "run", EVENTS[:5], policy=policy)
    table = analysis.crosspod_changes(analysis.from_run(read_run(folder)))
    assert table["changed"].tolist() == [False, True, False]
    # Events run from 1 s to 5 s; each window stops at the neighbouring policy event on the
    # same pair, or at the run's first or last event.
    assert table["window"].tolist() == [pd.Timedelta("1s")] * 3
    assert analysis.crosspod_at_end(analysis.from_run(read_run(folder))).empty


def test_crosspod_stages_add_up_the_pairs_changed_together() -> None:
    t1, t2 = _ms(1000), _ms(5000)
    changes = pd.DataFrame(
        {
            "time": [t1, t1, t2, t2],
            "pod_a": [1, 1, 2, 1],
            "pod_b": [2, 3, 3, 2],
            "crosspod": [True, True, True, False],
            "changed": [True, False, True, True],
            "window": pd.to_timedelta([4, 3, 2, 2], unit="s"),
            "requests_before": [0, 1, 2, 3],
            "requests_after": [5, 6, 7, 8],
        }
    )
    stages = analysis.crosspod_stages(changes)
    assert stages.index.tolist() == [(t1, True), (t2, False), (t2, True)]
    assert stages.to_dict("list") == {
        "pairs": [2, 1, 1],
        "changed": [1, 1, 1],
        "window": pd.to_timedelta([3, 2, 2], unit="s").tolist(),
        "requests_before": [1, 3, 2],
        "requests_after": [11, 8, 7],
    }


def test_summary_by_hand(hand: analysis.RunFrames) -> None:
    got = analysis.summary(hand).to_dict()
    assert got == {
        "events": 21,
        "answers 200": 18,
        "answers 400": 0,
        "answers 401": 1,
        "answers 403": 2,
        "answers 404": 0,
        "records PENDING": 0,
        "records ACCEPTED": 3,
        "records REJECTED": 1,
        "implicit pairs": 4,
        "acceptance rate": pytest.approx(3 / 7),
        "median time to accept": pd.Timedelta("2s"),
        "re-request rate": 0.5,
        "users connected across pods": pytest.approx(3 / 7),
    }


def test_summary_of_the_story_sample_agrees_with_its_manifest(tmp_path: Path) -> None:
    replay_run("data/samples/story", out=tmp_path)
    frames = analysis.load("data/samples/story", outputs=tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())["summary"]
    got = analysis.summary(frames)
    assert got["events"] == manifest["events"]
    assert {k: v for k, v in manifest["answers_by_code"].items()} == {
        str(c): got[f"answers {c}"] for c in analysis.CODES if got[f"answers {c}"]
    }
    assert manifest["connections_by_status"] == {s: got[f"records {s}"] for s in analysis.STATUS_COLUMNS}


def test_a_run_without_events(tmp_path: Path) -> None:
    frames = analysis.from_run(read_run(_write_run(tmp_path / "run", [])))
    assert analysis.status_timeline(frames).empty
    assert analysis.status_timeline(frames, freq="1h").empty
    assert analysis.requests(frames).empty
    assert analysis.error_counts(frames).empty
    assert analysis.request_counter_counts(frames).empty
    assert np.isnan(analysis.rerequest_rate(frames))
    assert analysis.cross_pod_share(frames) == 0.0
    assert analysis.status_counts(frames, by="pod_pair")["implicit"].tolist() == [3, 1]
    table = analysis.crosspod_changes(frames)
    assert table["window"].tolist() == [pd.Timedelta(0)]
    assert analysis.summary(frames)["events"] == 0
    periods = analysis.crosspod_periods(frames)
    assert periods.empty and "unmet" in periods.columns


# -- the rebuilt history against the engine ------------------------------------------------------

_POP = Population.from_records(
    pods=[Pod(1, "a"), Pod(2, "b"), Pod(3, "c", private=False)],
    users=[
        User(1, 1),
        User(2, 1),
        User(3, 2),
        User(4, 2),
        User(5, 3),
        User(6, 3),
        User(7, 2, external=False),
    ],
    crosspod=[(1, 2)],
)
_ids = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8])  # 8 is unknown
_events = st.lists(
    st.tuples(st.integers(0, 40), _ids, _ids, st.sampled_from([a.value for a in ACTIONS])),
    max_size=80,
)
_policy = st.lists(
    st.tuples(st.integers(0, 40), st.sampled_from([(1, 2), (1, 3), (2, 3)]), st.booleans()),
    max_size=4,
)


def _engine_history(
    events: Events, policy: Policy
) -> tuple[list[tuple[int, str, str]], dict[int, tuple[int, ...]]]:
    """Drive the engine call by call: each record change, and the counts after each ts."""
    engine = Engine(_POP)
    pol = apply_order(policy.ts).tolist()
    pi = 0
    kinds: dict[tuple[int, int], str] = {}
    changes: list[tuple[int, str, str]] = []
    counts: dict[int, tuple[int, ...]] = {}
    for i in apply_order(events.ts).tolist():
        t = int(events.ts[i])
        while pi < len(pol) and policy.ts[pol[pi]] <= t:
            j = pol[pi]
            engine.set_crosspod(int(policy.pod_a[j]), int(policy.pod_b[j]), bool(policy.crosspod[j]))
            pi += 1
        a, b = int(events.actor[i]), int(events.target[i])
        key = (min(a, b), max(a, b))
        engine.apply(a, b, ACTIONS[int(events.action[i])], ts=t)
        conn = engine.connections()
        now = dict(zip(zip(conn.user_a.tolist(), conn.user_b.tolist()), conn.statuses()))
        before, after = kinds.get(key, "NONE"), now.get(key, "NONE")
        if before != after:
            changes.append((i, before, after))
        kinds = now
        counts[t] = tuple(list(now.values()).count(s) for s in analysis.STATUS_COLUMNS)
    return changes, counts


@settings(max_examples=60, deadline=None)
@given(_events, _policy)
def test_rebuilt_history_matches_the_engine(
    rows: list[tuple[int, int, int, str]], policy_rows: list[tuple[int, tuple[int, int], bool]]
) -> None:
    events = Events.from_records(rows)
    policy = Policy.from_records([(t, a, b, on) for t, (a, b), on in policy_rows])
    frames = analysis.from_run(Run(Path("<memory>"), _POP, events, policy))
    changes, counts = _engine_history(events, policy)

    moves = analysis.transitions(frames)
    assert list(zip(moves["event"], moves["before"], moves["after"], strict=True)) == changes

    timeline = analysis.status_timeline(frames)
    rebuilt = {
        int(t.value // 1_000_000): tuple(int(x) for x in row)
        for t, row in zip(timeline.index.as_unit("ns"), timeline.to_numpy(), strict=True)
    }
    # The timeline has a row where something changed; the engine's counts hold in between.
    last: tuple[int, ...] = (0, 0, 0)
    for t in sorted(counts):
        last = rebuilt.get(t, last)
        assert last == counts[t]

    # A request is made by each connect that leaves the record pending.
    actions = events.actions()
    made = [i for i, _, after in changes if after == "PENDING" and actions[i] == "connect"]
    table = analysis.requests(frames)
    assert table["requester"].tolist() == [int(events.actor[i]) for i in made]
    answered = table.dropna(subset=["answer"])
    assert (answered["time_to_answer"] >= pd.Timedelta(0)).all()
    assert set(answered["answer"]) <= {"ACCEPTED", "REJECTED"}


def _changes_one_by_one(frames: analysis.RunFrames, window: str | None) -> list[dict[str, object]]:
    """crosspod_changes by its definition, one policy event and one event at a time."""
    ev, pol = frames.events, frames.policy.iloc[apply_order(frames.policy["ts"].to_numpy())]
    moves = analysis.transitions(frames)
    effect = dict(zip(moves["event"], moves["effect"], strict=True))
    first, last = int(ev["ts"].min()), int(ev["ts"].max())
    rows = []
    for i, (t, a, b) in enumerate(zip(pol["ts"], pol["pod_a"], pol["pod_b"], strict=True)):
        pair = {int(a), int(b)}
        if window is not None:
            w = int(pd.Timedelta(window).total_seconds() * 1000)
        else:
            same = [
                int(u)
                for u, x, y in zip(pol["ts"], pol["pod_a"], pol["pod_b"], strict=True)
                if {x, y} == pair
            ]
            k = [
                j for j, (x, y) in enumerate(zip(pol["pod_a"], pol["pod_b"], strict=True)) if {x, y} == pair
            ].index(i)
            prev = max([first, *same[:k]])
            nxt = min([last, *same[k + 1 :]])
            w = max(0, min(int(t) - prev, nxt - int(t)))
        row: dict[str, object] = {"window": pd.Timedelta(milliseconds=w)}
        for side, (lo, hi) in (("before", (t - w, t)), ("after", (t, t + w))):
            hits = [
                e
                for e in ev.itertuples()
                if {e.actor_pod, e.target_pod} == pair and lo <= e.ts < hi and len(pair) == 2
            ]
            row[f"events_{side}"] = len(hits)
            row[f"ok_{side}"] = sum(e.code == 200 for e in hits)
            row[f"crosspod_disabled_{side}"] = sum(e.reason == "crosspod_disabled" for e in hits)
            row[f"requests_{side}"] = sum(effect.get(e.Index) in ("create", "rerequest") for e in hits)
            row[f"accepted_{side}"] = sum(effect.get(e.Index) == "accept" for e in hits)
        rows.append(row)
    return rows


@pytest.mark.parametrize("window", [None, "7ms"])
@settings(max_examples=40, deadline=None)
@given(rows=_events, policy_rows=_policy)
def test_crosspod_changes_match_their_definition(
    rows: list[tuple[int, int, int, str]],
    policy_rows: list[tuple[int, tuple[int, int], bool]],
    window: str | None,
) -> None:
    events = Events.from_records(rows or [(0, 1, 2, "connect")])
    policy = Policy.from_records([(t, a, b, on) for t, (a, b), on in policy_rows])
    frames = analysis.from_run(Run(Path("<memory>"), _POP, events, policy))
    table = analysis.crosspod_changes(frames, window)
    assert table.drop(columns=["time", "pod_a", "pod_b", "crosspod", "changed"]).to_dict("records") == (
        _changes_one_by_one(frames, window)
    )


# -- charts' tables: shares of all requests, partial bins, gathered pods, reading ----------------


def test_answered_within_by_hand(hand: analysis.RunFrames) -> None:
    shares = analysis.answered_within(hand)
    assert shares.index.total_seconds().tolist() == [0, 1, 2, 2.5, 5, 13.5]
    assert (shares * 7).round(6).to_numpy().tolist() == [
        [0, 1],
        [1, 2],
        [2, 2],
        [2, 3],
        [3, 3],
        [3, 4],
    ]
    assert shares.attrs["requests"] == 7


def test_answered_within_ends_at_the_answered_share(tmp_path: Path) -> None:
    # Two requests answered (accepted, rejected); the re-request and 31-32 wait for ever.
    events = [*EVENTS[:5], (20000, 31, 32, "connect")]
    frames = analysis.from_run(read_run(_write_run(tmp_path / "run", events, policy=None)))
    table = analysis.requests(frames)
    shares = analysis.answered_within(frames)
    assert shares.attrs["requests"] == len(table) == 4
    assert float(shares.iloc[-1].sum()) == pytest.approx(table["answer"].notna().mean()) == 2 / 4
    assert shares.iloc[-1]["ACCEPTED"] == pytest.approx((table["answer"] == "ACCEPTED").mean())


def test_answered_within_thins_to_a_log_grid_keeping_the_longest_wait(hand: analysis.RunFrames) -> None:
    shares = analysis.answered_within(hand, points=2)
    assert shares.index.tolist() == [pd.Timedelta("1ms"), pd.Timedelta("13.5s")]
    assert float(shares.iloc[-1].sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="points"):
        analysis.answered_within(hand, points=1)


def test_answered_within_without_an_answer(tmp_path: Path) -> None:
    frames = analysis.from_run(read_run(_write_run(tmp_path / "run", [(1000, 11, 21, "connect")])))
    shares = analysis.answered_within(frames)
    assert shares.empty and shares.attrs["requests"] == 1


_DAY = 86_400_000


def test_weekly_bins_start_on_the_run_s_first_day_and_mark_a_partial_last_week(tmp_path: Path) -> None:
    # 2024-01-01 is a Monday; weeks since the epoch would start on Thursdays.
    start = int(pd.Timestamp("2024-01-01").value // 1_000_000)
    events = [(start + d * _DAY + 3_600_000, 13, 21, "connect") for d in range(10)]
    frames = analysis.from_run(read_run(_write_run(tmp_path / "run", events, policy=None)))
    errors = analysis.error_counts(frames, freq="7D")
    assert errors.index.tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-08")]
    assert errors["entitlement"].tolist() == [7, 3]
    assert errors.attrs["partial"] == {pd.Timestamp("2024-01-08"): pytest.approx(3 / 7)}
    timeline = analysis.status_timeline(frames, freq="7D")
    assert timeline.index.tolist() == errors.index.tolist()


def test_error_counts_bins_a_run_of_days_by_the_day_at_least(tmp_path: Path) -> None:
    events = [(d * _DAY // 4, 13, 21, "connect") for d in range(12)]  # three days, every 6 h
    frames = analysis.from_run(read_run(_write_run(tmp_path / "run", events, policy=None)))
    assert analysis.bin_width(frames) == pd.Timedelta("6h")
    errors = analysis.error_counts(frames)
    assert errors.attrs["freq"] == pd.Timedelta("1D")
    assert errors["entitlement"].tolist() == [4, 4, 4]
    assert errors.attrs["partial"] == {}


def test_error_counts_of_a_short_run_have_no_partial_bin(hand: analysis.RunFrames) -> None:
    assert analysis.error_counts(hand, freq="5s").attrs["partial"] == {}


def test_pod_matrix_gathers_the_other_pods(hand: analysis.RunFrames) -> None:
    matrix = analysis.pod_matrix(hand, top=1, other=True)
    assert matrix.index.tolist() == [1, "other (2 pods)"] == matrix.columns.tolist()
    # Accepted at the end: 11-22 (pods 1-2), 11-31 (pods 1-3) and 31-32 (inside pod 3).
    assert matrix.to_numpy().tolist() == [[0, 2], [2, 1]]
    assert matrix.attrs["other"] == "other (2 pods)"
    assert int(matrix.to_numpy().sum()) == int(analysis.pod_matrix(hand).to_numpy().sum())
    assert analysis.pod_matrix(hand, top=3, other=True).index.tolist() == [1, 2, 3]
    assert analysis.pod_matrix(hand, top=2, other=True).index[-1] == "other (1 pod)"


def test_crosspod_matrix_leaves_the_gathered_pods_blank(hand: analysis.RunFrames) -> None:
    matrix = analysis.crosspod_matrix(hand, [1, 2, "other (1 pod)"])
    assert matrix.to_numpy().tolist() == [[False, True, False], [True, False, False], [False, False, False]]


def test_with_pod_names(hand: analysis.RunFrames) -> None:
    by_pod = analysis.with_pod_names(analysis.status_counts(hand, by="pod"), hand)
    assert by_pod.index.tolist() == ["one", "two", "three"] and by_pod.index.name == "pod"
    pairs = analysis.with_pod_names(analysis.acceptance_by_pod_pair(hand), hand)
    assert pairs.index.tolist() == [("one", "two"), ("one", "three"), ("three", "three")]
    matrix = analysis.with_pod_names(analysis.pod_matrix(hand, top=1, other=True), hand)
    assert matrix.index.tolist() == matrix.columns.tolist() == ["one", "other (2 pods)"]
    assert matrix.attrs["status"] == "ACCEPTED"
    events = analysis.with_pod_names(hand.events, hand)
    assert events.loc[7, ["actor_pod", "target_pod"]].tolist() == ["one", "three"]
    assert pd.isna(events.loc[11, "actor_pod"])  # an unknown user has no pod
    changes = analysis.with_pod_names(analysis.crosspod_changes(hand), hand)
    assert changes[["pod_a", "pod_b"]].to_numpy().tolist() == [["one", "three"]]


def test_with_pod_names_keeps_ids_where_two_pods_share_a_name(tmp_path: Path) -> None:
    pods = "pod_id,name,private\n1,same,true\n2,same,true\n3,three,false\n"
    frames = analysis.from_run(read_run(_write_run(tmp_path / "run", EVENTS, pods=pods)))
    named = analysis.with_pod_names(analysis.status_counts(frames, by="pod"), frames)
    assert named.index.tolist() == ["same (1)", "same (2)", "three"]


def test_readable_by_hand(hand: analysis.RunFrames) -> None:
    shown = analysis.readable(analysis.summary(hand))
    assert shown["events"] == "21"
    assert shown["acceptance rate"] == "42.9 %"
    assert shown["median time to accept"] == "2 s"
    events = analysis.readable(hand.events)
    assert events.loc[0, "ts"] == pd.Timestamp("1970-01-01 00:00:01")
    assert events.loc[0, "actor"] == 11  # ids stay as they are
    table = analysis.readable(analysis.requests(hand))
    assert table["time_to_answer"].tolist()[:2] == ["1 s", "14 s"]
    assert analysis.readable(analysis.acceptance_by_pod_pair(hand))["acceptance_rate"].tolist() == [
        "50.0 %",
        "0.0 %",
        "100.0 %",
    ]
    shares = pd.DataFrame({"PENDING": [0.21875]})
    assert analysis.readable(shares, percent=True).iloc[0, 0] == "21.9 %"
    assert analysis.readable(shares, percent=("PENDING",)).iloc[0, 0] == "21.9 %"
    assert analysis.readable(shares).iloc[0, 0] == "0.219"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0s", "0 s"),
        ("59.6s", "1 min"),
        ("13min", "13 min"),
        ("4h9min21.958s", "4 h 9 min"),
        ("20h57min53.9s", "20 h 58 min"),
        ("29D23h56min", "30 d"),
        ("6D22h10min", "6 d 22 h"),
    ],
)
def test_readable_rounds_durations_to_two_units(value: str, text: str) -> None:
    assert analysis.readable(pd.Series([pd.Timedelta(value)], dtype=object)).iloc[0] == text


def test_derived_tables_are_cached_and_handed_out_as_copies() -> None:
    frames = analysis.from_run(read_run("data/samples/story"))
    first = analysis.transitions(frames)
    first["extra"] = 1
    second = analysis.transitions(frames)
    assert "extra" not in second.columns
    # The copies share the one table's columns: it was computed once.
    assert np.shares_memory(second["ts"].to_numpy(), analysis.transitions(frames)["ts"].to_numpy())
    # Another run's frames have their own tables.
    other = analysis.from_run(read_run("data/samples/story"))
    assert analysis.requests(other).equals(analysis.requests(frames))
    assert analysis.status_timeline(frames, freq="1h").equals(analysis.status_timeline(other, freq="1h"))


# -- demand: wishes by pod pair, and the run cut at each crossPod stage ---------------------

# The hand world of EVENTS, crossPod 2-3 enabled at 7500 instead (1-3 never is): the wishes
# below are counted by hand. 13 is not external.
WISH_POLICY = "ts,pod_a,pod_b,crosspod\n7500,3,2,true\n"
WISHES = [
    (1000, 11, 21, "sent", 1000),  # (1, 2)
    (2000, 11, 31, "dropped", None),  # (1, 3) crossPod alone
    (2500, 21, 31, "deferred", 9000),  # (2, 3) sent once 2-3 opened
    (3000, 12, 31, "blocked", None),  # (1, 3) crossPod alone
    (4000, 13, 32, "dropped", None),  # (1, 3) 13 is not external
    (5000, 31, 11, "dropped", None),  # (1, 3) crossPod alone
    (5500, 11, 32, "dropped", None),  # (1, 3) crossPod alone, 11 again
    (6000, 22, 32, "blocked", None),  # (2, 3) enabled at the end
    (8000, 32, 31, "sent", 8000),  # (3, 3) inside the public pod
    (9000, 13, 21, "dropped", None),  # (1, 2) 13 is not external
]


@pytest.fixture(scope="module")
def wished(tmp_path_factory: pytest.TempPathFactory) -> analysis.RunFrames:
    folder = _write_run(tmp_path_factory.mktemp("wished") / "run", EVENTS, policy=WISH_POLICY)
    return analysis.from_run(read_run(folder), demand=Demand.from_records(WISHES))


def test_demand_frame_keeps_the_table_and_adds_the_pods(wished: analysis.RunFrames) -> None:
    demand = wished.demand
    assert demand is not None
    assert list(demand.columns) == [*TABLES["demand"].names, "user_pod", "target_pod"]
    assert demand["fate"].tolist() == [w[3] for w in WISHES]
    assert demand["sent_ts"].tolist() == [pd.NA if w[4] is None else w[4] for w in WISHES]
    assert demand["user_pod"].tolist() == [1, 1, 2, 1, 1, 3, 1, 2, 3, 1]
    assert repr(wished).endswith("connections, 10 wishes)")


def test_unmet_demand_by_hand(wished: analysis.RunFrames) -> None:
    table = analysis.unmet_demand(wished)
    assert table.index.tolist() == [(1, 2), (1, 3), (2, 3), (3, 3)]
    columns = ["wishes", "sent", "deferred", "blocked", "dropped", "unmet"]
    columns += ["unmet_users", "crosspod_unmet", "crosspod_users", "crosspod"]
    assert list(table.columns) == columns
    assert table.loc[(1, 2)].tolist() == [2, 1, 0, 0, 1, 1, 1, 0, 0, True]
    assert table.loc[(1, 3)].tolist() == [5, 0, 0, 1, 4, 5, 4, 4, 3, False]
    assert table.loc[(2, 3)].tolist() == [2, 0, 1, 1, 0, 1, 1, 0, 0, True]
    assert table.loc[(3, 3)].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, False]


def test_crosspod_candidates_rank_by_wishes_then_people_then_pods(tmp_path: Path) -> None:
    # No crossPod at all: every unmet wish between external users of two pods counts.
    folder = _write_run(tmp_path / "run", EVENTS[:2], crosspod="pod_a,pod_b\n", policy=None)
    wishes = [
        (1000, 11, 21, "dropped", None),  # (1, 2): 2 wishes, 2 people
        (1100, 12, 22, "blocked", None),
        (1200, 21, 31, "dropped", None),  # (2, 3): 2 wishes, 1 person
        (1300, 21, 32, "dropped", None),
        (1400, 11, 31, "dropped", None),  # (1, 3): 3 wishes, 3 people
        (1500, 12, 31, "dropped", None),
        (1600, 31, 12, "blocked", None),
        (1700, 13, 31, "dropped", None),  # not external: not counted
    ]
    frames = analysis.from_run(read_run(folder), demand=Demand.from_records(wishes))
    every = analysis.crosspod_candidates(frames)
    assert every.index.tolist() == [(1, 3), (1, 2), (2, 3)]
    assert every["crosspod_unmet"].tolist() == [3, 2, 2]
    assert every["crosspod_users"].tolist() == [3, 2, 1]
    assert every["unmet"].tolist() == [4, 2, 2]
    assert every.attrs == {"pairs": 3, "left_out": 0, "left_out_unmet": 0}
    best = analysis.crosspod_candidates(frames, top=2)
    assert best.index.tolist() == [(1, 3), (1, 2)]
    assert best.attrs == {"pairs": 3, "left_out": 1, "left_out_unmet": 2}
    named = analysis.with_pod_names(best, frames)
    assert named.index.tolist() == [("one", "three"), ("one", "two")]
    assert named.attrs == best.attrs


def test_crosspod_candidates_leave_out_pairs_with_crosspod_at_the_end(wished: analysis.RunFrames) -> None:
    table = analysis.crosspod_candidates(wished)
    assert table.index.tolist() == [(1, 3)]
    assert "crosspod" not in table.columns
    with pytest.raises(ValueError, match="top must be at least 1"):
        analysis.crosspod_candidates(wished, top=0)


def test_crosspod_periods_by_hand(wished: analysis.RunFrames) -> None:
    periods = analysis.crosspod_periods(wished)
    assert periods["start"].tolist() == [_ms(0), _ms(7500)]
    assert periods["end"].tolist() == [_ms(7500), _ms(86_400_000)]
    assert periods["days"].tolist() == [7500 / 86_400_000, 1 - 7500 / 86_400_000]
    assert periods["enabled"].tolist() == [0, 1]
    assert periods["disabled"].tolist() == [0, 0]
    # Requests at 1000, 1500, 3000, 5000 (re-request), 6000; after 7500, 1-3 has no crossPod.
    assert periods["requests"].tolist() == [5, 0]
    assert periods["accepted"].tolist() == [1, 2]  # 2000 | 8000, 10000
    assert periods["crosspod_disabled"].tolist() == [1, 6]  # 7000 | 8500, 11000, 12000 x2, 13000, 14000
    assert periods["wishes"].tolist() == [8, 2]
    assert periods["unmet"].tolist() == [6, 1]


def test_crosspod_periods_ignore_policy_that_changes_nothing(tmp_path: Path) -> None:
    policy = "ts,pod_a,pod_b,crosspod\n3000,1,2,true\n7500,3,2,true\n"  # 1-2 is enabled already
    frames = analysis.from_run(read_run(_write_run(tmp_path / "run", EVENTS, policy=policy)))
    periods = analysis.crosspod_periods(frames)
    assert periods["start"].tolist() == [_ms(0), _ms(7500)]
    assert periods["enabled"].tolist() == [0, 1]


def test_crosspod_periods_count_a_change_at_the_start_in_the_first_and_none_after_the_end(
    tmp_path: Path,
) -> None:
    # At midnight of the first day (the run's start), and on the day after the last event.
    policy = "ts,pod_a,pod_b,crosspod\n0,3,2,true\n172800000,3,1,true\n"
    frames = analysis.from_run(read_run(_write_run(tmp_path / "run", EVENTS, policy=policy)))
    periods = analysis.crosspod_periods(frames)
    assert periods["start"].tolist() == [_ms(0)] and periods["end"].tolist() == [_ms(86_400_000)]
    assert periods["enabled"].tolist() == [1]
    assert periods["days"].tolist() == [1.0]


def test_a_run_without_demand_cannot_tell_its_unmet_demand(hand: analysis.RunFrames) -> None:
    assert hand.demand is None
    for table in (analysis.unmet_demand, analysis.crosspod_candidates):
        with pytest.raises(RunDirError, match=r"^this run has no demand table \(demand.parquet\)") as err:
            table(hand)
        assert "\n" not in str(err.value)
    periods = analysis.crosspod_periods(hand)
    assert periods["wishes"].isna().all() and periods["unmet"].isna().all()
    assert periods["requests"].sum() == len(analysis.requests(hand))


def test_unmet_demand_is_computed_once_per_frames(
    wished: analysis.RunFrames, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = analysis.from_run(read_run("data/samples/story"), demand=Demand.from_records([]))
    calls: list[object] = []
    compute = analysis._unmet_demand
    monkeypatch.setattr(analysis, "_unmet_demand", lambda f: calls.append(f) or compute(f))
    first = analysis.unmet_demand(frames)
    first["extra"] = 1
    analysis.crosspod_candidates(frames)
    assert "extra" not in analysis.unmet_demand(frames).columns
    assert calls == [frames]
    assert first.empty


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `simkit run` of the tiny scenario, with its demand.parquet."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["run", "data/scenarios/tiny.toml", "--out", str(out), "--seed", "11"]) == 0
    return out


@pytest.mark.parametrize("at_once", [97, 4_000_000])  # blocks of the wishes, as on a large run
def test_unmet_demand_of_a_real_run_matches_its_definition(
    tiny_run: Path, at_once: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simkit.blocks, "ROWS_AT_ONCE", at_once)
    frames = analysis.load(tiny_run)
    demand = read_demand(tiny_run)
    assert demand is not None and frames.demand is not None and len(frames.demand) == len(demand) > 0
    assert frames.demand["ts"].tolist() == demand.ts.tolist()
    assert frames.demand["fate"].tolist() == demand.fates()
    sent = frames.demand["sent_ts"]
    assert sent.isna().tolist() == (~demand.was_sent).tolist()
    assert sent.dropna().tolist() == demand.sent_ts[demand.was_sent].tolist()
    # The definition, row by row in plain Python.
    pod = dict(zip(frames.users["user_id"].tolist(), frames.users["pod_id"].tolist(), strict=True))
    external = dict(zip(frames.users["user_id"].tolist(), frames.users["external"].tolist(), strict=True))
    enabled = {tuple(p) for p in analysis.crosspod_at_end(frames).to_numpy().tolist()}
    expected: dict[tuple[int, int], list[int]] = {}
    people: dict[tuple[int, int], tuple[set[int], set[int]]] = {}
    for user, target, fate in zip(demand.user.tolist(), demand.target.tolist(), demand.fates(), strict=True):
        pair = (min(pod[user], pod[target]), max(pod[user], pod[target]))
        row = expected.setdefault(pair, [0] * 6)
        unmet = fate in ("blocked", "dropped")
        alone = unmet and external[user] and external[target] and pair[0] != pair[1] and pair not in enabled
        row[0] += 1
        row[1] += unmet
        row[2] += alone
        row[3 + ("sent", "deferred").index(fate) if fate in ("sent", "deferred") else 5] += 1
        users = people.setdefault(pair, (set(), set()))
        if unmet:
            users[0].add(user)
        if alone:
            users[1].add(user)
    table = analysis.unmet_demand(frames)
    assert sorted(expected) == table.index.tolist()
    for pair, (wishes, unmet, alone, sent, deferred, never) in expected.items():
        got = table.loc[pair]
        assert [got["wishes"], got["unmet"], got["crosspod_unmet"]] == [wishes, unmet, alone], pair
        assert [got["sent"], got["deferred"], got["blocked"] + got["dropped"]] == [sent, deferred, never]
        assert [got["unmet_users"], got["crosspod_users"]] == [len(people[pair][0]), len(people[pair][1])]
        assert bool(got["crosspod"]) == (pair in enabled)
    # Some of tiny's unmet demand is crossPod's alone, some is not (a user not external).
    assert 0 < table["crosspod_unmet"].sum() < table["unmet"].sum()


@pytest.mark.parametrize("at_once", [97, 4_000_000])
def test_crosspod_periods_of_a_real_run_add_up(
    tiny_run: Path, at_once: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simkit.blocks, "ROWS_AT_ONCE", at_once)
    frames = analysis.load(tiny_run)
    periods = analysis.crosspod_periods(frames)
    assert frames.demand is not None
    # tiny rolls crossPod out one week in, to a quarter of the pairs still closed.
    assert periods["start"].tolist() == [pd.Timestamp("2024-03-04"), pd.Timestamp("2024-03-11")]
    assert periods["days"].tolist() == [7.0, 7.0]
    assert periods["enabled"].tolist() == [0, len(frames.policy)]
    assert periods["wishes"].sum() == len(frames.demand)
    assert periods["unmet"].sum() == frames.demand["fate"].isin(["blocked", "dropped"]).sum()
    assert periods["requests"].sum() == len(analysis.requests(frames))
    refused = (frames.events["reason"] == "crosspod_disabled").sum()
    assert periods["crosspod_disabled"].sum() == refused > 0
    # The roll-out enables pairs only, so fewer calls meet a closed pair after it.
    assert periods["crosspod_disabled"].iloc[1] < periods["crosspod_disabled"].iloc[0]


def test_crosspod_periods_count_the_same_whether_the_log_comes_in_ts_order_or_not() -> None:
    from simkit.engines import replay
    from simkit.generate import generate
    from simkit.scenario import load_scenario

    sc = load_scenario("data/scenarios/crosspod-rollout.toml").with_overrides({"time.days": 80})
    population, events, policy = generate(sc, 3)
    assert bool(np.all(events.ts[1:] >= events.ts[:-1]))  # counted as slices of the ordered log
    # The same log, latest first (equal times keep their order, so every answer is the same):
    # counted event by event.
    backwards = np.lexsort((np.arange(len(events)), -events.ts))
    shuffled = Events(
        ts=events.ts[backwards],
        actor=events.actor[backwards],
        target=events.target[backwards],
        action=events.action[backwards],
    )
    tables = [
        analysis.crosspod_periods(
            analysis.from_run(Run(Path("."), population, log, policy), replay(population, log, policy))
        )
        for log in (events, shuffled)
    ]
    assert len(tables[0]) > 2 and (tables[0]["enabled"] == 0).any()  # several stages, some without a change
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_load_tells_the_demand_fault_first_when_the_outputs_are_faulty_too(
    tiny_run: Path, tmp_path: Path
) -> None:
    # The demand is read on a thread beside the outputs: with both at fault, the demand's is told,
    # as when the tables are read one after another.
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(tiny_run, folder)
    (folder / "outcomes.parquet").unlink()
    with pytest.raises(RunDirError, match=r"outcomes\.parquet: missing"):
        analysis.load(folder)
    (folder / "demand.parquet").write_bytes((folder / "demand.parquet").read_bytes() + b"x")
    with pytest.raises(RunDirError, match=r"demand\.parquet: changed since"):
        analysis.load(folder)


def test_history_of_a_generated_log_read_in_shares_is_the_same(
    tiny_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A generated log is in apply order already: the shares' changes are put back by row.
    whole = analysis.load(tiny_run)
    assert len(whole.events) > 1_000
    monkeypatch.setattr(analysis, "_CHANGES_AT_ONCE", 300)
    monkeypatch.setattr(simkit.blocks, "ROWS_AT_ONCE", 250)
    shared = analysis.load(tiny_run)
    pd.testing.assert_frame_equal(analysis.transitions(shared), analysis.transitions(whole))
    pd.testing.assert_frame_equal(analysis.requests(shared), analysis.requests(whole))
    pd.testing.assert_frame_equal(analysis.status_timeline(shared), analysis.status_timeline(whole))
    pd.testing.assert_frame_equal(analysis.crosspod_periods(shared), analysis.crosspod_periods(whole))


@pytest.mark.parametrize("by", ["pod", "pod_pair"])
def test_status_counts_are_the_same_whether_pods_are_found_in_a_table_or_searched(
    hand: analysis.RunFrames, by: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = analysis.status_counts(hand, by=by)  # type: ignore[arg-type]
    monkeypatch.setattr(analysis, "_DENSE_IDS", 0)  # every pod id searched
    frames = analysis.RunFrames(
        hand.pods, hand.users, hand.crosspod, hand.policy, hand.events, hand.connections
    )
    pd.testing.assert_frame_equal(analysis.status_counts(frames, by=by), table)  # type: ignore[arg-type]
