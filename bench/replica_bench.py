"""Partner reports on a streaming replica while ingest runs on the primary, against the
same reports on the primary (issue 24: "report served from the replica while ingest runs
on the primary / from the primary", target >= 1.0).

    .venv/bin/python bench/replica_bench.py [--events 200000] [--rounds 3] [--duration 20] \\
        [--ingesters 2] [--reporters 1]

1. starts a private PostgreSQL primary on a spare port (tests/faults/servers.py), migrates
   and seeds it, generates ``--events`` events of 200,000 users over 30 days in SQL
   (bench/history_data.py) and rebuilds the rollups the reports read;
2. takes a streaming replica with ``pg_basebackup -R`` and starts it (tests/faults/replica.py);
3. runs, alternating, ``--rounds`` rounds of each mode for ``--duration`` seconds:
   ``--ingesters`` processes posting single events (``ingest.events.ingest``, each post its
   own unit of work, a new user each) to the primary, and ``--reporters`` processes looping
   the 30-day partner report by day x mode (``reports.partner.reduction``), read from the
   primary (mode ``primary``) or from the replica (``REPORTS_DATABASE_URL``, mode
   ``replica``);
4. prints ingest posts/s and report latency per round, and the figure: median over rounds
   of ingest posts/s with reports on the replica / with reports on the primary.

**On one host** (this machine: 2 cores shared by everything) the replica's PostgreSQL
takes the same cores the primary's does, so the figure measures what moves off the
primary's backends and buffers, not the CPU a separate replica host would take away; the
reports' own Python (sketch merging) runs in the reporter processes either way.

``--pin`` emulates two hosts on two cores with CPU affinity: the primary's PostgreSQL
(its postmaster, so every backend it forks) and the ingesters on CPU 0, the replica's
PostgreSQL and the reporters on CPU 1. Reports on the primary then take CPU 0 from ingest,
as they would on one database host; on the replica they take nothing from it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import bench_config  # noqa: E402
from history_data import CITY, DAYS, FIRST_DAY, generate  # noqa: E402
from sqlalchemy import text  # noqa: E402

from carbon_credits.antifraud.plausibility import RULES, Policy  # noqa: E402
from carbon_credits.factory import create_app  # noqa: E402
from carbon_credits.ingest import events  # noqa: E402
from carbon_credits.reports import partner, rollups  # noqa: E402
from carbon_credits.runtime import Runtime  # noqa: E402
from carbon_credits.schemas import load_event  # noqa: E402
from carbon_credits.setup import init_db  # noqa: E402
from carbon_credits.tokens import Principal  # noqa: E402
from tests import factories  # noqa: E402
from tests.faults.replica import Standby  # noqa: E402
from tests.faults.servers import PostgresCluster  # noqa: E402

LENIENT = Policy(outcomes={rule: "credit" for rule in RULES})


def runtime(database_url: str, reports_url: str | None = None) -> Runtime:
    config = bench_config(instance_path=Path(tempfile.gettempdir()) / "cc-replica-bench",
                          database_url=database_url, jwt_secret="bench",
                          reports_database_url=reports_url, plausibility=LENIENT)
    app = create_app(config)
    rt: Runtime = app.extensions["carbon_credits"]
    rt.clock = lambda: factories.NOW
    return rt


PRIMARY_CPU, REPLICA_CPU = 0, 1


def pin_server(data_dir: Path, cpu: int) -> None:
    """Pin a PostgreSQL server (its postmaster and children; later backends inherit) to
    ``cpu``."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    pids = [postmaster] + [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                           and _parent(int(p.name)) == postmaster]
    for pid in pids:
        try:
            os.sched_setaffinity(pid, {cpu})
        except ProcessLookupError:
            pass


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def ingester(url: str, until: float, out: Any, cpu: int | None = None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    rt = runtime(url)
    tag = uuid.uuid4().hex[:8]
    posts = 0
    while time.time() < until:
        user = Principal(f"rb-{tag}-{posts}", "user", CITY)
        events.ingest(rt, user, load_event(factories.metro(
            start=factories.today_at(7, posts % 60))))
        posts += 1
    out.put(("ingest", posts, []))


def reporter(url: str, reports_url: str | None, until: float, out: Any,
             cpu: int | None = None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    rt = runtime(url, reports_url)
    scope = partner.Scope(CITY, suppress=True, k=10)
    query = partner.ReductionQuery(FIRST_DAY, FIRST_DAY + __import__("datetime").timedelta(
        days=DAYS - 1), "day", ("mode",))
    took = []
    while time.time() < until:
        started = time.perf_counter()
        partner.reduction(rt, scope, query)
        took.append(time.perf_counter() - started)
    out.put(("report", len(took), took))


def round_(primary: PostgresCluster, standby: Standby, mode: str, args: argparse.Namespace
           ) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    until = time.time() + 3 + args.duration  # 3 s for the processes to start
    reports_url = standby.url if mode == "replica" else None
    ingest_cpu, report_cpu = (PRIMARY_CPU, REPLICA_CPU) if args.pin else (None, None)
    procs = [ctx.Process(target=ingester, args=(primary.url, until, out, ingest_cpu))
             for _ in range(args.ingesters)]
    procs += [ctx.Process(target=reporter, args=(primary.url, reports_url, until, out,
                                                 report_cpu))
              for _ in range(args.reporters)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    posts = sum(n for kind, n, _ in results if kind == "ingest")
    took = [t for kind, _, ts in results if kind == "report" for t in ts]
    # The first seconds include the processes' start; counted over the whole window.
    return {"mode": mode, "posts_per_s": posts / (args.duration + 3),
            "reports": len(took),
            "report_ms": 1000 * statistics.median(took) if took else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--ingesters", type=int, default=2)
    parser.add_argument("--reporters", type=int, default=1)
    parser.add_argument("--pin", action="store_true",
                        help="two hosts on two cores: primary + ingesters on CPU 0, "
                             "replica + reporters on CPU 1")
    args = parser.parse_args()
    primary = PostgresCluster()
    standby = Standby(primary)
    try:
        primary.init()
        rt = runtime(primary.url)
        init_db(rt.db, CITY)
        seconds = generate(rt, 0, args.events)
        with rt.db.engine.begin() as conn:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('events', 'id'), "
                              "(SELECT max(id) FROM events))"))
            conn.execute(text("SELECT setval(pg_get_serial_sequence('ledger_entries', 'id'),"
                              " (SELECT max(id) FROM ledger_entries))"))
        with rt.db.transaction() as session:
            rollups.rebuild(session, CITY)
        with rt.db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM ANALYZE"))
        rt.db.dispose()
        print(f"generated {args.events} events in {seconds:.0f} s", flush=True)
        standby.create()
        standby.catch_up()
        if args.pin:
            pin_server(primary.data, PRIMARY_CPU)
            pin_server(standby.data, REPLICA_CPU)
        rows = []
        for _ in range(args.rounds):
            for mode in ("primary", "replica"):
                row = round_(primary, standby, mode, args)
                rows.append(row)
                print(f"{mode:8} ingest {row['posts_per_s']:7.1f} posts/s   reports "
                      f"{row['reports']:4d}, median {row['report_ms']:6.1f} ms", flush=True)
        by = {m: [r for r in rows if r["mode"] == m] for m in ("primary", "replica")}
        ratios = [b["posts_per_s"] / a["posts_per_s"]
                  for a, b in zip(by["primary"], by["replica"], strict=True)]
        print(f"ingest posts/s, reports on the replica / on the primary: median "
              f"{statistics.median(ratios):.3f} (rounds {', '.join(f'{r:.3f}' for r in ratios)})")
        for m in ("primary", "replica"):
            print(f"  {m}: ingest {statistics.median(r['posts_per_s'] for r in by[m]):.1f} "
                  f"posts/s, report median "
                  f"{statistics.median(r['report_ms'] for r in by[m]):.1f} ms")
    finally:
        primary.stop()


if __name__ == "__main__":
    main()
