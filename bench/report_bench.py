"""Report benchmark: the same partner report over 100k and over 10M events.

Reports read the rollups (``report_rollups``), never the event table, so their cost should
follow days x groups, not the number of events. This script checks that on PostgreSQL:

1. creates a private database on the server of ``DATABASE_URL`` (``cc_bench_<hex>``) and
   runs the migrations and seed (``init_db``);
2. generates events with their earn ledger entries directly in SQL (``generate_series``:
   metro 50 %, bus 35 %, steps 15 %, 30 local days, 200,000 users, entry stops spread over
   both demo districts), then runs ``rebuild-rollups`` (the service's own code);
3. times the same report - 30 days, by day x mode, partner view (suppression on) - through
   the service function and through HTTP (Flask test client: auth, schema dump, JSON), and,
   for contrast, the same totals computed straight from the event table;
4. grows the data to the second size, rebuilds, times again; prints the medians and the
   ratio (large / small); with ``--update BENCHMARKS.md`` writes them into the "Reports"
   section; drops the database (unless ``--keep``).

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/report_bench.py [--sizes 100000,10000000] [--runs 30] \\
        [--update BENCHMARKS.md] [--keep]

Generating 10M events takes several minutes (and a few GB of disk); it is run by hand, not
in CI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from benchlib import bench_config, update_section  # noqa: E402
from history_data import CITY, DAYS, FIRST_DAY, generate  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from carbon_credits.factory import create_app  # noqa: E402
from carbon_credits.reports import (
    partner,  # noqa: E402
    rollups,  # noqa: E402
)
from carbon_credits.runtime import Runtime
from carbon_credits.setup import init_db  # noqa: E402

BEGIN = "<!-- report-bench:begin -->"
END = "<!-- report-bench:end -->"
def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} CPUs (nproc), {mem_gib:.0f} GiB RAM; "
            f"Linux {platform.release()}; Python {platform.python_version()}")


def admin_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False)


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    fn()  # warm-up: caches, plans, connection pool
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def rebuild(rt: Runtime) -> tuple[float, rollups.Rebuilt]:
    started = time.perf_counter()
    with rt.db.transaction() as session:
        done = rollups.rebuild(session, CITY)
    with rt.db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("ANALYZE report_rollups"))
    return time.perf_counter() - started, done


def measure(app: Any, rt: Runtime, runs: int, naive_runs: int) -> dict[str, Any]:
    last = FIRST_DAY + dt.timedelta(days=DAYS - 1)
    scope = partner.Scope(CITY, suppress=True, k=10)
    query = partner.ReductionQuery(FIRST_DAY, last, "day", ("mode",))
    client = app.test_client()
    token = rt.codec.encode("bench-bureau", "partner", CITY, 3600)
    path = (f"/v1/reports/reduction?from={FIRST_DAY}&to={last}&granularity=day"
            f"&group_by=mode")

    def http() -> None:
        r = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.get_data(as_text=True)

    def naive() -> list[Any]:
        with rt.db.engine.connect() as conn:
            return list(conn.execute(text(
                "SELECT e.local_date, e.mode, sum(l.ug), sum(l.points), count(*), "
                "count(DISTINCT e.user_id) FROM events e JOIN ledger_entries l "
                "ON l.event_pk = e.id WHERE e.city = :c AND e.local_date BETWEEN :a AND :b "
                "GROUP BY e.local_date, e.mode"), {"c": CITY, "a": FIRST_DAY, "b": last}).all())

    report = partner.reduction(rt, scope, query)
    with rt.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM report_rollups WHERE city = :c"),
                            {"c": CITY}).scalar_one()
        n_events = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
        distinct = conn.execute(text("SELECT count(DISTINCT user_id) FROM events "
                                     "WHERE city = :c"), {"c": CITY}).scalar_one()
    # The report against the event table: exact sums, and the sketches' error.
    exact = {(day.isoformat(), mode): (int(ug), int(n), int(users))
             for day, mode, ug, _points, n, users in naive()}
    cells = {(r["period"].isoformat(), r["mode"]): r for r in report["rows"]}
    assert set(cells) == set(exact), "report and event table disagree on the cells"
    # A partner's cell of fewer than k participants is shown blank (``suppressed``): at
    # small sizes most are; the figures of the others must be the event table's.
    shown = [k for k in exact if not cells[k]["suppressed"]]
    assert shown, "every cell suppressed: use a larger size"
    assert all((cells[k]["ug"], cells[k]["events"]) == exact[k][:2] for k in shown)
    assert report["totals"]["ug"] == sum(v[0] for v in exact.values())
    cell_error = max(abs(cells[k]["participants"] - exact[k][2]) / exact[k][2] for k in shown)
    total_error = (report["totals"]["participants"] - distinct) / distinct
    service = timed(lambda: partner.reduction(rt, scope, query), runs)
    over_http = timed(http, runs)
    direct = timed(naive, naive_runs)
    return {"events": n_events, "rollup_rows": rows, "report_rows": len(report["rows"]),
            "totals": report["totals"], "distinct": distinct, "cell_error": cell_error,
            "total_error": total_error,
            "service_ms": statistics.median(service), "http_ms": statistics.median(over_http),
            "naive_ms": statistics.median(direct)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="100000,10000000",
                        help="comma-separated event counts, ascending")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per report")
    parser.add_argument("--naive-runs", type=int, default=3,
                        help="timed runs of the event-table query")
    parser.add_argument("--update", type=Path, help="write the results into this file")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgresql"):
        sys.exit("set DATABASE_URL to a PostgreSQL server, e.g. "
                 "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    sizes = [int(s) for s in args.sizes.split(",")]
    name = f"cc_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url(base), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        pg_version = conn.execute("SHOW server_version").fetchone()
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    print(f"bench database {name}")
    results: list[dict[str, Any]] = []
    try:
        app = create_app(bench_config(instance_path=Path("/tmp"), database_url=url,
                                      jwt_secret="bench-" + "x" * 32))
        rt: Runtime = app.extensions["carbon_credits"]
        init_db(rt.db, CITY)
        done_events = 0
        for size in sizes:
            print(f"generating events {done_events + 1:,}..{size:,}", flush=True)
            gen_s = generate(rt, done_events + 1, size)
            done_events = size
            rebuild_s, rebuilt = rebuild(rt)
            print(f"  rebuild-rollups: {rebuild_s:.1f} s ({rebuilt})", flush=True)
            result = measure(app, rt, args.runs, args.naive_runs)
            result.update(generate_s=gen_s, rebuild_s=rebuild_s)
            results.append(result)
            print(f"  {result['events']:,} events: report {result['service_ms']:.1f} ms "
                  f"(service), {result['http_ms']:.1f} ms (HTTP), event-table query "
                  f"{result['naive_ms']:.0f} ms; {result['rollup_rows']} rollup rows",
                  flush=True)
        rt.db.dispose()
    finally:
        if not args.keep:
            with psycopg.connect(admin_url(base), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
            print(f"dropped {name}")
    block = render(results, args.runs, args.naive_runs,
                   pg_version[0] if pg_version else "?", " ".join(sys.argv[1:]))
    print(block)
    if args.update:
        update_section(args.update, "Reports", BEGIN, END, block, INTRO, OUTRO)


def render(results: list[dict[str, Any]], runs: int, naive_runs: int, pg: str,
           argv: str) -> str:
    small, large = results[0], results[-1]
    lines = [
        f"Run: {dt.date.today().isoformat()}; {machine()}; PostgreSQL {pg} on loopback. "
        f"Command: `DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test "
        f".venv/bin/python bench/report_bench.py {argv}`.",
        "",
        f"Report: partner view of {CITY}, {DAYS} days by day x mode (`GET "
        "/v1/reports/reduction?granularity=day&group_by=mode`); median of "
        f"{runs} runs after a warm-up. Event-table query: the same sums and exact distinct "
        f"users straight from `events` JOIN `ledger_entries`, median of {naive_runs}.",
        "",
        "| events | rollup rows | report rows | report, service (ms) | report, HTTP (ms) "
        "| event-table query (ms) | generate (s) | rebuild-rollups (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['events']:,} | {r['rollup_rows']:,} | {r['report_rows']} | "
            f"{r['service_ms']:.1f} | {r['http_ms']:.1f} | {r['naive_ms']:,.0f} | "
            f"{r['generate_s']:.0f} | {r['rebuild_s']:.0f} |")
    lines += [
        "",
        "Checked at each size against the event table: every cell's grams and events "
        "equal. Participants (HyperLogLog) against exact distinct users: "
        + "; ".join(f"{r['events']:,} events: largest cell error "
                    f"{r['cell_error'] * 100:.1f} %, whole range {r['totals']['participants']:,}"
                    f" for {r['distinct']:,} ({r['total_error'] * 100:+.2f} %)"
                    for r in results) + ".",
        "",
        f"Ratio {large['events']:,} / {small['events']:,} events: report "
        f"**{large['service_ms'] / small['service_ms']:.2f}x** (service), "
        f"**{large['http_ms'] / small['http_ms']:.2f}x** (HTTP); event-table query "
        f"{large['naive_ms'] / small['naive_ms']:.0f}x.",
    ]
    return "\n".join(lines)


INTRO = """\
**Question (issue: partner reduction reports).** Reports read rollups, not the event table:
does the same report cost the same over 100 times more events? Measured with
`bench/report_bench.py` on PostgreSQL: events and their earn ledger entries generated in
SQL, rollups built by `rebuild-rollups` (the service's own code), then the same partner
report timed at each size."""
OUTRO = """What follows: the report reads days x cells x 16 shard rows (here 30 x 5 x 16 = 2,400,
each with a 256-byte sketch slice) whatever the number of events, so its time does not
grow with events; the event-table query, the design this replaces, grows with them."""


if __name__ == "__main__":
    main()
