"""Ingest with history: single-event ingest on a database holding 10M ledger rows vs empty.

    .venv/bin/python bench/history_bench.py [--events 10000000] [--duration 15] \\
        [--connections 16] [--rounds 6] [--no-rollups] [--keep] [--update BENCHMARKS.md]

What is measured, in one run on this machine:

* Two databases on the local PostgreSQL server, both made by ``flask init-db``:
  ``cc_bench_hist_empty`` (nothing but the seed) and ``cc_bench_hist_full``, which gets
  ``--events`` events and their earn ledger entries from the generator report_bench.py
  uses (``history_data.generate``: 200,000 users ``bench-u<n>``, about 50 events each, on
  30 local days ending a week before yesterday, so the load's trips - yesterday and the
  few days before - neither overlap it nor count against its trips-per-day limit, while the
  per-user lookups still read it), then what the service itself would have written
  beside them: each account brought up to its ledger (entry count, last hash, balance),
  the ``daily_usage`` rows, the id sequences moved past the generated ids, and the report
  rollups rebuilt by the service's own ``rollups.rebuild`` (``--no-rollups`` skips that;
  it takes about 6 of the 15 minutes at 10M), then ``ANALYZE``.
* One gunicorn per database with the repo's deploy/gunicorn.conf.py (PostgreSQL + Redis, real JWT
  auth, rate limits set far above the load as ingest_bench.py does, plausibility rules,
  methodology, ledger, rollups), both running for the whole measurement.
* The load is exactly ingest_bench.py's figure 1: wrk (1 thread, 16 connections, 15 s)
  with bench/wrk/events.lua, POST /v1/events, unique metro trips 40 minutes apart on
  yesterday, every one credited. On the full database the token subjects are users that
  already have history (``bench-u<n>``, ~50 events, ledger entries and daily usage
  rows each), so the per-user indexes of the big tables are used; on
  the empty database they are new users. Each server is warmed up first (3 s of ingest
  with other users); then ``--rounds`` rounds alternate the two servers (empty, full;
  full, empty; ...) with fresh users each time, so load from other work on the machine
  hits both alike.

Figure: ingest requests/s on the full database / on the empty one, summed over the rounds
(and the median of the per-round ratios beside it); target >= 0.9. Also printed: p50/p99,
per-database pg_stat_database deltas per request (blocks hit and read, tuples fetched), the
database size, and EXPLAIN (ANALYZE, BUFFERS) of the per-user plausibility queries for a
user with history. Results print as JSON and are
saved under bench/results/; the databases are dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from benchlib import (  # noqa: E402
    bench_config,
    database_size,
    db_counters,
    drop_database,
    service_env,
    update_section,
    write_tokens,
)
from history_data import DAYS, USERS, generate  # noqa: E402
from ingest_bench import (  # noqa: E402
    ROOT,
    SECRET,
    UNLIMITED,
    VENV_BIN,
    free_port,
    fresh_database,
    start_gunicorn,
    stop,
    wrk,
)
from report_bench import machine  # noqa: E402
from sqlalchemy import text  # noqa: E402

from carbon_credits.factory import create_app  # noqa: E402
from carbon_credits.reports import rollups  # noqa: E402
from carbon_credits.runtime import Runtime

EMPTY, FULL = "cc_bench_hist_empty", "cc_bench_hist_full"
BEGIN, END = "<!-- history-bench:begin -->", "<!-- history-bench:end -->"
TZ = ZoneInfo("Asia/Shanghai")
TABLES = ("events", "ledger_entries", "accounts", "users", "daily_usage", "report_rollups")

FIX_UP = """
SELECT setval(pg_get_serial_sequence('events', 'id'), (SELECT max(id) FROM events));
---
SELECT setval(pg_get_serial_sequence('ledger_entries', 'id'),
              (SELECT max(id) FROM ledger_entries));
---
UPDATE accounts a
SET entry_count = l.n, balance_points = l.points, lifetime_points = l.points,
    lifetime_ug = l.ug, last_hash = l.last_hash
FROM (SELECT user_id, max(seq) AS n, sum(points) AS points, sum(ug) AS ug,
             (array_agg(hash ORDER BY seq DESC))[1] AS last_hash
      FROM ledger_entries GROUP BY user_id) l
WHERE a.user_id = l.user_id;
---
INSERT INTO daily_usage (user_id, local_date, mode, events, credited_ug, points,
                         max_quantity, last_post_at, live_events, live_ug, live_points,
                         activity)
SELECT user_id, local_date, mode, count(*), sum(credited_ug), sum(points),
       CASE WHEN mode = 'steps' THEN max(activity) ELSE 0 END,
       NULL,
       count(*) FILTER (WHERE credited_ug > 0), sum(credited_ug),
       coalesce(sum(points) FILTER (WHERE credited_ug > 0), 0),
       coalesce(sum(activity) FILTER (WHERE credited_ug > 0), 0)
FROM events GROUP BY user_id, local_date, mode
"""
"""What the service would have written beside the generated rows, so it can ingest on top
of them: without the sequences the next event id collides with a generated one; without
the account update the next ledger entry reuses seq 1 (unique per user)."""

# The plausibility queries the ingest path runs per event (ingest/intake.py, _trips_read
# and the day-usage read in _read), for EXPLAIN on a user with history. Kept in step
# with the service by hand: before commit 173442b the overlap and trips-per-day rules were
# two queries, the second filtering local_date over every event of the user.
EXPLAINED = {
    "trips_around": """SELECT event_id, local_date, occurred_at, ends_at FROM events
        WHERE user_id = %(u)s
        AND occurred_at >= least(%(day_start)s, %(start)s - interval '1 day')
        AND occurred_at < greatest(%(day_end)s, %(end)s)
        AND mode IN ('bus', 'metro', 'bikeshare') AND status IN ('credited', 'capped', 'held')
        ORDER BY occurred_at""",
    "day_usage": "SELECT * FROM daily_usage WHERE user_id = %(u)s AND local_date = %(day)s",
}


def build_history(sa_url: str, events: int, first_day: dt.date, with_rollups: bool
                  ) -> dict[str, float]:
    """Generate the history in the full database; seconds per step."""
    app = create_app(bench_config(instance_path=Path("/tmp"), database_url=sa_url,
                                  jwt_secret=SECRET))
    rt: Runtime = app.extensions["carbon_credits"]
    timings: dict[str, float] = {}
    print(f"generating {events:,} events from {first_day}", flush=True)
    timings["generate_s"] = generate(rt, 1, events, first_day=first_day)
    started = time.perf_counter()
    with psycopg.connect(sa_url.replace("postgresql+psycopg://", "postgresql://", 1),
                         autocommit=True) as conn:
        for statement in FIX_UP.split("---"):
            conn.execute(statement)  # type: ignore[arg-type]
    timings["fix_up_s"] = time.perf_counter() - started
    print(f"  accounts, daily usage, sequences: {timings['fix_up_s']:.0f} s", flush=True)
    if with_rollups:
        started = time.perf_counter()
        with rt.db.transaction() as session:
            done = rollups.rebuild(session, "shenzhen")
        timings["rebuild_rollups_s"] = time.perf_counter() - started
        print(f"  rebuild-rollups: {timings['rebuild_rollups_s']:.0f} s ({done})", flush=True)
    with rt.db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    rt.db.dispose()
    return timings


def explain(dsn: str, user: str, start: datetime, day: dt.date) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the per-user plausibility queries for one user."""
    day_start = datetime.combine(day, dt.time(0), tzinfo=ZoneInfo("Asia/Shanghai"))
    params = {"u": user, "start": start, "end": start + timedelta(minutes=25), "day": day,
              "day_start": day_start, "day_end": day_start + timedelta(days=1)}
    plans = {}
    with psycopg.connect(dsn) as conn:
        for name, sql in EXPLAINED.items():
            rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}",  # type: ignore[arg-type]
                                params).fetchall()
            plans[name] = "\n".join(r[0] for r in rows)
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="admin DSN of the server (databases are created beside it)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--events", type=int, default=10_000_000,
                        help="generated events (and earn ledger entries) in the full database")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--users", type=int, default=125,
                        help="users loaded per wrk run (as ingest_bench.USERS)")
    parser.add_argument("--rounds", type=int, default=6,
                        help="measured wrk runs per database, alternating")
    parser.add_argument("--workers", type=int, default=None,
                        help="WEB_CONCURRENCY (default: deploy/gunicorn.conf.py's 2 x cores + 1)")
    parser.add_argument("--no-rollups", action="store_true",
                        help="do not rebuild the report rollups of the generated history")
    parser.add_argument("--keep", action="store_true", help="keep both databases")
    parser.add_argument("--update", type=Path, help="write the results into this file")
    args = parser.parse_args()
    if (args.rounds + 1) * args.users > USERS:
        sys.exit(f"--users x (--rounds + 1) must stay within the {USERS:,} history users")
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    started = time.perf_counter()

    today = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    first_day = (today - timedelta(days=DAYS + 8)).date()  # history ends 8 days ago
    dsn = {name: fresh_database(args.pg, name) for name in (EMPTY, FULL)}
    sa = {k: v.replace("postgresql://", "postgresql+psycopg://", 1) for k, v in dsn.items()}
    env = service_env(REDIS_URL=args.redis, JWT_SECRET=SECRET, AUTO_INIT_DB="0",
                      RATE_LIMITS=UNLIMITED)
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    for name in (EMPTY, FULL):
        subprocess.run([str(VENV_BIN / "flask"), "--app", "app", "init-db"], cwd=ROOT,
                       env={**env, "DATABASE_URL": sa[name]}, check=True, capture_output=True)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
        "settings": {k: str(v) for k, v in vars(args).items() if k not in ("pg", "redis")},
        "history_first_day": first_day.isoformat(),
    }
    results["build"] = build_history(sa[FULL], args.events, first_day, not args.no_rollups)
    results["size"] = {name: database_size(dsn[name], TABLES) for name in (EMPTY, FULL)}
    with psycopg.connect(dsn[FULL]) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM ledger_entries), "
                           "(SELECT count(*) FROM events)").fetchone()
        results["full_before"] = {"ledger_entries": row[0], "events": row[1]} if row else {}
    print(f"full database: {results['full_before']}, "
          f"{results['size'][FULL]['database_bytes'] / 2**30:.2f} GiB", flush=True)

    servers = {}
    ports = {}
    try:
        for name in (EMPTY, FULL):
            ports[name] = free_port()
            servers[name] = start_gunicorn("app:app", {**env, "DATABASE_URL": sa[name]},
                                           ports[name], ROOT)
        tokens = results_dir / "history-tokens.lua"
        wrk_env = {**os.environ, "BENCH_TOKENS": str(tokens)}
        lua = ROOT / "bench" / "wrk" / "events.lua"
        base = yesterday.astimezone(UTC)

        def subjects(name: str, block: int) -> list[str]:
            # history users bench-u<n> in the full database; users never seen in the empty one
            lo = block * args.users
            if name == FULL:
                return [f"bench-u{n}" for n in range(lo, lo + args.users)]
            return [f"bench-new{n}" for n in range(lo, lo + args.users)]

        warm = argparse.Namespace(**{**vars(args), "duration": 3})
        for name in (EMPTY, FULL):
            write_tokens(tokens, subjects(name, 0), base)
            wrk(f"http://127.0.0.1:{ports[name]}", warm, lua, wrk_env)
        runs: dict[str, list[dict[str, Any]]] = {EMPTY: [], FULL: []}
        for r in range(args.rounds):
            order = (EMPTY, FULL) if r % 2 == 0 else (FULL, EMPTY)
            for name in order:
                write_tokens(tokens, subjects(name, r + 1), base)
                before = db_counters(dsn[name])
                figures = wrk(f"http://127.0.0.1:{ports[name]}", args, lua, wrk_env)
                after = db_counters(dsn[name])
                n = max(1, figures["requests"])
                figures["per_request"] = {k: round((after[k] - before[k]) / n, 1)
                                          for k in after}
                runs[name].append(figures)
                print(f"round {r + 1} {name}: {figures['requests_per_s']:.0f} req/s, p50 "
                      f"{figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
                      f"non-2xx {figures['non_2xx']}", flush=True)
    finally:
        for proc in servers.values():
            stop(proc)
    results["runs"] = runs
    for name in (EMPTY, FULL):
        with psycopg.connect(dsn[name]) as conn:
            results[f"{name}_load"] = dict(conn.execute(
                "SELECT status, count(*) FROM events WHERE event_id LIKE 'b%%' "
                "GROUP BY status").fetchall())
    start = yesterday.replace(minute=10).astimezone(UTC)
    results["explain_full"] = explain(dsn[FULL], f"bench-u{args.users}", start,
                                      yesterday.date())
    total = {name: sum(f["requests_per_s"] for f in runs[name]) for name in runs}
    results["ratio_full_over_empty"] = round(total[FULL] / total[EMPTY], 3)
    results["per_round_ratios"] = [round(f["requests_per_s"] / e["requests_per_s"], 3)
                                   for e, f in zip(runs[EMPTY], runs[FULL], strict=True)]
    results["median_round_ratio"] = round(statistics.median(results["per_round_ratios"]), 3)
    results["wall_s"] = round(time.perf_counter() - started)
    out = results_dir / f"history-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))
    block = render(results)
    print(block)
    if args.update:
        update_section(args.update, "Ingest with 10 M ledger rows", BEGIN, END, block,
                       "See bench/history_bench.py's docstring for what is measured.")
    if not args.keep:
        for name in (EMPTY, FULL):
            drop_database(args.pg, name)
        print("dropped", EMPTY, FULL)


def render(r: dict[str, Any]) -> str:
    full_size = r["size"][FULL]
    lines = [
        f"Run: {r['date']}; {r['machine']}. Command: `.venv/bin/python bench/history_bench.py "
        f"{' '.join(sys.argv[1:])}`.",
        "",
        f"Full database: {r['full_before'].get('ledger_entries', 0):,} ledger entries and "
        f"{r['full_before'].get('events', 0):,} events (history {r['history_first_day']} "
        f"onwards), {full_size['database_bytes'] / 2**30:.2f} GiB ("
        + ", ".join(f"{t} {v['bytes'] / 2**30:.2f} GiB" for t, v in full_size["tables"].items())
        + f", with indexes). Empty database: {r['size'][EMPTY]['database_bytes'] / 2**20:.0f}"
        " MiB.",
        "",
        "| round | database | requests/s | p50 ms | p99 ms | non-2xx | blocks hit/req "
        "| blocks read/req | tuples fetched/req |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in (EMPTY, FULL):
        for i, f in enumerate(r["runs"][name], 1):
            p = f["per_request"]
            lines.append(f"| {i} | {'empty' if name == EMPTY else 'full'} | "
                         f"{f['requests_per_s']:,.0f} | {f['p50_ms']} | {f['p99_ms']} | "
                         f"{f['non_2xx']} | {p['blks_hit']} | {p['blks_read']} | "
                         f"{p['tup_fetched']} |")
    lines += ["", f"Ratio full / empty (sum over rounds): **{r['ratio_full_over_empty']}**; "
              f"median of the rounds {r['median_round_ratio']} (per round: "
              f"{', '.join(str(x) for x in r['per_round_ratios'])}); target 0.9. Build: "
              + ", ".join(f"{k} {v:.0f}" for k, v in r["build"].items()) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
