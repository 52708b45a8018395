"""Batch ingest against COPY: events/s through POST /v1/events/batch vs the same rows by COPY.

    .venv/bin/python bench/batch_bench.py [--duration 90] [--connections 10] [--batch 500] \\
        [--copy-runs 3] [--keep] [--update BENCHMARKS.md]

What is measured, in one run on this machine:

1. **Batch ingest.** A fresh database ``cc_bench_batch`` (``flask init-db``) and the service
   under gunicorn with the repo's deploy/gunicorn.conf.py (PostgreSQL + Redis, real JWT auth, rate
   limits set far above the load as ingest_bench.py does, plausibility rules, methodology,
   caps, ledger, rollups). wrk (1 thread, ``--connections``, ``--duration`` s, 120 s timeout)
   with bench/wrk/batch.lua posts one batch of ``--batch`` events per request, each request
   for a new user (a real JWT each). A batch is one user's valid history: metro trips on the
   last 30 days (inside the backfill window with an hour's margin at each end), 40 minutes
   apart, 16 per local day at most (``max_trips_per_day``), 10-25 minutes each at 8-24 km/h
   (``speed_out_of_bounds``: 5-90 km/h), never overlapping, between demo stations 2-6 km
   apart so that 16 trips and the day's steps stay under the 5,000 g daily cap; plus one
   steps post per local day (at most 8,000 steps, below 220 steps/min since midnight). 16
   trips a day over 30 days is at most ~496 trips, so a 500-event batch needs the steps
   posts: ~470 metro trips and ~30 step counts, every one credited.
   Figure: events committed per second, counted in the database (events whose
   ``created_at`` falls in the run after the first ``--warmup`` seconds, divided by that
   time), beside wrk's own count (credited items in complete replies / duration).
2. **COPY.** Every row the service wrote for those events, read back table by table
   (``users``, ``accounts``, ``events``, ``ledger_entries``, ``daily_usage``,
   ``report_rollups``: all that a credited event writes; no
   ``device_accounts`` since no X-Device-Id is sent) and written with psycopg
   ``COPY ... FROM STDIN (FORMAT binary)`` into a fresh database with the same schema
   (migrations, indexes, constraints, triggers; made by ``init-db`` then cloned as a
   template), one connection, one transaction, commit included, no application logic.
   Figure: events per second (events copied / seconds), median of ``--copy-runs``.

Ratio: batch events/s / COPY events/s (target >= 0.2), and the time a city-day of 15 M
events would take at the measured batch rate. Results print as JSON and are saved under
bench/results/; the databases are dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from benchlib import (  # noqa: E402
    database_size,
    db_counters,
    drop_database,
    libpq,
    service_env,
    update_section,
    write_tokens,
)
from ingest_bench import (  # noqa: E402
    ROOT,
    SECRET,
    UNLIMITED,
    VENV_BIN,
    free_port,
    fresh_database,
    start_gunicorn,
    stop,
    wrk_latency_ms,
    wrk_non_2xx,
)
from report_bench import machine  # noqa: E402

from carbon_credits.networks import demo_network  # noqa: E402
from methodology.network import TransitNetwork  # noqa: E402

SERVICE_DB, TEMPLATE_DB = "cc_bench_batch", "cc_bench_batch_copy"
BEGIN, END = "<!-- batch-bench:begin -->", "<!-- batch-bench:end -->"
TZ = ZoneInfo("Asia/Shanghai")
COPY_TABLES = ("users", "accounts", "events", "ledger_entries", "daily_usage",
               "report_rollups")
"""Every table one credited event writes (no device id sent), in foreign-key order."""
CITY_DAY = 15_000_000
TRIPS_PER_DAY, SLOT = 16, timedelta(minutes=40)
BACKFILL = timedelta(days=30)


def metro_pairs() -> list[tuple[str, str, int]]:
    """Demo station pairs 2-6 km apart by network distance: (entry, exit, metres)."""
    net = TransitNetwork(demo_network.CITY, demo_network.VERSION, demo_network.stations(),
                         demo_network.lines())
    stations = net.metro_stations
    return [(a, b, net.metro_distance_m(a, b)) for a in stations for b in stations
            if a != b and 2000 <= net.metro_distance_m(a, b) <= 6000]


def batch_body(now: datetime, size: int) -> tuple[bytes, dict[str, int]]:
    """One user's ``size`` valid events (see the docstring), newest first dropped last."""
    oldest, newest = now - BACKFILL + timedelta(hours=1), now - timedelta(hours=1)
    pairs = metro_pairs()
    events: list[tuple[datetime, dict[str, Any]]] = []
    day: date = oldest.astimezone(TZ).date()
    while day <= newest.astimezone(TZ).date():
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=TZ)
        trips = 0
        for j in range(24 * 60 // 40):
            start = midnight + timedelta(minutes=10) + j * SLOT
            if trips == TRIPS_PER_DAY or start + timedelta(minutes=25) > newest:
                break
            if start < oldest:
                continue
            a, b, metres = pairs[(len(events) * 7) % len(pairs)]
            ride = timedelta(minutes=max(10, min(25, round(metres / 1000 / 20 * 60))))
            events.append((start, {
                "event_id": f"t{day:%m%d}-{j}", "mode": "metro", "city": "shenzhen",
                "entry_station_id": a, "exit_station_id": b,
                "started_at": start.isoformat(), "ended_at": (start + ride).isoformat()}))
            trips += 1
        # steps: one post for the day, slower than 220 steps/min since local midnight
        minutes = (now - midnight).total_seconds() / 60
        steps = min(8000, int(150 * minutes))
        if steps >= 100 and day >= (now - BACKFILL).astimezone(TZ).date() + timedelta(days=1):
            events.append((midnight, {"event_id": f"s{day:%m%d}", "mode": "steps",
                                      "city": "shenzhen", "date": day.isoformat(),
                                      "steps": steps}))
        day += timedelta(days=1)
    if len(events) < size:
        sys.exit(f"only {len(events)} valid events fit one user's backfill window; "
                 f"use --batch {len(events)} or less")
    events.sort(key=lambda e: e[0])
    chosen = [e for _, e in events[-size:]]
    counts = {"metro": sum(e["mode"] == "metro" for e in chosen),
              "steps": sum(e["mode"] == "steps" for e in chosen)}
    return json.dumps({"events": chosen}, separators=(",", ":")).encode(), counts


def run_wrk(url: str, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d",
           f"{args.duration}s", "--timeout", "120s", "--latency", "-s",
           str(ROOT / "bench" / "wrk" / "batch.lua"), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env,
                         cwd=ROOT).stdout
    bench = dict(re.findall(r"(\w+)=(\d+)", out.split("BENCH", 1)[1])) if "BENCH" in out else {}
    return {"requests": int(bench.get("replies", 0)), **{k: int(v) for k, v in bench.items()},
            "non_2xx": wrk_non_2xx(out), "p50_ms": round(wrk_latency_ms(out, "50"), 1),
            "p99_ms": round(wrk_latency_ms(out, "99"), 1), "wrk_output": out}


def children(pid: int) -> list[int]:
    """The gunicorn master's worker processes (read from /proc, Linux)."""
    time.sleep(1)
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.time() + timeout
    for pid in pids:
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            print(f"worker {pid} still running after {timeout} s", flush=True)


def export(dsn: str) -> dict[str, bytes]:
    """Every row of COPY_TABLES, in PostgreSQL's binary COPY format (one snapshot)."""
    rows: dict[str, bytes] = {}
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        for table in COPY_TABLES:
            buf = bytearray()
            # A query, not the table: COPY TO refuses a partitioned table (events).
            with cur.copy(f"COPY (SELECT * FROM {table}) TO STDOUT (FORMAT binary)") as copy:  # type: ignore[arg-type]
                for chunk in copy:
                    buf += chunk
            rows[table] = bytes(buf)
    return rows


def copy_into(admin: str, template_dsn: str, rows: dict[str, bytes], run: int) -> float:
    """COPY ``rows`` into a fresh clone of the template database; seconds (with commit)."""
    name = f"{TEMPLATE_DB}_{run}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')  # type: ignore[arg-type]
    try:
        with psycopg.connect(libpq(template_dsn, name)) as conn:
            conn.execute("SELECT 1")  # connection set up before the clock starts
            conn.commit()
            started = time.perf_counter()
            with conn.cursor() as cur:
                for table, data in rows.items():
                    with cur.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:  # type: ignore[arg-type]
                        copy.write(data)
            conn.commit()
            return time.perf_counter() - started
    finally:
        drop_database(admin, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="admin DSN of the server (databases are created beside it)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--duration", type=int, default=90, help="seconds of batch load")
    parser.add_argument("--warmup", type=int, default=10,
                        help="first seconds of the load left out of the database count")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=500, help="events per request")
    parser.add_argument("--users", type=int, default=3000, help="tokens (one user each)")
    parser.add_argument("--copy-runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None,
                        help="WEB_CONCURRENCY (default: deploy/gunicorn.conf.py's 2 x cores + 1)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the service and template databases")
    parser.add_argument("--update", type=Path, help="write the results into this file")
    parser.add_argument("--config", type=Path, default=ROOT / "deploy" / "gunicorn.conf.py",
                        help="gunicorn config file (a variant under test)")
    args = parser.parse_args()
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(exist_ok=True)

    now = datetime.now(UTC)
    body, mix = batch_body(now, args.batch)
    body_path, tokens = results_dir / "batch-body.json", results_dir / "batch-tokens.lua"
    body_path.write_bytes(body)
    write_tokens(tokens, [f"batch-{now:%H%M%S}-{i}" for i in range(args.users)], now)
    dsn = fresh_database(args.pg, SERVICE_DB)
    template = fresh_database(args.pg, TEMPLATE_DB)
    env = service_env(REDIS_URL=args.redis, JWT_SECRET=SECRET, AUTO_INIT_DB="0",
                      RATE_LIMITS=UNLIMITED)
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    for target in (dsn, template):
        subprocess.run([str(VENV_BIN / "flask"), "--app", "app", "init-db"], cwd=ROOT,
                       env={**env, "DATABASE_URL": target.replace(
                           "postgresql://", "postgresql+psycopg://", 1)},
                       check=True, capture_output=True)
    with psycopg.connect(template) as conn:
        for table in COPY_TABLES:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # type: ignore[arg-type]
            assert row and row[0] == 0, f"{table} is not empty after init-db"
    results: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"), "machine": machine(),
        "settings": {k: str(v) for k, v in vars(args).items() if k not in ("pg", "redis")},
        "batch": {"events": args.batch, **mix, "body_bytes": len(body)},
    }

    port = free_port()
    service = start_gunicorn("app:app", {**env, "DATABASE_URL": dsn.replace(
        "postgresql://", "postgresql+psycopg://", 1)}, port, ROOT, args.config)
    wrk_env = {**os.environ, "BENCH_TOKENS": str(tokens), "BENCH_BATCH_BODY": str(body_path),
               "BENCH_THREADS": str(args.threads)}
    workers = children(service.pid)
    try:
        before = db_counters(dsn)
        t0 = datetime.now(UTC)
        load = run_wrk(f"http://127.0.0.1:{port}", args, wrk_env)
        t1 = datetime.now(UTC)
    finally:
        stop(service)
        # Workers finish the batch in hand (and may outlive a killed master): wait for them
        # before reading the rows, so the export is complete and consistent.
        wait_gone(workers, 180)
    after = db_counters(dsn)
    print(load.pop("wrk_output"), flush=True)
    log = (results_dir / f"gunicorn-{port}.log").read_text(errors="replace")
    load["worker_timeouts"] = log.count("WORKER TIMEOUT")
    with psycopg.connect(dsn) as conn:
        window = conn.execute(
            "SELECT count(*) FROM events WHERE created_at >= %s AND created_at < %s",
            (t0 + timedelta(seconds=args.warmup), t1)).fetchone()
        statuses = dict(conn.execute("SELECT status, count(*) FROM events GROUP BY status")
                        .fetchall())
        counts = {t: (conn.execute(f"SELECT count(*) FROM {t}").fetchone() or (0,))[0]  # type: ignore[arg-type]
                  for t in COPY_TABLES}
    events = counts["events"]
    span = (t1 - t0).total_seconds() - args.warmup
    load["db_events_in_window"] = window[0] if window else 0
    load["events_per_s"] = round(load["db_events_in_window"] / span, 1)
    load["wrk_credited_per_s"] = round(load.get("credited", 0) / args.duration, 1)
    load["per_event"] = {k: round((after[k] - before[k]) / max(1, events), 2) for k in after}
    results.update(load=load, statuses=statuses, rows=counts,
                   size=database_size(dsn, COPY_TABLES))
    print(f"batch: {load['events_per_s']} events/s committed (database count), "
          f"{load['wrk_credited_per_s']} credited/s (wrk), p50 {load['p50_ms']} ms, "
          f"p99 {load['p99_ms']} ms; rows {counts}; statuses {statuses}", flush=True)

    rows = export(dsn)
    copy_s = [copy_into(args.pg, template, rows, i) for i in range(args.copy_runs)]
    copy_rate = events / statistics.median(copy_s)
    results["copy"] = {"events": events, "bytes": sum(len(v) for v in rows.values()),
                       "seconds": [round(s, 3) for s in copy_s],
                       "events_per_s": round(copy_rate, 1)}
    results["ratio_batch_over_copy"] = round(load["events_per_s"] / copy_rate, 4)
    results["city_day_hours"] = round(CITY_DAY / load["events_per_s"] / 3600, 1)
    print(f"COPY: {copy_rate:,.0f} events/s (runs {copy_s}); ratio "
          f"{results['ratio_batch_over_copy']}; 15 M events at the batch rate: "
          f"{results['city_day_hours']} h", flush=True)
    out = results_dir / f"batch-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))
    block = render(results)
    print(block)
    if args.update:
        update_section(args.update, "Batch ingest vs COPY", BEGIN, END, block,
                       "See bench/batch_bench.py's docstring for what is measured.")
    if not args.keep:
        for name in (SERVICE_DB, TEMPLATE_DB):
            drop_database(args.pg, name)
        print("dropped", SERVICE_DB, TEMPLATE_DB)


def render(r: dict[str, Any]) -> str:
    load, copy, b = r["load"], r["copy"], r["batch"]
    rate = load["events_per_s"]
    return "\n".join([
        f"Run: {r['date']}; {r['machine']}. Command: `.venv/bin/python bench/batch_bench.py "
        f"{' '.join(sys.argv[1:])}`.",
        "",
        f"Batch: {b['events']} events per request ({b['metro']} metro trips, {b['steps']} "
        f"steps posts; {b['body_bytes']:,} bytes), one new user per request. Rows written "
        "(and copied): " + ", ".join(f"{t} {n:,}" for t, n in r["rows"].items())
        + f"; event statuses {r['statuses']}.",
        "",
        "| figure | events/s | p50 ms | p99 ms | ratio |",
        "|---|---:|---:|---:|---:|",
        f"| COPY of the same rows (median of {len(copy['seconds'])}: "
        f"{', '.join(f'{s:.2f}' for s in copy['seconds'])} s for {copy['events']:,} events) "
        f"| {copy['events_per_s']:,.0f} | | | baseline |",
        f"| POST /v1/events/batch, committed (database count) | {rate:,.0f} | "
        f"{load['p50_ms']:,.0f} | {load['p99_ms']:,.0f} | **{r['ratio_batch_over_copy']:.3f}** "
        "(target 0.2) |",
        f"| same, credited items in wrk's complete replies / duration | "
        f"{load['wrk_credited_per_s']:,.0f} | | | |",
        "",
        f"wrk: {load['requests']} complete replies ({load.get('ok_replies', 0)} with 200), "
        f"{load['non_2xx']} non-2xx, {load['worker_timeouts']} gunicorn worker timeouts. "
        f"Per event: {load['per_event']['xact_commit']} commits, "
        f"{load['per_event']['blks_hit']} buffer hits, {load['per_event']['tup_fetched']} "
        f"tuples fetched. A city-day of 15 M events at {rate:,.0f} events/s: "
        f"**{r['city_day_hours']} h**.",
    ])


if __name__ == "__main__":
    main()
