"""Monthly partitions of events (issue 24, figures 17a and 17b), ratios in one run.

    .venv/bin/python bench/partition_bench.py [--rounds 5] [--posts 1500] [--duration 15] \\
        [--archive-events 300000] [--ingesters 2] [--skip-17a] [--skip-17b] \\
        [--export-rows-per-s N]

On the shared PostgreSQL (127.0.0.1:5432), two private databases, migrated and seeded as
the service does:

- ``cc_bench_part`` at head: ``events`` partitioned by month, with **24 monthly
  partitions** (``partitions.ensure_months`` adds the months before the migration's own);
- ``cc_bench_flat`` at head, then downgraded to 0008: today's unpartitioned ``events``.

**17a** single-post ingest, one process, in-process (``ingest.events.ingest``: each post
its own unit of work, a new user each, a metro trip of today): ``--posts`` posts per
round, the two databases alternating for ``--rounds`` rounds; the figure is the median
over rounds of posts/s partitioned / unpartitioned.

**17b** on the partitioned database, ``--archive-events`` events are first put in the
month 6 months back (one INSERT ... SELECT; their keys by the trigger). Then, alternating
for ``--rounds`` rounds of ``--duration`` seconds, ``--ingesters`` processes post as in
17a, alone (``quiet``: posts/s over the round after its first 2 s) or while another
process archives that month once, as ``flask partitions detach`` and ``export`` do (each
its own transaction: DETACH, then COPY to CSV and the manifest's MRV totals), starting 2 s
into the round (``archiving``: posts/s over the window from the detach's start to the
export's end; the month is attached again after the window). The figure is the median
over rounds of posts/s archiving / quiet. ``--export-rows-per-s`` throttles the export as
``flask partitions export --rows-per-second`` does (the window is then longer).

Prints JSON; the databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from alembic import command  # noqa: E402
from alembic.config import Config as AlembicConfig  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from benchlib import bench_config, drop_database, fresh_database, libpq  # noqa: E402
from sqlalchemy import text  # noqa: E402

from carbon_credits.antifraud.plausibility import RULES, Policy  # noqa: E402
from carbon_credits.factory import create_app  # noqa: E402
from carbon_credits.ingest import events  # noqa: E402
from carbon_credits.runtime import Runtime  # noqa: E402
from carbon_credits.schemas import load_event  # noqa: E402
from carbon_credits.setup import init_db  # noqa: E402
from carbon_credits.storage import partitions  # noqa: E402
from carbon_credits.tokens import Principal  # noqa: E402
from tests import factories  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PART, FLAT = "cc_bench_part", "cc_bench_flat"
LENIENT = Policy(outcomes={rule: "credit" for rule in RULES})


def url(name: str) -> str:
    return libpq(ADMIN_DSN, name).replace("postgresql://", "postgresql+psycopg://")


def runtime(database_url: str) -> Runtime:
    config = bench_config(instance_path=Path(tempfile.gettempdir()) / "cc-partition-bench",
                          database_url=database_url, jwt_secret="bench", plausibility=LENIENT)
    app = create_app(config)
    rt: Runtime = app.extensions["carbon_credits"]
    rt.clock = lambda: factories.NOW
    return rt


def post_some(rt: Runtime, posts: int | None, until: float | None) -> tuple[int, float]:
    """Posts (a new user each) until ``posts`` are done or ``until``; (posts, seconds)."""
    tag = uuid.uuid4().hex[:8]
    done, started = 0, time.perf_counter()
    while (posts is None or done < posts) and (until is None or time.time() < until):
        user = Principal(f"pb-{tag}-{done}", "user", "shenzhen")
        events.ingest(rt, user, load_event(factories.metro(
            start=factories.today_at(7, done % 60))))
        done += 1
    return done, time.perf_counter() - started


def prepare() -> dict[str, Any]:
    for name in (PART, FLAT):
        fresh_database(ADMIN_DSN, name)
        init_db(runtime(url(name)).db, "shenzhen")
    rt = runtime(url(PART))
    with rt.db.engine.begin() as conn:
        have = sorted(partitions.attached(conn))
        partitions.ensure_months(conn, partitions.months_between(
            partitions.add_months(have[-1], -23), have[-1]))
        months = len(partitions.attached(conn))
    flat = runtime(url(FLAT))
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    with flat.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        # Only the partitioning undone: to the revision before it (it is the last one).
        partition = ScriptDirectory.from_config(cfg).get_revision("0009_partition")
        assert partition is not None
        before = partition.down_revision
        command.downgrade(cfg, str(before))
    with flat.db.engine.connect() as conn:
        flat_partitioned = partitions.is_partitioned(conn)
    return {"partitions": months, "flat_is_partitioned": flat_partitioned}


def fill_archive(count: int) -> dict[str, Any]:
    """``count`` events in the month 6 months back, copied from one real post's row."""
    rt = runtime(url(PART))
    events.ingest(rt, Principal("pb-archive", "user", "shenzhen"),
                  load_event(factories.metro(start=factories.today_at(6))))
    month = partitions.add_months(factories.NOW.date().replace(day=1), -6)
    with rt.db.engine.begin() as conn:
        columns = [c for c in conn.execute(text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'events' "
            "AND table_schema = 'public' ORDER BY ordinal_position")).scalars()
            if c not in ("id", "event_id", "local_date", "occurred_at")]
        conn.execute(text(
            f"INSERT INTO events ({', '.join(columns)}, event_id, local_date, occurred_at) "
            f"SELECT {', '.join('e.' + c for c in columns)}, 'arch-' || g, "
            f"CAST(:month AS date) + (g % 28), "
            f"CAST(:month AS timestamptz) + (g % 28) * interval '1 day' "
            f"FROM events e, generate_series(1, :n) g WHERE e.user_id = 'pb-archive'"),
            {"month": month, "n": count})
        conn.execute(text("ANALYZE"))
    return {"archive_month": f"{month:%Y-%m}", "archive_events": count}


def ingester(database_url: str, until: float, out: Any) -> None:
    rt = runtime(database_url)
    tag = uuid.uuid4().hex[:8]
    done: list[float] = []
    while time.time() < until:
        user = Principal(f"pb-{tag}-{len(done)}", "user", "shenzhen")
        events.ingest(rt, user, load_event(factories.metro(
            start=factories.today_at(7, len(done) % 60))))
        done.append(time.time())
    out.put(("ingest", done))


def archiver(database_url: str, start: float, month_text: str, rows_per_s: int | None,
             out: Any) -> None:
    """One detach + export of the month, as ``flask partitions detach`` and ``export`` run
    them (each its own transaction), from ``start``; its window; then attach again."""
    rt = runtime(database_url)
    month = partitions.parse_month(month_text)
    time.sleep(max(0.0, start - time.time()))
    try:
        with tempfile.TemporaryDirectory() as directory:
            began = time.time()
            with rt.db.engine.begin() as conn:
                partitions.detach(conn, month)
            with rt.db.engine.begin() as conn:
                partitions.export(conn, month, Path(directory), rows_per_s)
            ended = time.time()
        with rt.db.engine.begin() as conn:
            partitions.attach(conn, month)
    except Exception as exc:  # the round reports it instead of waiting forever
        out.put(("archive_failed", repr(exc)))
        return
    out.put(("archive", [began, ended]))


def throughput_round(mode: str, args: argparse.Namespace, month: str) -> dict[str, Any]:
    """Posts/s of the ingesters: over the archive's window (``archiving``), or over the
    round after its first 2 s (``quiet``)."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start = time.time() + 3  # the processes' own start is not counted
    until = start + args.duration
    procs = [ctx.Process(target=ingester, args=(url(PART), until, out))
             for _ in range(args.ingesters)]
    if mode == "archiving":
        procs.append(ctx.Process(target=archiver, args=(url(PART), start + 2, month,
                                                              args.export_rows_per_s, out)))
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    failed = [w for kind, w in results if kind == "archive_failed"]
    if failed:
        raise RuntimeError(f"the archive cycle failed: {failed[0]}")
    window = next((w for kind, w in results if kind == "archive"), [start + 2, until])
    posts = sum(1 for kind, times in results if kind == "ingest" for t in times
                if window[0] <= t < window[1])
    return {"mode": mode, "posts_per_s": posts / (window[1] - window[0]),
            "window_s": window[1] - window[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--posts", type=int, default=1500)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--archive-events", type=int, default=300_000)
    parser.add_argument("--ingesters", type=int, default=2)
    parser.add_argument("--skip-17a", action="store_true")
    parser.add_argument("--skip-17b", action="store_true")
    parser.add_argument("--export-rows-per-s", type=int, default=None,
                        help="17b: throttle the export (flask partitions export "
                             "--rows-per-second); default: unthrottled")
    args = parser.parse_args()
    os.environ.pop("REDIS_URL", None)
    result: dict[str, Any] = {"started": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                              "load_before": os.getloadavg()}
    try:
        result.update(prepare())
        rts = {"partitioned": runtime(url(PART)), "unpartitioned": runtime(url(FLAT))}
        for rt in rts.values():
            post_some(rt, 200, None)  # warm: caches, prepared statements
        rounds: list[dict[str, float]] = []
        for n in range(0 if args.skip_17a else args.rounds):
            order = list(rts) if n % 2 == 0 else list(reversed(rts))
            row: dict[str, float] = {}
            for kind in order:
                done, seconds = post_some(rts[kind], args.posts, None)
                row[kind] = done / seconds
            rounds.append(row)
            print(json.dumps(row), file=sys.stderr)
        if rounds:
            result["17a"] = {"rounds": rounds, "ratio": statistics.median(
                r["partitioned"] / r["unpartitioned"] for r in rounds)}
        for rt in rts.values():
            rt.db.dispose()
        if not args.skip_17b:
            result.update(fill_archive(args.archive_events))
            tp = []
            for n in range(args.rounds):
                modes = ("quiet", "archiving") if n % 2 == 0 else ("archiving", "quiet")
                row2 = {m: throughput_round(m, args, result["archive_month"]) for m in modes}
                tp.append(row2)
                print(json.dumps(row2), file=sys.stderr)
            result["17b"] = {
                "export_rows_per_s": args.export_rows_per_s, "rounds": tp,
                "ratio": statistics.median(r["archiving"]["posts_per_s"]
                                           / r["quiet"]["posts_per_s"] for r in tp)}
    finally:
        drop_database(ADMIN_DSN, PART)
        drop_database(ADMIN_DSN, FLAT)
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
