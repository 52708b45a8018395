"""A group's writes in three shapes: what fewer, larger statements would save.

    .venv/bin/python bench/write_shapes.py [--groups 1000] [--group 4] [--rounds 3]

A group commit's transaction ends with the writes of its events (``intake._write``): one
statement per row and table, pipelined with the COMMIT in one round trip. BENCHMARKS.md
("Ingest", eighth round) named set-based writes as a way to make a post cheaper. This
measures it before building it, on the service's own schema (tables, indexes, foreign keys,
checks and triggers as migrated): it creates a private database (``cc_bench_shapes``), seeds
it as the service does, posts one metro trip through the app for a real events row,
creates 400 users with accounts and daily usage rows, then writes
``--groups`` groups of ``--group`` events (one per user: an event, its earn entry, its
account, its usage row) in each shape, shapes alternating by round, and prints the CPU per
event of this process (the client: psycopg and the values) and of its PostgreSQL backend
(from /proc), and their sum:

- ``rows``: the service's shape: one INSERT or UPDATE per row and table (executemany),
  then COMMIT, in one pipeline;
- ``unnest``: one statement per table, each column bound as an array
  (``INSERT ... SELECT FROM unnest(...)``, ``UPDATE ... FROM unnest(...)``), then COMMIT;
- ``per-event``: one statement per event writing its four rows (data-modifying CTEs, as
  the issue's calibration handler writes an event, a ledger entry and a balance in one
  statement), then COMMIT.

Only these four tables' writes are measured (16 statements and a COMMIT for a group of
four in the service's shape, 4 and a COMMIT in the others): a real group also sends its
reads (8 statements with the BEGIN) and report rollup upserts (about one per event), the
same in every shape, and runs the rules. Each group is one transaction, as in the
service. Each round runs the shapes in another order; the summary gives each shape's
round of median client + server CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchlib import drop_database, fresh_database  # noqa: E402  (bench/)

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "cc_bench_shapes"
DSN = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
USERS = 400
TICKS = os.sysconf("SC_CLK_TCK")

EVENT_COLUMNS = ("id", "user_id", "event_id", "mode", "city", "occurred_at", "ends_at",
                 "local_date", "device_id", "origin", "destination", "payload_hash",
                 "status", "reason", "avoided_ug", "credited_ug", "points",
                 "factor_version_id", "methodology_version", "network_id", "activity",
                 "notes", "created_at")
EVENT_TYPES = ("bigint", "varchar", "varchar", "varchar", "varchar", "timestamptz",
               "timestamptz", "date", "varchar", "varchar", "varchar", "bytea", "varchar",
               "varchar", "bigint", "bigint", "bigint", "bigint", "varchar", "bigint", "int",
               "jsonb", "timestamptz")
ENTRY_COLUMNS = ("user_id", "seq", "kind", "points", "ug", "balance_after", "event_pk",
                 "mode", "factor_version_id", "created_at", "hash")
ENTRY_TYPES = ("varchar", "bigint", "varchar", "bigint", "bigint", "bigint", "bigint",
               "varchar", "bigint", "timestamptz", "bytea")
ACCOUNT_COLUMNS = ("balance_points", "lifetime_points", "lifetime_ug", "carry_ug",
                   "entry_count", "last_hash", "updated_at")
ACCOUNT_TYPES = ("bigint", "bigint", "bigint", "bigint", "bigint", "bytea", "timestamptz")
USAGE_COLUMNS = ("events", "credited_ug", "points", "max_quantity", "last_post_at")
USAGE_TYPES = ("int", "bigint", "bigint", "bigint", "timestamptz")


def _placeholders(n: int) -> str:
    return ", ".join(["%s"] * n)


INSERT_EVENT = (f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
                f"VALUES ({_placeholders(len(EVENT_COLUMNS))})")
INSERT_ENTRY = (f"INSERT INTO ledger_entries ({', '.join(ENTRY_COLUMNS)}) "
                f"VALUES ({_placeholders(len(ENTRY_COLUMNS))})")
UPDATE_ACCOUNT = (f"UPDATE accounts SET {', '.join(f'{c} = %s' for c in ACCOUNT_COLUMNS)} "
                  "WHERE user_id = %s")
UPDATE_USAGE = (f"UPDATE daily_usage SET {', '.join(f'{c} = %s' for c in USAGE_COLUMNS)} "
                "WHERE user_id = %s AND local_date = %s AND mode = %s")


def _unnest(types: tuple[str, ...]) -> str:
    return ", ".join(f"%s::{t}[]" for t in types)


UNNEST_EVENTS = (f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
                 f"SELECT * FROM unnest({_unnest(EVENT_TYPES)})")
UNNEST_ENTRIES = (f"INSERT INTO ledger_entries ({', '.join(ENTRY_COLUMNS)}) "
                  f"SELECT * FROM unnest({_unnest(ENTRY_TYPES)})")
UNNEST_ACCOUNTS = (
    f"UPDATE accounts a SET {', '.join(f'{c} = v.{c}' for c in ACCOUNT_COLUMNS)} "
    f"FROM unnest({_unnest(ACCOUNT_TYPES)}, %s::varchar[]) "
    f"AS v({', '.join(ACCOUNT_COLUMNS)}, user_id) WHERE a.user_id = v.user_id")
UNNEST_USAGE = (
    f"UPDATE daily_usage u SET {', '.join(f'{c} = v.{c}' for c in USAGE_COLUMNS)} "
    f"FROM unnest({_unnest(USAGE_TYPES)}, %s::varchar[], %s::date[], "
    f"%s::varchar[]) AS v({', '.join(USAGE_COLUMNS)}, user_id, local_date, mode) "
    "WHERE u.user_id = v.user_id AND u.local_date = v.local_date AND u.mode = v.mode")
PER_EVENT = (
    f"WITH e AS ({INSERT_EVENT}), l AS ({INSERT_ENTRY}), a AS ({UPDATE_ACCOUNT}) "
    f"{UPDATE_USAGE}")


class Rows:
    """Each user's next event, entry, account and usage values, as ``intake._write``
    has them."""

    def __init__(self, template: dict[str, Any], next_id: int) -> None:
        self.template = template
        self.next_id = next_id
        self.entries = [0] * USERS
        self.usage = [0] * USERS
        self.day = datetime.now(UTC).date() - timedelta(days=1)
        self.n = 0

    def group(self, users: list[int]) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        out = []
        for user in users:
            self.n += 1
            self.entries[user] += 1
            self.usage[user] += 1
            event_pk, self.next_id = self.next_id, self.next_id + 1
            seq = self.entries[user]
            uid = f"shape{user}"
            started = now - timedelta(days=1, minutes=self.n)
            event = {**self.template, "id": event_pk, "user_id": uid,
                     "event_id": f"e{self.n}", "occurred_at": started,
                     "ends_at": started + timedelta(minutes=30), "local_date": self.day,
                     "notes": None, "payload_hash": self.n.to_bytes(32, "big"),
                     "created_at": now}
            entry = {"user_id": uid, "seq": seq, "kind": "earn", "points": 1, "ug": 376_000,
                     "balance_after": seq, "event_pk": event_pk, "mode": "metro",
                     "factor_version_id": self.template["factor_version_id"],
                     "created_at": now, "hash": seq.to_bytes(32, "big")}
            account = {"balance_points": seq, "lifetime_points": seq,
                       "lifetime_ug": 376_000 * seq, "carry_ug": 0, "entry_count": seq,
                       "last_hash": seq.to_bytes(32, "big"), "updated_at": now,
                       "user_id": uid}
            usage = {"events": self.usage[user], "credited_ug": 376_000 * self.usage[user],
                     "points": self.usage[user], "max_quantity": 0, "last_post_at": now,
                     "user_id": uid, "local_date": self.day, "mode": "metro"}
            out.append({"event": [event[c] for c in EVENT_COLUMNS],
                        "entry": [entry[c] for c in ENTRY_COLUMNS],
                        "account": [account[c] for c in (*ACCOUNT_COLUMNS, "user_id")],
                        "usage": [usage[c] for c in (*USAGE_COLUMNS, "user_id", "local_date",
                                                     "mode")]})
        return out


def write_rows(conn: psycopg.Connection[Any], group: list[dict[str, Any]]) -> None:
    with conn.pipeline(), conn.cursor() as cur:
        cur.executemany(INSERT_EVENT, [r["event"] for r in group])
        cur.executemany(INSERT_ENTRY, [r["entry"] for r in group])
        cur.executemany(UPDATE_ACCOUNT, [r["account"] for r in group])
        cur.executemany(UPDATE_USAGE, [r["usage"] for r in group])
        cur.execute("COMMIT")


def _columns(rows: list[list[Any]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


def write_unnest(conn: psycopg.Connection[Any], group: list[dict[str, Any]]) -> None:
    with conn.pipeline(), conn.cursor() as cur:
        cur.execute(UNNEST_EVENTS, _columns([r["event"] for r in group]))
        cur.execute(UNNEST_ENTRIES, _columns([r["entry"] for r in group]))
        cur.execute(UNNEST_ACCOUNTS, _columns([r["account"] for r in group]))
        cur.execute(UNNEST_USAGE, _columns([r["usage"] for r in group]))
        cur.execute("COMMIT")


def write_per_event(conn: psycopg.Connection[Any], group: list[dict[str, Any]]) -> None:
    with conn.pipeline(), conn.cursor() as cur:
        cur.executemany(PER_EVENT, [[*r["event"], *r["entry"], *r["account"], *r["usage"]]
                                    for r in group])
        cur.execute("COMMIT")


SHAPES = {"rows": write_rows, "unnest": write_unnest, "per-event": write_per_event}


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def setup() -> tuple[dict[str, Any], int]:
    """The database, seeded; a real event row's values; the next free event id."""
    from benchlib import in_process_app

    from tests import factories

    fresh_database(ADMIN_DSN, DATABASE)
    os.environ["DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
    app = in_process_app()
    rt = app.extensions["carbon_credits"]
    token = rt.codec.encode("shape-template", "user", "shenzhen", 3600)
    r = app.test_client().post(
        "/v1/events", json=factories.metro(start=factories.today_at(8) - timedelta(days=1)),
        headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.json
    rt.db.dispose()
    with psycopg.connect(DSN) as conn:
        cur = conn.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events")
        template = dict(zip(EVENT_COLUMNS, cur.fetchone() or (), strict=True))
        now = datetime.now(UTC)
        day = now.date() - timedelta(days=1)
        for user in range(USERS):
            uid = f"shape{user}"
            conn.execute("INSERT INTO users (id, city, frozen, created_at) "
                         "VALUES (%s, 'shenzhen', false, %s)", (uid, now))
            conn.execute("INSERT INTO accounts (user_id, balance_points, lifetime_points, "
                         "lifetime_ug, carry_ug, entry_count, last_hash, updated_at) "
                         "VALUES (%s, 0, 0, 0, 0, 0, %s, %s)", (uid, bytes(32), now))
            conn.execute("INSERT INTO daily_usage (user_id, local_date, mode, events, "
                         "credited_ug, points, max_quantity, last_post_at) "
                         "VALUES (%s, %s, 'metro', 0, 0, 0, 0, NULL)", (uid, day))
        next_id = (conn.execute("SELECT max(id) FROM events").fetchone() or (0,))[0] + 1000
    return template, next_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    template, next_id = setup()
    rows = Rows(template, next_id)
    turn = 0
    totals: dict[str, list[tuple[float, float]]] = {name: [] for name in SHAPES}
    try:
        with psycopg.connect(DSN) as conn:
            pid = conn.info.backend_pid

            def groups(count: int) -> list[list[dict[str, Any]]]:
                nonlocal turn
                out = []
                for _ in range(count):
                    out.append(rows.group([(turn + k) % USERS for k in range(args.group)]))
                    turn += args.group
                return out

            for write in SHAPES.values():  # warm-up: statements prepared
                for group in groups(10):
                    write(conn, group)
            names = list(SHAPES)
            for round_ in range(args.rounds):
                # Each round in another order: the tables grow over the run, so no shape
                # always comes first.
                for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                    write = SHAPES[name]
                    work = groups(args.groups)
                    client, server = time.process_time(), backend_cpu(pid)
                    for group in work:
                        write(conn, group)
                    events = args.groups * args.group
                    client = (time.process_time() - client) / events * 1000
                    server = (backend_cpu(pid) - server) / events * 1000
                    totals[name].append((client, server))
                    print(f"round {round_ + 1} {name:9s} client {client:.3f} ms/event, "
                          f"server {server:.3f}, sum {client + server:.3f}", flush=True)
    finally:
        drop_database(ADMIN_DSN, DATABASE)
    # Each shape's round of median sum, its client and server parts beside it.
    median = {name: sorted(runs, key=sum)[len(runs) // 2] for name, runs in totals.items()}
    base = sum(median["rows"])
    print(f"\nthe round of median sum of {args.rounds}, groups of {args.group} "
          f"({args.groups} groups per shape and round):")
    for name, (client, server) in median.items():
        print(f"  {name:9s} client {client:.3f} ms/event, server {server:.3f}, "
              f"sum {client + server:.3f} ({(client + server) / base:.2f} of rows)")


if __name__ == "__main__":
    main()
