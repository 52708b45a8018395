"""Bytes per event on PostgreSQL, over every table and index: what a city-day costs to keep.

    .venv/bin/python bench/event_bytes.py [--users 10000] [--per-user 10] [--json out.json]

Creates a private database (``cc_bench_event_bytes``), migrates and seeds it as the service
does (``bench.benchlib.in_process_app``: the demo network and default factor sets), then
loads ``--users`` x ``--per-user`` events through the service's own batch path
(``ingest.events.ingest_batch``: validation, intake's reads, rules, COPY/pipelined writes,
ledger, usage, rollups), one user's batch at a time. Each user's events are spread over
the backfill window, two trips a day plus the day's steps: metro, bus (with tap-off, tap-on
only and a client distance), bike-share and steps, so nearly all are credited. Then
``VACUUM ANALYZE`` (free space maps and visibility maps as a settled table has them) and,
per table, ``pg_total_relation_size`` (heap, TOAST and every index) divided by the events
loaded and by the credited events. The database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
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
from benchlib import drop_database, fresh_database, in_process_app, libpq  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "cc_bench_event_bytes"

METRO_PAIRS = [("luohu", "shaoniangong"), ("guomao", "gangxia"), ("laojie", "chegongmiao"),
               ("kexueguan", "fumin"), ("huaxin", "futiankouan")]
BUS_TRIPS = [("bus-1", "b-luohu", "b-gangxia", None), ("bus-1", "b-luohu", None, None),
             ("bus-1", "b-guomao", "b-huaqianglu", 1500)]


def user_events(user: int, per_user: int, now: datetime) -> list[dict[str, Any]]:
    """``per_user`` events of one user, oldest first, two trips a day and a day's steps,
    over the days before ``now`` (all inside the backfill window)."""
    tz = now.tzinfo
    events: list[dict[str, Any]] = []
    day = 1
    while len(events) < per_user:
        date = (now - timedelta(days=day)).date()
        for slot, hour in enumerate((8, 18)):
            start = datetime(date.year, date.month, date.day, hour, (user * 7) % 50, tzinfo=tz)
            kind = (user + day + slot) % 6
            base = {"event_id": f"e{day}-{slot}", "city": "shenzhen",
                    "started_at": start.isoformat()}
            if kind in (0, 1, 2):
                entry, exit_ = METRO_PAIRS[(user + day) % len(METRO_PAIRS)]
                events.append({**base, "mode": "metro", "entry_station_id": entry,
                               "exit_station_id": exit_,
                               "ended_at": (start + timedelta(minutes=25)).isoformat()})
            elif kind in (3, 4):
                line, board, alight, metres = BUS_TRIPS[(user + day) % len(BUS_TRIPS)]
                bus: dict[str, Any] = {**base, "mode": "bus", "line_id": line,
                                       "board_stop_id": board}
                if alight is not None:
                    bus["alight_stop_id"] = alight
                    bus["ended_at"] = (start + timedelta(minutes=20)).isoformat()
                if metres is not None:
                    bus["distance_m"] = metres
                events.append(bus)
            else:
                events.append({**base, "mode": "bikeshare", "distance_m": 2500 + user % 500,
                               "ended_at": (start + timedelta(minutes=15)).isoformat()})
        events.append({"event_id": f"s{day}", "mode": "steps", "city": "shenzhen",
                       "date": date.isoformat(), "steps": 4000 + (user * 37) % 4000})
        day += 1
    return events[:per_user]


def table_bytes(dsn: str) -> dict[str, int]:
    """pg_total_relation_size (heap, TOAST, indexes) of every table of the public schema."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        rows = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC").fetchall()
    return {name: int(size) for name, size in rows}


def index_bytes(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT i.relname, pg_relation_size(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public' "
            "ORDER BY 2 DESC").fetchall()
    return {name: int(size) for name, size in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--per-user", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--database", default=DATABASE, help="its name (dropped first)")
    args = parser.parse_args()

    fresh_database(ADMIN_DSN, args.database)
    dsn = libpq(ADMIN_DSN, args.database)
    os.environ["DATABASE_URL"] = dsn.replace("postgresql://", "postgresql+psycopg://")
    os.environ.pop("REDIS_URL", None)  # the batch path takes no rate limit
    try:
        app = in_process_app()
        from carbon_credits.ingest.events import ingest_batch
        from carbon_credits.tokens import Principal

        rt = app.extensions["carbon_credits"]
        now = rt.clock()
        statuses: dict[str, int] = {}
        started = time.monotonic()
        with app.app_context():
            for user in range(args.users):
                principal = Principal(f"u{user:06d}", "user", "shenzhen")
                for item in ingest_batch(rt, principal, user_events(user, args.per_user, now)):
                    key = (item["result"]["status"] if item["result"] is not None
                           else item["error"]["code"])
                    statuses[key] = statuses.get(key, 0) + 1
                if user % 1000 == 999:
                    print(f"{user + 1} users, {time.monotonic() - started:.0f} s",
                          file=sys.stderr)
        rt.db.engine.dispose()
        sizes = table_bytes(dsn)
        indexes = index_bytes(dsn)
    finally:
        if not args.keep:
            drop_database(ADMIN_DSN, args.database)

    events = sum(n for k, n in statuses.items() if k in
                 ("credited", "capped", "held", "rejected"))
    credited = statuses.get("credited", 0) + statuses.get("capped", 0)
    total = sum(sizes.values())
    print(f"events loaded {events} ({json.dumps(statuses, sort_keys=True)}), "
          f"credited {credited}, at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"{'table':<24} {'bytes':>12} {'B/event':>9} {'B/credited':>11}")
    for name, size in sizes.items():
        print(f"{name:<24} {size:>12} {size / events:>9.1f} {size / credited:>11.1f}")
    print(f"{'all tables':<24} {total:>12} {total / events:>9.1f} {total / credited:>11.1f}")
    print("indexes (bytes/event):")
    for name, size in indexes.items():
        if size / events >= 1:
            print(f"  {name:<50} {size / events:>7.1f}")
    if args.json:
        args.json.write_text(json.dumps({"statuses": statuses, "tables": sizes,
                                         "indexes": indexes}, indent=1))


if __name__ == "__main__":
    main()
