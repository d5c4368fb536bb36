"""Datafeed files (``connections.md`` §6): `simkit datafeed export` and `simkit datafeed import`.

The events a replay emits are checked against an oracle written from §4 and §6 alone, in
the caller's views: a connect emits ``CONNECTIONREQUESTED`` when it is answered 200
``PENDING_OUTGOING`` (a request made), an accept emits ``CONNECTIONACCEPTED`` when the
caller saw ``PENDING_INCOMING`` before it and it is answered 200.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simkit import analysis
from simkit.cli import main
from simkit.engines import replay
from simkit.errors import DatafeedError, RunDirError
from simkit.events import Events, Policy, apply_order
from simkit.io.datafeed import (
    datafeed_events,
    export_datafeed,
    import_datafeed,
    read_datafeed,
    v4_event,
    v4_user,
)
from simkit.io.runs import Run, read_run, write_inputs
from simkit.pipeline import simulate
from simkit.population import Pod, Population, User
from simkit.results import effects, record_changes
from simkit.rules import ACTIONS, Action, Effect
from tests.conftest import copy_inputs

STORY = Path("data/samples/story")
BUNDLED = Path("data/samples/datafeed/story.jsonl")
_SWAP = {"PENDING_OUTGOING": "PENDING_INCOMING", "PENDING_INCOMING": "PENDING_OUTGOING"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny scenario, simulated (rejections, removals, mistakes and a policy change)."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    simulate("data/scenarios/tiny.toml", out, progress=False)
    return out


@pytest.fixture(params=["story", "tiny"])
def run_dir(request: pytest.FixtureRequest, tiny: Path) -> Path:
    return STORY if request.param == "story" else tiny


def emitting_rows(run: Run) -> list[tuple[int, str]]:
    """(input row, event type) of each event that emits a datafeed event, in apply order,
    found from the caller's views alone (the oracle)."""
    ev, out = run.events, replay(run.population, run.events, run.policy).outcomes
    statuses, actions = out.statuses(), ev.actions()
    seen: dict[tuple[int, int], tuple[int, str]] = {}  # pair -> (caller, the caller's view)
    found = []
    for row in apply_order(ev.ts).tolist():
        actor, target, status = int(ev.actor[row]), int(ev.target[row]), statuses[row]
        if status is None:
            continue
        pair = (min(actor, target), max(actor, target))
        caller, view = seen.get(pair, (actor, "NONE"))
        before = view if caller == actor else _SWAP.get(view, view)
        ok = out.code[row] == 200
        if actions[row] == "connect" and ok and status == "PENDING_OUTGOING":
            found.append((row, "CONNECTIONREQUESTED"))
        if actions[row] == "accept" and ok and before == "PENDING_INCOMING":
            found.append((row, "CONNECTIONACCEPTED"))
        seen[pair] = (actor, status)
    return found


def records(ev: Events) -> list[tuple[int, int, int, str]]:
    return list(zip(ev.ts.tolist(), ev.actor.tolist(), ev.target.tolist(), ev.actions()))


def feed_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- export --------------------------------------------------------------------------------------


def test_export_writes_exactly_the_events_the_rules_emit_in_apply_order(
    run_dir: Path, tmp_path: Path
) -> None:
    run = read_run(run_dir)
    counts = export_datafeed(run_dir, tmp_path / "feed.jsonl")
    events = feed_lines(tmp_path / "feed.jsonl")
    expected = emitting_rows(run)
    assert [e["type"] for e in events] == [kind for _, kind in expected]
    got = []
    for e in events:
        key, who = (
            ("connectionRequested", "toUser")
            if e["type"] == "CONNECTIONREQUESTED"
            else ("connectionAccepted", "fromUser")
        )
        got.append((e["timestamp"], e["initiator"]["user"]["userId"], e["payload"][key][who]["userId"]))
    ev = run.events
    assert got == [(int(ev.ts[r]), int(ev.actor[r]), int(ev.target[r])) for r, _ in expected]
    assert counts == {
        k: sum(kind == k for _, kind in expected) for k in ("CONNECTIONREQUESTED", "CONNECTIONACCEPTED")
    }
    assert min(counts.values()) > 0


def test_export_never_announces_an_implicit_connection() -> None:
    run = read_run(STORY)
    same_pod = {(101, 102), (203, 202)}  # connected implicitly in their private pods
    pairs = {(e["initiator"]["user"]["userId"], _other(e)["userId"]) for e in datafeed_events(run)}
    assert pairs and not pairs & same_pod


def _other(event: dict[str, Any]) -> dict[str, Any]:
    (payload,) = event["payload"].values()
    (user,) = payload.values()
    assert isinstance(user, dict)
    return user


def test_export_gives_the_same_bytes_twice_and_matches_the_bundled_sample(tmp_path: Path) -> None:
    export_datafeed(STORY, tmp_path / "a.jsonl")
    export_datafeed(STORY, tmp_path / "b" / "b.jsonl")
    data = (tmp_path / "a.jsonl").read_bytes()
    assert data == (tmp_path / "b" / "b.jsonl").read_bytes()
    # data/README.md: regenerated by `simkit datafeed export data/samples/story --out ...`.
    assert data == BUNDLED.read_bytes()


def test_event_envelope_ids_and_message_ids() -> None:
    events = list(datafeed_events(read_run(STORY)))
    assert [list(e) for e in events[:1]] == [["id", "messageId", "timestamp", "type", "initiator", "payload"]]
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids)
    for e in events:
        assert len(e["messageId"]) == 34 and set(e["messageId"]) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )
    assert (
        v4_event(events[0]["type"], ids[0], 1, {"userId": 1}, {"userId": 2})["messageId"]
        == events[0]["messageId"]
    )


def test_v4_users_show_username_display_name_and_email_where_the_table_has_them(tmp_path: Path) -> None:
    pop = Population.from_records(
        pods=[Pod(1, "bank"), Pod(2, "fund")],
        users=[
            User(10, 1, username="ann", display_name="Ann Lee", email="ann@bank.example"),
            User(20, 2, username="bo", display_name="Bo Chan", email="bo@fund.example"),
        ],
        crosspod=[(1, 2)],
    )
    events = Events.from_records([(1_000, 10, 20, "connect"), (2_000, 20, 10, "accept")])
    write_inputs(tmp_path / "named", pop, events, Policy.empty())
    export_datafeed(tmp_path / "named", tmp_path / "named.jsonl")
    requested, accepted = feed_lines(tmp_path / "named.jsonl")
    ann = {"userId": 10, "displayName": "Ann Lee", "email": "ann@bank.example", "username": "ann"}
    bo = {"userId": 20, "displayName": "Bo Chan", "email": "bo@fund.example", "username": "bo"}
    assert requested["initiator"]["user"] == ann == accepted["payload"]["connectionAccepted"]["fromUser"]
    assert requested["payload"]["connectionRequested"]["toUser"] == bo == accepted["initiator"]["user"]
    assert v4_user(pop, 20) == bo
    # Without the optional columns a user is its id and its default username.
    assert feed_lines(BUNDLED)[0]["initiator"]["user"] == {"userId": 101, "username": "user101"}


# -- import --------------------------------------------------------------------------------------


def test_import_of_export_gives_back_the_events_that_emitted(run_dir: Path, tmp_path: Path) -> None:
    run = read_run(run_dir)
    export_datafeed(run_dir, tmp_path / "feed.jsonl")
    imported = import_datafeed([tmp_path / "feed.jsonl"], run_dir, tmp_path / "back")
    back = read_run(tmp_path / "back")
    ev = run.events
    expected = [
        (
            int(ev.ts[r]),
            int(ev.actor[r]),
            int(ev.target[r]),
            "connect" if k == "CONNECTIONREQUESTED" else "accept",
        )
        for r, k in emitting_rows(run)
    ]
    assert records(back.events) == expected
    assert records(imported.feed.events) == expected
    assert (imported.feed.duplicates, imported.feed.other_types, imported.unknown_users) == (0, 0, 0)
    assert back.population.pod_id.tolist() == run.population.pod_id.tolist()
    assert back.population.user_id.tolist() == run.population.user_id.tolist()
    assert back.population.crosspod.tolist() == run.population.crosspod.tolist()
    assert records_of_policy(back.policy) == records_of_policy(run.policy)
    # Replayed at once: the outputs are there and `simkit report` can read them.
    manifest = json.loads((tmp_path / "back" / "manifest.json").read_text())
    assert manifest["summary"]["events"] == len(expected)
    assert manifest["datafeed"]["kept"] == len(expected)
    assert manifest["datafeed"]["files"][0]["file"] == "feed.jsonl"


def records_of_policy(policy: Policy) -> list[tuple[int, int, int, bool]]:
    return list(
        zip(policy.ts.tolist(), policy.pod_a.tolist(), policy.pod_b.tolist(), policy.crosspod.tolist())
    )


def test_every_event_twice_gives_the_same_run(tmp_path: Path) -> None:
    lines = BUNDLED.read_text(encoding="utf-8").splitlines()
    twice = tmp_path / "twice.jsonl"
    twice.write_text("".join(f"{line}\n{line}\n" for line in lines), encoding="utf-8")
    once = import_datafeed([BUNDLED], STORY, tmp_path / "once")
    doubled = import_datafeed([twice], STORY, tmp_path / "doubled")
    both = import_datafeed([BUNDLED, BUNDLED], STORY, tmp_path / "both")
    assert (doubled.feed.read, doubled.feed.duplicates) == (2 * len(lines), len(lines))
    assert (both.feed.read, both.feed.duplicates) == (2 * len(lines), len(lines))
    for name in ("events.parquet", "outcomes.parquet", "connections.parquet", "users.parquet"):
        data = (tmp_path / "once" / name).read_bytes()
        assert data == (tmp_path / "doubled" / name).read_bytes() == (tmp_path / "both" / name).read_bytes()
    assert records(once.feed.events) == records(doubled.feed.events)


def test_the_same_id_on_another_event_is_not_a_duplicate(tmp_path: Path) -> None:
    # Symphony gives two events made at once the same id: both are kept.
    first, second = feed_lines(BUNDLED)[:2]
    second["id"] = first["id"]
    file = tmp_path / "shared-id.jsonl"
    file.write_text(f"{json.dumps(first)}\n{json.dumps(second)}\n")
    assert (len(read_datafeed([file]).events), read_datafeed([file]).duplicates) == (2, 0)
    del first["id"]
    file.write_text(f"{json.dumps(first)}\n{json.dumps(first)}\n")
    assert len(read_datafeed([file]).events) == 2  # no id: never taken for a duplicate


def test_a_run_without_rejections_or_removals_round_trips_to_the_same_answers(
    tiny: Path, tmp_path: Path
) -> None:
    run = read_run(tiny)
    keep = np.isin(run.events.action, [ACTIONS.index(Action.CONNECT), ACTIONS.index(Action.ACCEPT)])
    assert not keep.all()  # tiny rejects and removes: those events are left out here
    ev = Events(
        ts=run.events.ts[keep],
        actor=run.events.actor[keep],
        target=run.events.target[keep],
        action=run.events.action[keep],
    )
    write_inputs(tmp_path / "calm", run.population, ev, run.policy)
    calm = read_run(tmp_path / "calm")
    original = replay(calm.population, calm.events, calm.policy)
    export_datafeed(tmp_path / "calm", tmp_path / "calm.jsonl")
    back = import_datafeed([tmp_path / "calm.jsonl"], tmp_path / "calm", tmp_path / "back").result
    rows = [r for r, _ in emitting_rows(calm)]
    assert len(rows) == len(back.outcomes) > 100
    for got, want in [
        (back.outcomes.code, original.outcomes.code[rows]),
        (back.outcomes.status, original.outcomes.status[rows]),
        (back.outcomes.request_counter, original.outcomes.request_counter[rows]),
    ]:
        assert got.tolist() == want.tolist()
    for column in (
        "user_a",
        "user_b",
        "requester",
        "status",
        "request_counter",
        "first_requested_at",
        "updated_at",
    ):
        assert getattr(back.connections, column).tolist() == getattr(original.connections, column).tolist()


@pytest.mark.parametrize("form", ["v5 pretty", "v5 per line", "array", "v5 lines of two"])
def test_v5_event_lists_and_arrays_read_like_json_lines(form: str, tmp_path: Path) -> None:
    events = feed_lines(BUNDLED)
    file = tmp_path / "feed.json"
    if form == "v5 pretty":
        file.write_text(json.dumps({"events": events, "ackId": "YWNr"}, indent=2))
    elif form == "v5 per line":
        file.write_text(json.dumps({"ackId": "YWNr", "events": events}))
    elif form == "array":
        file.write_text(json.dumps(events, indent=4))
    else:
        file.write_text(
            "".join(
                json.dumps({"events": events[i : i + 2], "ackId": str(i)}) + "\n"
                for i in range(0, len(events), 2)
            )
        )
    assert records(read_datafeed([file]).events) == records(read_datafeed([BUNDLED]).events)


def test_reads_that_found_nothing_and_empty_files_hold_no_events(tmp_path: Path) -> None:
    file = tmp_path / "polls.jsonl"
    file.write_text('{"ackId": "a"}\n{"events": null, "ackId": "b"}\n\n{"events": [], "ackId": "c"}\n')
    (tmp_path / "empty.jsonl").write_bytes(b"")
    imported = import_datafeed([file, tmp_path / "empty.jsonl"], STORY, tmp_path / "run")
    assert (imported.feed.read, len(imported.feed.events), len(imported.result.outcomes)) == (0, 0, 0)
    assert len(read_run(tmp_path / "run").events) == 0


def test_other_types_and_unknown_users_are_counted(tmp_path: Path) -> None:
    message = {
        "id": "m1",
        "timestamp": 5,
        "type": "MESSAGESENT",
        "initiator": {"user": {"userId": 101}},
        "payload": {"messageSent": {}},
    }
    stranger = v4_event("CONNECTIONREQUESTED", "s1", 1_700_000_000_001, {"userId": 999}, {"userId": 101})
    file = tmp_path / "mixed.jsonl"
    file.write_text("\n".join(json.dumps(e) for e in [message, *feed_lines(BUNDLED), stranger]) + "\n\n")
    imported = import_datafeed([file], STORY, tmp_path / "run")
    assert (imported.feed.read, len(imported.feed.events), imported.feed.other_types) == (12, 11, 1)
    assert imported.unknown_users == 1
    # The stranger's connect sorts by its timestamp, and the replay answers it.
    assert records(imported.feed.events)[1] == (1_700_000_000_001, 999, 101, "connect")
    assert imported.result.outcomes.reasons()[1] == "unknown_caller"


def test_events_are_ordered_by_timestamp_ties_in_file_order(tmp_path: Path) -> None:
    def request(eid: str, ts: int, a: int, b: int) -> str:
        return json.dumps(v4_event("CONNECTIONREQUESTED", eid, ts, {"userId": a}, {"userId": b}))

    first, second = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    first.write_text(request("a", 30, 1, 2) + "\n" + request("b", 10, 3, 4) + "\n")
    second.write_text(request("c", 10, 5, 6) + "\n" + request("d", 20, 7, 8) + "\n")
    ev = read_datafeed([first, second]).events
    assert ev.actor.tolist() == [3, 5, 7, 1]


def test_a_population_folder_without_events_gives_pods_users_and_crosspod(tmp_path: Path) -> None:
    folder = tmp_path / "pop"
    folder.mkdir()
    for name in ("pods.csv", "users.csv", "crosspod.csv"):
        shutil.copy(STORY / name, folder / name)
    imported = import_datafeed([BUNDLED], folder, tmp_path / "run")
    assert len(read_run(tmp_path / "run").policy) == 0
    assert imported.result.outcomes.code_counts()
    shutil.copy(STORY / "policy.csv", folder / "policy.csv")
    with pytest.raises(RunDirError, match="a policy table without an events table"):
        import_datafeed([BUNDLED], folder, tmp_path / "again")
    assert not (tmp_path / "again").exists()


# -- the one derivation of effects ------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["story", "tiny"])
def test_effects_per_event_agree_with_the_record_history(folder: str, tiny: Path) -> None:
    run = read_run(STORY if folder == "story" else tiny)
    outcomes = replay(run.population, run.events, run.policy).outcomes
    per_event = effects(run.events, outcomes)
    changes = record_changes(run.events, outcomes)
    assert np.flatnonzero(per_event).tolist() == sorted(changes.event.tolist())
    assert per_event[changes.event].tolist() == changes.effect.tolist()
    if folder == "story":  # the story walks every cell of the table
        assert {Effect(e) for e in changes.effect.tolist()} == set(Effect) - {Effect.KEEP}
    with pytest.raises(ValueError, match="outcomes for"):
        record_changes(Events.from_records(records(run.events)[:-1]), outcomes)


# -- bad input -------------------------------------------------------------------------------------

GOOD = json.dumps(v4_event("CONNECTIONREQUESTED", "x1", 1_700_000_000_000, {"userId": 101}, {"userId": 201}))
TO_USER = "payload.connectionRequested.toUser.userId"


def _with(path: str, value: Any, remove: bool = False) -> str:
    event = json.loads(GOOD)
    *parents, leaf = path.split(".")
    node = event
    for part in parents:
        node = node[part]
    if remove:
        del node[leaf]
    else:
        node[leaf] = value
    return json.dumps(event)


BAD: list[tuple[str, bytes, str]] = [
    (
        "not json",
        f"{GOOD}\nthis is not json\n".encode(),
        "line 2: expected a line of JSON (Expecting value at column 1)",
    ),
    (
        "no timestamp",
        _with("timestamp", None, remove=True).encode(),
        "line 1, field 'timestamp': expected an integer timestamp (ms since the epoch), found nothing",
    ),
    (
        "string timestamp",
        _with("timestamp", "1700000000000").encode(),
        "line 1, field 'timestamp': expected an integer timestamp (ms since the epoch), found the string \"1700000000000\"",
    ),
    (
        "float timestamp",
        _with("timestamp", 1.5).encode(),
        "field 'timestamp': expected an integer timestamp (ms since the epoch), found 1.5",
    ),
    ("boolean timestamp", _with("timestamp", True).encode(), "found true"),
    (
        "string user id",
        f"\n{GOOD}\n{_with('payload.connectionRequested.toUser.userId', '201')}".encode(),
        f"line 3, field '{TO_USER}': expected an integer user id, found the string \"201\"",
    ),
    (
        "no user id",
        _with("initiator.user.userId", None, remove=True).encode(),
        "line 1, field 'initiator.user.userId': expected an integer user id, found nothing",
    ),
    (
        "user id past int64",
        _with("initiator.user.userId", 2**63).encode(),
        "field 'initiator.user.userId': expected an integer user id within int64, found 9223372036854775808",
    ),
    (
        "no payload",
        _with("payload", None, remove=True).encode(),
        f"field '{TO_USER}': expected an integer user id, found nothing",
    ),
    (
        "initiator not an object",
        _with("initiator", "101").encode(),
        "field 'initiator': expected a JSON object, found the string \"101\"",
    ),
    (
        "no type",
        _with("type", None, remove=True).encode(),
        "field 'type': expected a string, the event type (e.g. CONNECTIONREQUESTED), found nothing",
    ),
    ("id not a string", _with("id", 7).encode(), "field 'id': expected a string, found 7"),
    ("not an object", f"{GOOD}\n[1]\n".encode(), "line 2, field '[0]': expected a V4Event object, found 1"),
    (
        "events not a list",
        b'{"events": 3, "ackId": "a"}\n',
        "line 1, field 'events': expected a list of V4Event objects, found 3",
    ),
    (
        "bad element of a pretty V5EventList",
        json.dumps(
            {"events": [json.loads(GOOD), json.loads(_with("timestamp", "noon"))], "ackId": "a"}, indent=2
        ).encode(),
        "line 21, field 'events[1].timestamp': expected an integer timestamp",
    ),
    (
        "broken pretty JSON",
        b'{\n  "events": [\n    {"id": 1,,}\n  ]\n}\n',
        "line 3: expected JSON: one V4Event per line, or one V5EventList",
    ),
    ("not UTF-8", GOOD.encode() + b"\n\xff\xfe\n", "line 2: expected UTF-8 text"),
]


@pytest.mark.parametrize(("data", "message"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_input_names_file_line_and_field(data: bytes, message: str, tmp_path: Path) -> None:
    file = tmp_path / "feed.jsonl"
    file.write_bytes(data)
    with pytest.raises(DatafeedError) as caught:
        read_datafeed([file])
    assert str(caught.value).startswith(f"{file}: ")
    assert message in str(caught.value)


def test_the_line_of_a_bad_element_is_where_it_starts() -> None:
    (_, data, _message) = next(case for case in BAD if case[0] == "bad element of a pretty V5EventList")
    lines = data.decode().splitlines()
    assert lines[20].strip() == "{" and '"noon"' in lines[23]


@pytest.mark.parametrize(
    ("data", "message"), [case[1:] for case in BAD[:3]], ids=[case[0] for case in BAD[:3]]
)
def test_cli_import_refuses_bad_input_in_one_line_and_writes_nothing(
    data: bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "feed.jsonl"
    file.write_bytes(data)
    code = main(["datafeed", "import", str(file), "--population", str(STORY), "--out", str(tmp_path / "run")])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"simkit: error: {file}: line ")
    assert message in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.jsonl"]


def test_cli_import_refuses_a_missing_file_and_a_folder_that_is_not_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    assert (
        main(["datafeed", "import", str(missing), "--population", str(STORY), "--out", str(tmp_path / "a")])
        == 1
    )
    assert (
        capsys.readouterr().err
        == f"simkit: error: {missing}: expected a file of datafeed events, found nothing\n"
    )
    full = copy_inputs("story", tmp_path / "full")
    assert main(["datafeed", "import", str(BUNDLED), "--population", str(STORY), "--out", str(full)]) == 1
    assert "folder is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_cli_import_writes_a_run_that_replay_and_analysis_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "run"
    assert (
        main(
            ["datafeed", "import", str(BUNDLED), str(BUNDLED), "--population", str(STORY), "--out", str(out)]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "read:        20 events: 10 kept, 10 duplicates, 0 of other types ignored" in text
    assert "unknown:     0 events name a user not in the population" in text
    assert "events:      10" in text
    assert main(["replay", str(out)]) == 0
    # What `simkit report` reads (its charts take seconds; tests/test_report.py draws them).
    frames = analysis.load(out)
    assert len(frames.events) == 10 and analysis.transitions(frames)["effect"].tolist()[:2] == [
        "create",
        "accept",
    ]


def test_an_empty_folder_may_receive_the_import(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    import_datafeed([BUNDLED], STORY, tmp_path / "empty")
    assert (tmp_path / "empty" / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "feeds" / "story.jsonl"
    assert main(["datafeed", "export", str(STORY), "--out", str(out)]) == 0
    assert capsys.readouterr().out == (
        f"datafeed:    10 events (CONNECTIONREQUESTED 7, CONNECTIONACCEPTED 3)\nwrote:       {out}\n"
    )
    assert out.read_bytes() == BUNDLED.read_bytes()


def test_cli_export_of_a_bad_run_writes_nothing(
    story_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = story_run / "events.csv"
    events.write_text(events.read_text().replace("connect", "konnect", 1))
    out = tmp_path / "out" / "feed.jsonl"
    assert main(["datafeed", "export", str(story_run), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"simkit: error: {events}: row 1, column 'action'") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    with pytest.raises(RunDirError, match="a folder; expected the path of the file"):
        export_datafeed(STORY, tmp_path)
