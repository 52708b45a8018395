"""Monthly partitions of ``events`` on PostgreSQL (issue 24): names, bounds, and the
owner's operations (create ahead, detach, export, re-attach).

**The key** is ``local_date``, the event's day in the city's time zone (CITY_TIMEZONE),
which ingest already computes and stores: a trip at 00:30 on 1 February in Shanghai is
16:30 UTC on 31 January, and lands in February's partition, as the caps and reports count
it. A ``date`` has no time zone of its own, so neither PostgreSQL's session time zone nor
pg_partman's can move a boundary.

**Idempotency across partitions.** A unique key of a partitioned table must include the
partition key, so (user_id, event_id) cannot be unique on ``events`` itself: the
partitions hold (user_id, event_id, local_date), and the small unpartitioned table
``event_keys`` (user_id, event_id) -> local_date is the global key, filled by a trigger
on every insert into ``events`` (so every writer, today's and tomorrow's, keeps it). A
second copy of an event id, a month later or concurrently, meets its primary key.

**Who creates partitions.** pg_partman when it is installed (``partman.part_config``
holds ``public.events``; ``flask partitions maintain`` or pg_partman's background worker
runs ``partman.run_maintenance``), else ``ensure_months`` here, run by the same command.
Either way it is the table's owner (DDL), never the service's role (roles.py). There is
no DEFAULT partition: an event for a month without one is refused with a 503 and
Retry-After (``partition_missing``), stored by nobody, and its retry succeeds once the
month exists.

SQLite keeps one unpartitioned ``events`` (with its own unique (user_id, event_id)).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

PARENT = "events"
PREMAKE = 3
"""Months created ahead of the current one (pg_partman's ``premake``)."""
_NAME = re.compile(r"^events_p(\d{4})_(\d{2})$")


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def add_months(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    """pg_partman's name for a monthly partition of ``events``: events_p2026_02."""
    return f"{PARENT}_p{month.year:04d}_{month.month:02d}"


def parse_month(value: str) -> date:
    """'2026-02' -> date(2026, 2, 1); ValueError otherwise."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", value)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"a month as YYYY-MM, not {value!r}")
    return date(int(match.group(1)), int(match.group(2)), 1)


def months_between(first: date, last: date) -> list[date]:
    """The months from ``first``'s to ``last``'s, both included."""
    months, month = [], month_start(first)
    while month <= month_start(last):
        months.append(month)
        month = next_month(month)
    return months


def is_partitioned(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql" and bool(conn.scalar(text(
        "SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'public.events'::regclass")))


def uses_partman(conn: Connection) -> bool:
    """pg_partman maintains ``events`` (installed, and the table registered with it)."""
    if not conn.scalar(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_partman'")):
        return False
    schema = conn.scalar(text(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_partman'"))
    return bool(conn.scalar(text(
        f"SELECT 1 FROM {schema}.part_config WHERE parent_table = 'public.events'")))


def attached(conn: Connection) -> dict[date, str]:
    """The months attached to ``events``, by their partitions' names."""
    rows = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'public.events'::regclass")).scalars()
    return {month: name for name in rows if (month := _month_of(name)) is not None}


def detached(conn: Connection) -> dict[date, str]:
    """Tables named as months of ``events`` that are not attached (detached, or restored
    from an export)."""
    names = conn.execute(text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname LIKE 'events\\_p%' "
        "AND NOT c.relispartition")).scalars()
    return {month: name for name in names if (month := _month_of(name)) is not None}


def _month_of(name: str) -> date | None:
    match = _NAME.match(name)
    return date(int(match.group(1)), int(match.group(2)), 1) if match else None


def ensure_months(conn: Connection, months: list[date]) -> list[str]:
    """Create the monthly partitions of ``months`` that are missing (neither attached nor
    detached: a detached month is the operator's, re-attached by ``attach``); the names
    created. The service's own job, used where pg_partman is not installed."""
    have = set(attached(conn)) | set(detached(conn))
    made = []
    for month in months:
        if month in have:
            continue
        name = partition_name(month)
        conn.execute(text(
            f"CREATE TABLE {name} PARTITION OF events FOR VALUES FROM "
            f"('{month.isoformat()}') TO ('{next_month(month).isoformat()}')"))
        made.append(name)
    return made


def maintain(conn: Connection, today: date) -> list[str]:
    """Create the months ahead (through ``PREMAKE`` months after ``today``'s): by
    pg_partman's ``run_maintenance`` when it maintains the table, else ``ensure_months``
    from the newest attached month on. The partitions created. (pg_partman counts from
    the database server's clock, not ``today``.)"""
    before = set(attached(conn).values())
    if uses_partman(conn):
        schema = conn.scalar(text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
            "ON n.oid = e.extnamespace WHERE e.extname = 'pg_partman'"))
        conn.execute(text(f"SELECT {schema}.run_maintenance('public.events')"))
    else:
        months = attached(conn)
        first = max(months) if months else month_start(today)
        ensure_months(conn, months_between(first, add_months(month_start(today), PREMAKE)))
    return sorted(set(attached(conn).values()) - before)


def detach(conn: Connection, month: date) -> str:
    """Detach a month's partition from ``events``: its rows leave every query of the
    service (reads, replays' lookups) but stay in their own table until dropped. Its
    events' ``event_keys`` rows stay, so their ids stay taken."""
    name = attached(conn).get(month)
    if name is None:
        raise LookupError(f"no attached partition for {month:%Y-%m}")
    _lock_referenced(conn)
    conn.execute(text(f"ALTER TABLE events DETACH PARTITION {name}"))
    return name


REFERENCED = ("users", "factor_versions", "networks")
"""The tables events' foreign keys point at, in the order ingest first reads them (the
accounts with their users, then factor versions and networks)."""


def _lock_referenced(conn: Connection) -> None:
    """Take the locks DETACH and ATTACH need on the tables events' foreign keys reference,
    first and in ingest's order. Left to itself, ATTACH took them one by one while ingest
    transactions held one and waited for the next: a deadlock (seen in
    bench/partition_bench.py). Taken first, the command waits for the transactions in
    flight and new ones wait for it, for the catalog change only (no scan: ``attach``
    adds the month's bounds as a CHECK beforehand)."""
    conn.execute(text(f"LOCK TABLE {', '.join(REFERENCED)} IN ACCESS EXCLUSIVE MODE"))


def attach(conn: Connection, month: date) -> str:
    """Attach a detached (or restored) month again. PostgreSQL checks every row against
    the month's bounds while attaching."""
    name = detached(conn).get(month)
    if name is None:
        raise LookupError(f"no detached table for {month:%Y-%m}")
    bounds = f"('{month.isoformat()}') TO ('{next_month(month).isoformat()}')"
    # The CHECK proves the rows in bounds while only this table is locked, so ATTACH,
    # which then holds the parent's and the referenced tables' locks, skips its scan.
    conn.execute(text(
        f"ALTER TABLE {name} ADD CONSTRAINT {name}_bounds CHECK (local_date >= "
        f"'{month.isoformat()}' AND local_date < '{next_month(month).isoformat()}')"))
    _lock_referenced(conn)
    conn.execute(text(f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM {bounds}"))
    conn.execute(text(f"ALTER TABLE {name} DROP CONSTRAINT {name}_bounds"))
    return name


@dataclass(frozen=True)
class Export:
    csv_path: Path
    manifest_path: Path
    manifest: dict[str, Any]


MRV_TOTALS = (
    "SELECT city, mode, count(*) AS events, "
    "count(*) FILTER (WHERE status = 'credited') AS credited_events, "
    "sum(avoided_ug) AS avoided_ug, sum(credited_ug) AS credited_ug, "
    "sum(points) AS points, sum(activity) AS activity "
    "FROM {table} GROUP BY city, mode ORDER BY city, mode")
"""A month's MRV totals per city and mode, as the manifest records them: micrograms avoided
(what the methodology computed) and credited (after caps), points and the activity the
factors multiplied."""


EXPORT_BATCH_IDS = 20_000
"""Ids per COPY of a throttled export (a month's ids are nearly contiguous: its events are
written in its days, interleaved only with a backfill's)."""


def export(conn: Connection, month: date, directory: Path,
           rows_per_s: int | None = None) -> Export:
    """Write a month's partition (attached or detached) as CSV with a header, and a JSON
    manifest beside it: the month, the row count, the file's SHA-256 and the MRV totals.

    ``rows_per_s`` throttles it (policy: an export is not urgent, ingest is): the rows go
    by ranges of ids, each range one COPY, pausing after each so the average stays at or
    below the rate; the server then spends a bounded share of a core on it
    (BENCHMARKS.md, figure 17b). None: one COPY, as fast as the server goes."""
    name = attached(conn).get(month) or detached(conn).get(month)
    if name is None:
        raise LookupError(f"no table for {month:%Y-%m}")
    directory.mkdir(parents=True, exist_ok=True)
    csv_path = directory / f"{name}.csv"
    driver = conn.connection.driver_connection
    digest = hashlib.sha256()
    if rows_per_s is None:
        ranges: list[tuple[int, int] | None] = [None]
    else:
        low, high = conn.execute(text(f"SELECT min(id), max(id) FROM {name}")).one()
        ranges = [(start, start + EXPORT_BATCH_IDS)
                  for start in range(low or 0, (high or -1) + 1, EXPORT_BATCH_IDS)] or [None]
    started, written = time.monotonic(), 0
    with open(csv_path, "wb") as out, driver.cursor() as cursor:  # type: ignore[union-attr]
        for n, span in enumerate(ranges):
            where = "" if span is None else f"WHERE id >= {span[0]} AND id < {span[1]} "
            header = "true" if n == 0 else "false"
            with cursor.copy(f"COPY (SELECT * FROM {name} {where}ORDER BY id) TO STDOUT "
                             f"WITH (FORMAT csv, HEADER {header})") as copy:
                for block in copy:
                    chunk = bytes(block)
                    digest.update(chunk)
                    out.write(chunk)
            if rows_per_s is not None:
                written += max(0, cursor.rowcount)
                ahead = written / rows_per_s - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    totals = [dict(row._mapping) for row in conn.execute(text(MRV_TOTALS.format(table=name)))]
    rows = sum(t["events"] for t in totals)
    manifest = {
        "table": name, "month": f"{month:%Y-%m}", "from": month.isoformat(),
        "to": next_month(month).isoformat(), "partition_key": "local_date (city time)",
        "rows": rows, "csv": csv_path.name, "sha256": digest.hexdigest(),
        "mrv_totals": [{k: v if k in ("city", "mode") else int(v) for k, v in t.items()}
                       for t in totals],
    }
    manifest_path = directory / f"{name}.manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return Export(csv_path, manifest_path, manifest)


def restore(conn: Connection, month: date, csv_path: Path) -> str:
    """Load an exported month back as a detached table (``attach`` then re-attaches it):
    for a month whose table was dropped after its export."""
    name = partition_name(month)
    if month in attached(conn) or month in detached(conn):
        raise LookupError(f"{name} exists already")
    with open(csv_path, newline="") as f:
        header = next(csv.reader(f))
    if not all(re.fullmatch(r"[a-z_]+", column) for column in header):
        raise ValueError(f"{csv_path}: a header of column names expected")
    conn.execute(text(f"CREATE TABLE {name} (LIKE events INCLUDING ALL)"))
    driver = conn.connection.driver_connection
    with open(csv_path, "rb") as f, driver.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
            f"COPY {name} ({', '.join(header)}) FROM STDIN WITH (FORMAT csv, HEADER)"
    ) as copy:
        while block := f.read(1 << 16):
            copy.write(block)
    return name
