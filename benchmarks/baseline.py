"""`baseline`: the plain Python loop over dicts that a user would write instead of simkit.

The benchmarks' point of comparison. It applies the rules of ``connections.md`` one event
at a time, the way one writes them by hand: rows as dicts, statuses as strings, pair
records in a dict, crossPod pairs in a set of frozensets, if/elif for the table. It gives
the same answers as simkit (the benchmarks check this), but it is not part of simkit and
nothing imports it except the benchmarks.

Run as a script it is the whole job a user would run on a run folder: read the Parquet
tables into lists of dicts, replay, write ``outcomes.parquet`` and ``connections.parquet``::

    python benchmarks/baseline.py RUN_DIR --out DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["replay_folder", "replay_rows"]

Row = dict[str, Any]


def _view(record: Row | None, caller: int) -> str:
    """The status of a stored record as `caller` sees it."""
    if record is None:
        return "NONE"
    if record["status"] == "PENDING":
        return "PENDING_OUTGOING" if record["requester"] == caller else "PENDING_INCOMING"
    return str(record["status"])


def _table(records: dict[tuple[int, int], Row], key: tuple[int, int], a: int, action: str, ts: int) -> Row:
    """§4: answer one action on a pair record, changing the record as the table says."""
    record = records.get(key)
    view = _view(record, a)
    code, reason = 200, None
    if record is None:
        if action == "connect":
            record = {"requester": a, "status": "PENDING", "counter": 1, "first": ts, "updated": ts}
            records[key] = record
        elif action == "remove":
            code, reason = 400, "not_connected"
        else:
            code, reason = 404, "not_found"
    elif action == "connect":
        if view in ("PENDING_OUTGOING", "PENDING_INCOMING"):
            code, reason = 400, "already_pending"
        elif view == "REJECTED":
            record.update(requester=a, status="PENDING", counter=record["counter"] + 1, updated=ts)
    elif action == "accept":
        if view == "PENDING_OUTGOING":
            code, reason = 400, "own_request"
        elif view == "PENDING_INCOMING":
            record.update(status="ACCEPTED", updated=ts)
        elif view == "REJECTED":
            code, reason = 400, "not_pending"
    elif action == "reject":
        if view == "PENDING_OUTGOING":
            code, reason = 400, "own_request"
        elif view == "PENDING_INCOMING":
            record.update(status="REJECTED", updated=ts)
        elif view == "ACCEPTED":
            code, reason = 400, "accepted"
        else:
            code, reason = 400, "not_pending"
    elif view == "PENDING_INCOMING":  # remove
        record.update(status="REJECTED", updated=ts)
    elif view == "ACCEPTED":
        del records[key]
        record = None
    elif view == "REJECTED" and record["requester"] != a:
        record.update(status="PENDING", updated=ts)
    else:
        code, reason = 400, "not_connected"
    counter = record["counter"] if record is not None else 0
    return {"code": code, "reason": reason, "status": _view(record, a), "request_counter": counter}


def replay_rows(
    pods: list[Row], users: list[Row], crosspod: list[Row], policy: list[Row], events: list[Row]
) -> tuple[list[Row], list[Row]]:
    """Replay events given as dicts; return the outcome rows and the final connection rows."""
    private = {p["pod_id"]: p["private"] for p in pods}
    user = {u["user_id"]: u for u in users}
    enabled = {frozenset((c["pod_a"], c["pod_b"])) for c in crosspod}
    changes = sorted(policy, key=lambda p: p["ts"])
    records: dict[tuple[int, int], Row] = {}
    outcomes: list[Row] = [{}] * len(events)
    next_change = 0
    for i in sorted(range(len(events)), key=lambda i: events[i]["ts"]):
        event = events[i]
        ts, a, b, action = event["ts"], event["actor"], event["target"], event["action"]
        while next_change < len(changes) and changes[next_change]["ts"] <= ts:
            change = changes[next_change]
            pair = frozenset((change["pod_a"], change["pod_b"]))
            if change["crosspod"]:
                enabled.add(pair)
            else:
                enabled.discard(pair)
            next_change += 1
        caller, other = user.get(a), user.get(b)
        key = (min(a, b), max(a, b))
        if caller is None:
            outcomes[i] = {"code": 401, "reason": "unknown_caller", "status": None, "request_counter": 0}
        elif a == b:
            outcomes[i] = {"code": 400, "reason": "self", "status": None, "request_counter": 0}
        elif other is None:
            outcomes[i] = {"code": 404, "reason": "unknown_user", "status": None, "request_counter": 0}
        elif caller["pod_id"] == other["pod_id"] and private[caller["pod_id"]]:
            ok = action in ("connect", "accept")
            outcomes[i] = {
                "code": 200 if ok else 400,
                "reason": None if ok else "implicit",
                "status": "ACCEPTED",
                "request_counter": 0,
            }
        elif caller["pod_id"] != other["pod_id"] and not other["external"] and caller["external"]:
            outcomes[i] = {"code": 404, "reason": "unknown_user", "status": None, "request_counter": 0}
        elif caller["pod_id"] != other["pod_id"] and (
            not caller["external"] or frozenset((caller["pod_id"], other["pod_id"])) not in enabled
        ):
            record = records.get(key)
            outcomes[i] = {
                "code": 403,
                "reason": "entitlement" if not caller["external"] else "crosspod_disabled",
                "status": _view(record, a),
                "request_counter": record["counter"] if record else 0,
            }
        else:
            outcomes[i] = _table(records, key, a, action, ts)
    connections = [
        {
            "user_a": a,
            "user_b": b,
            "requester": r["requester"],
            "status": r["status"],
            "request_counter": r["counter"],
            "first_requested_at": r["first"],
            "updated_at": r["updated"],
        }
        for (a, b), r in sorted(records.items())
    ]
    return outcomes, connections


def replay_folder(run_dir: str | Path, out: str | Path) -> int:
    """Read a Parquet run folder as dicts, replay it, write the two outputs; return #events."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    run_dir, out = Path(run_dir), Path(out)
    names = ("pods", "users", "crosspod", "policy", "events")
    tables = {n: pq.read_table(run_dir / f"{n}.parquet").to_pylist() for n in names}
    outcomes, connections = replay_rows(*(tables[n] for n in names))
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(outcomes), out / "outcomes.parquet")
    pq.write_table(pa.Table.from_pylist(connections), out / "connections.parquet")
    return len(outcomes)


def main() -> None:
    parser = argparse.ArgumentParser(description="Replay a Parquet run folder with a plain dict loop.")
    parser.add_argument("run_dir", type=Path, help="run folder with pods, users, crosspod, policy, events")
    parser.add_argument("--out", type=Path, required=True, help="folder for the two output files")
    args = parser.parse_args()
    print(f"events: {replay_folder(args.run_dir, args.out):,}")


if __name__ == "__main__":
    main()
