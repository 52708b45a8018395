"""Scenario providers (issue 21): record files end to end against COPY, worker memory, and a
signed POST of 1,000 records against the same records applied unsigned. One command:

    .venv/bin/python bench/provider_bench.py [--sizes 100000:10000,1000000:100000]
        [--post-rounds 5] [--post-users 2000] [--modes file,post] [--order slot|user]
        [--analyze-every 30]

**file** (each size ``N:U`` in a fresh Python process and a fresh PostgreSQL database):
a CSV of N operator records (about 45 % metro_trip, 35 % bus_trip, 12 % bike_ride, 8 %
daily_steps) of U users, all bound to one provider by ProviderBinding rows inserted by
COPY; each user's records fall in disjoint slots of the last 23 hours (no overlaps), its
steps for yesterday; written slot by slot, users interleaved (``--order user``: grouped by
user). The file is stored with ``jobs.upload`` and processed in the process
by ``jobs.process`` with the real crediting (``crediting.make_apply_chunk``), chunks of
``RECORD_CHUNK_ROWS`` (1,000) rows, 100 records per ingest transaction, while a thread
runs ``ANALYZE`` every ``--analyze-every`` (30) seconds, as autovacuum would (it is off in
the CI configuration; ``0``: no ANALYZE, the plans then stay those of empty tables).
Figures:

- records/s of ``jobs.process`` alone;
- the baseline in the same run: every row the job wrote to ``users, accounts, events,
  ledger_entries, daily_usage, report_rollups``, read back by binary COPY and COPYed into
  a fresh clone of an empty database of the same schema (same indexes, constraints), in
  one transaction; records/s = N / its seconds. Ratio = file / COPY (target >= 0.3);
- peak RSS of the process (``ru_maxrss``, read before the export, so it is the job's);
- CPU seconds of this process and of its PostgreSQL backends (/proc/<pid>/stat of the
  backends of the job's database, read before the pool is closed), the database's
  pg_stat_database counters per record (commits, tuples read and written, blocks), and
  the machine's busy CPU and load average over the job (/proc/stat, /proc/loadavg);
- a 15 M-record city-day at the job's records/s (an extrapolation);
- bytes per event of the provider-sourced events (all tables, after VACUUM ANALYZE).

**post** (a fresh process and database): a provider with an HMAC key and ``--post-users``
bound users; ``--post-rounds`` rounds, each alternating (order swapped every round) a
signed ``POST /v1/provider/records`` of 1,000 fresh records through the Flask test client
(signature built as tests/signing.py does, outside the timer) and
``crediting.post_records`` called directly on 1,000 other fresh records of the same
shape (no HTTP, no JSON, no schema, no signature). Ratio = signed records/s / unsigned
records/s, of the summed times (target >= 0.8), and the median of the rounds' ratios.

Output: JSON lines, a summary; ``--json PATH`` also writes the results.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for p in (str(ROOT), str(ROOT / "bench")):
    if p not in sys.path:
        sys.path.insert(0, p)

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
CST = timezone(timedelta(hours=8))
CITY_DAY = 15_000_000
PROVIDER = "bench-transit"
COPY_TABLES = ("users", "accounts", "events", "ledger_entries", "daily_usage",
               "report_rollups")
FIELDS = ("record_id", "user_ref", "kind", "entry_station_id", "exit_station_id",
          "tapped_in_at", "tapped_out_at", "line_id", "board_stop_id", "boarded_at",
          "alight_stop_id", "alighted_at", "started_at", "ended_at", "distance_m", "bike_id",
          "date", "steps")
METRO = [("luohu", "dajuyuan"), ("guomao", "huaqianglu"), ("laojie", "gangxia"),
         ("laojie", "huaxin"), ("futiankouan", "shiminzhongxin"), ("fumin", "shaoniangong")]
BUS = [("bus-1", "b-luohu", "b-kexueguan"), ("bus-1", "b-guomao", "b-gangxia"),
       ("bus-10", "b-futiankouan", "b-shimin")]


def records(now: datetime, users: range, per_user: int, prefix: str, seed: int,
            first_slot: int = 0, slots: int | None = None) -> list[dict[str, Any]]:
    """``len(users) * per_user`` records, slot by slot, the users interleaved in each: user
    u's k-th record in slot ``first_slot + k`` of ``slots`` disjoint slots of the 23 hours
    before ``now``; the last slot of 8 users in 10 is yesterday's steps."""
    rnd = random.Random(seed)
    slots = slots or per_user
    span = timedelta(hours=23) / slots
    yesterday = (now.astimezone(CST) - timedelta(days=1)).date().isoformat()
    out: list[dict[str, Any]] = []
    for k in range(first_slot, first_slot + per_user):
        base = now - timedelta(hours=23, minutes=30) + k * span
        for u in users:
            rec: dict[str, Any] = {"record_id": f"{prefix}{k}-{u}", "user_ref": f"card-{u}"}
            start = base + timedelta(seconds=rnd.randrange(int(span.total_seconds() / 3)))
            end = start + timedelta(minutes=rnd.randrange(12, 35))
            a, b = start.isoformat(timespec="seconds"), end.isoformat(timespec="seconds")
            if k == slots - 1 and u % 10 < 8:
                rec.update(kind="daily_steps", date=yesterday, steps=rnd.randrange(2000, 8000))
            else:
                roll = rnd.random()
                if roll < 0.49:
                    entry, exit_ = METRO[rnd.randrange(len(METRO))]
                    rec.update(kind="metro_trip", entry_station_id=entry,
                               exit_station_id=exit_, tapped_in_at=a, tapped_out_at=b)
                elif roll < 0.87:
                    line, board, alight = BUS[rnd.randrange(len(BUS))]
                    rec.update(kind="bus_trip", line_id=line, board_stop_id=board,
                               alight_stop_id=alight, boarded_at=a, alighted_at=b)
                else:
                    rec.update(kind="bike_ride", started_at=a, ended_at=b,
                               distance_m=rnd.randrange(1000, 4000), bike_id=f"bk{u % 977}")
            out.append(rec)
    return out


def write_file(path: Path, now: datetime, rows: int, users: int, order: str,
               lane: int = 0, lanes: int = 1) -> dict[str, int]:
    """The CSV of ``rows`` records of ``users`` users, written slot by slot (``slot``: a
    chunk's records are of as many users, as a day's export in time order would be) or user
    by user (``user``: a chunk of 100 records is of 10 users); with ``lanes`` > 1, only the
    records of the users ``u`` with ``u % lanes == lane`` (a file of its own)."""
    per_user = rows // users
    kinds: dict[str, int] = {}
    mine = range(lane, users, lanes)
    if order == "slot":
        parts = (records(now, mine, 1, "r", seed=k, first_slot=k, slots=per_user)
                 for k in range(per_user))
    else:
        parts = (records(now, range(u, u + 1), per_user, "r", seed=u) for u in mine)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
        writer.writeheader()
        for part in parts:
            for rec in part:
                kinds[rec["kind"]] = kinds.get(rec["kind"], 0) + 1
                writer.writerow(rec)
    return kinds


# -- measurements ------------------------------------------------------------------------


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process (/proc/<pid>/stat), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def new_database(tag: str) -> tuple[str, str]:
    """A fresh database: (its name, its SQLAlchemy URL)."""
    import psycopg

    name = f"cc_bench_provider_{tag}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def service(url: str, uploads: Path) -> Any:
    """The app on ``url``, migrated and seeded, no Redis, no rate limits, real clock."""
    from benchlib import bench_config
    from ingest_bench import UNLIMITED

    from carbon_credits.antifraud.ratelimit.rates import parse_rate_limits
    from carbon_credits.factory import create_app
    from carbon_credits.setup import init_db

    config = bench_config(instance_path=uploads, database_url=url, jwt_secret="x" * 32,
                          upload_dir=uploads, redis_url=None,
                          rate_limits=parse_rate_limits(UNLIMITED))
    app = create_app(config)
    init_db(app.extensions["carbon_credits"].db, "shenzhen")
    return app


def provider_with_users(rt: Any, db_name: str, users: int) -> None:
    """The provider (all four modes) and ``users`` bindings card-<n> -> u-<n>, by COPY,
    then analyzed."""
    import psycopg

    from carbon_credits.providers import registry

    registry.register(rt, "bench", provider_id=PROVIDER, name="Bench Transit",
                      city="shenzhen", modes=["metro", "bus", "bikeshare", "steps"],
                      reason="bench")
    now = datetime.now(UTC)
    with psycopg.connect(ADMIN.rsplit("/", 1)[0] + f"/{db_name}") as conn, \
            conn.cursor() as cur, cur.copy(
                "COPY provider_bindings (provider_id, user_ref, user_id, bound_at) "
                "FROM STDIN") as copy:
        for n in range(users):
            copy.write_row((PROVIDER, f"card-{n}", f"u-{n:07d}", now))
    with psycopg.connect(ADMIN.rsplit("/", 1)[0] + f"/{db_name}", autocommit=True) as conn:
        # As autovacuum would after so many inserts (it is off in the CI configuration):
        # without statistics, bindings.resolve scanned the wrong index of all the provider's
        # bindings for each chunk, most of PostgreSQL's time (180 records/s at 100 k users).
        conn.execute("ANALYZE provider_bindings")


def backends(db_name: str) -> list[int]:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (db_name,)).fetchall()]


def export(dsn: str) -> dict[str, bytes]:
    import psycopg

    rows: dict[str, bytes] = {}
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        for table in COPY_TABLES:
            buf = bytearray()
            # A query, not the table: COPY TO refuses a partitioned table (events).
            with cur.copy(f"COPY (SELECT * FROM {table}) TO STDOUT (FORMAT binary)") as copy:
                for chunk in copy:
                    buf += chunk
            rows[table] = bytes(buf)
    return rows


def copy_seconds(rows: dict[str, bytes], tmp: Path) -> float:
    """COPY ``rows`` into a fresh, empty, migrated and seeded database; seconds."""
    import psycopg

    name, url = new_database("copy")
    try:
        app = service(url, tmp)
        app.extensions["carbon_credits"].db.dispose()
        dsn = ADMIN.rsplit("/", 1)[0] + f"/{name}"
        with psycopg.connect(dsn) as conn:
            for table in COPY_TABLES:
                row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                assert row and row[0] == 0, f"{table} is not empty after init_db"
            conn.commit()
            started = time.perf_counter()
            with conn.cursor() as cur:
                for table, data in rows.items():
                    with cur.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
                        copy.write(data)
            conn.commit()
            return time.perf_counter() - started
    finally:
        drop(name)


def bytes_per_event(dsn: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        events = (conn.execute("SELECT count(*) FROM events").fetchone() or (0,))[0]
        sizes = {r[0]: r[1] for r in conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN "
            "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND "
            "c.relkind = 'r'").fetchall()}
        # A partitioned table (events) holds no bytes itself: its partitions' sizes, summed
        # (indexes included), are its size.
        for parent, size in conn.execute(
                "SELECT c.relname, sum(pg_total_relation_size(t.relid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace, "
                "pg_partition_tree(c.oid) t WHERE n.nspname = 'public' AND "
                "c.relkind = 'p' AND t.isleaf GROUP BY c.relname").fetchall():
            sizes[parent] = int(size)
    counted = {t: sizes.get(t, 0) for t in COPY_TABLES}
    return {"events": events,
            "bytes_per_event": round(sum(counted.values()) / max(1, events), 1),
            "by_table": {t: round(v / max(1, events), 1) for t, v in counted.items()}}


# -- children ----------------------------------------------------------------------------


def analyze_every(dsn: str, seconds: float, stop: threading.Event) -> None:
    """ANALYZE the job's database every ``seconds`` while it runs, as autovacuum would in
    production (it is off in the CI configuration): without statistics, the tables the
    crediting reads stayed sequential scans as they grew (860 tuples read per record at
    100 k records, growing with the table)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.wait(seconds):
            conn.execute("ANALYZE")


def child_worker(url: str, uploads: str, job_id: str) -> None:
    """One worker process of a ``--workers`` run: the service on ``url``, then, when told
    (a line on stdin), ``jobs.process`` of ``job_id``; prints its figures (a JSON line),
    then waits for a line before it exits (its database backends are read meanwhile)."""
    from carbon_credits.providers import crediting, jobs

    app = service(url, Path(uploads))
    rt = app.extensions["carbon_credits"]
    apply_chunk = crediting.make_apply_chunk(rt)
    print("ready", flush=True)
    sys.stdin.readline()
    own0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.time()
    done = jobs.process(rt, job_id, apply_chunk)
    ended = time.time()
    own1 = resource.getrusage(resource.RUSAGE_SELF)
    assert done is not None and done.status == "done", done
    print(json.dumps({"started": started, "ended": ended, "rows_read": done.rows_read,
                      "credited": done.credited, "held": done.held,
                      "replayed": done.replayed, "refused": done.refused,
                      "peak_rss_mb": round(own1.ru_maxrss / 1024, 1),
                      "cpu_s": (own1.ru_utime + own1.ru_stime)
                      - (own0.ru_utime + own0.ru_stime)}), flush=True)
    rt.db.dispose()
    sys.stdin.readline()


def run_workers(name: str, url: str, uploads: str, job_ids: list[str]
                ) -> tuple[float, list[dict[str, Any]], dict[int, float], dict[int, float]]:
    """Each job in a worker process of its own, all started at once: (seconds from the
    first start to the last end, the workers' figures, CPU seconds of the database's
    backends before and after)."""
    procs = [subprocess.Popen([sys.executable, __file__, "--child", "worker", url, uploads,
                               job_id], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
             for job_id in job_ids]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    pg0 = {pid: cpu_of(pid) for pid in backends(name)}
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [json.loads(proc.stdout.readline()) for proc in procs if proc.stdout]
    pg1 = {pid: cpu_of(pid) for pid in backends(name)}
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("bye\n")
        proc.stdin.flush()
        proc.wait()
    elapsed = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return elapsed, results, pg0, pg1


def child_file(paths: list[str], users: int, analyze_s: float) -> dict[str, Any]:
    from benchlib import db_counters

    from carbon_credits.providers import crediting, jobs

    name, url = new_database("file")
    dsn = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            app = service(url, Path(tmp))
            rt = app.extensions["carbon_credits"]
            provider_with_users(rt, name, users)
            jobs.dispatch = lambda _rt, _id: None  # type: ignore[assignment]  # run below
            job_ids = []
            for path in paths:
                with open(path, "rb") as fh:
                    job_ids.append(jobs.upload(rt, PROVIDER, fh, "text/csv")[0].id)
            apply_chunk = crediting.make_apply_chunk(rt)
            own0 = resource.getrusage(resource.RUSAGE_SELF)
            busy0, total0, load0 = *machine_busy(), loadavg()
            started = time.perf_counter()
            pg0 = {pid: cpu_of(pid) for pid in backends(name)}
            db0 = db_counters(dsn)
            stop = threading.Event()
            analyzer = threading.Thread(target=analyze_every, args=(dsn, analyze_s, stop))
            if analyze_s > 0:
                analyzer.start()
            workers: list[dict[str, Any]] = []
            try:
                if len(job_ids) == 1:
                    done = jobs.process(rt, job_ids[0], apply_chunk)
                    assert done is not None and done.status == "done", done
                    counted = [done]
                else:
                    elapsed, workers, pg0, pg1 = run_workers(name, url, tmp, job_ids)
            finally:
                stop.set()
                if analyzer.is_alive():
                    analyzer.join()
            if not workers:
                elapsed = time.perf_counter() - started
                pg1 = {pid: cpu_of(pid) for pid in backends(name)}
            busy1, total1, load1 = *machine_busy(), loadavg()
            db1 = db_counters(dsn)
            own1 = resource.getrusage(resource.RUSAGE_SELF)
            peak_mb = (own1.ru_maxrss / 1024 if not workers
                       else max(w["peak_rss_mb"] for w in workers))
            rt.db.dispose()
            keys = ("rows_read", "credited", "held", "replayed", "refused")
            job_counts = ({k: sum(w[k] for w in workers) for k in keys} if workers
                          else {k: getattr(counted[0], k) for k in keys})
            import psycopg

            with psycopg.connect(dsn) as conn:
                statuses: dict[str, int] = dict(conn.execute(
                    "SELECT status, count(*) FROM events GROUP BY status").fetchall())
                errors: dict[str, int] = dict(conn.execute(
                    "SELECT code, count(*) FROM record_file_errors GROUP BY code").fetchall())
            rows = export(dsn)
            size = bytes_per_event(dsn)
            copy_s = copy_seconds(rows, Path(tmp))
    finally:
        drop(name)
    n = job_counts["rows_read"]
    process_cpu = (sum(w["cpu_s"] for w in workers) if workers else
                   (own1.ru_utime + own1.ru_stime) - (own0.ru_utime + own0.ru_stime))
    pg_cpu = sum(pg1.get(p, 0.0) - pg0.get(p, 0.0) for p in pg1)
    rate, copy_rate = n / elapsed, n / copy_s
    return {
        "mode": "file", "records": n, "users": users, "workers": max(1, len(workers)),
        "seconds": round(elapsed, 1),
        "records_per_s": round(rate, 1), "analyze_every_s": analyze_s, "job": job_counts,
        "event_statuses": statuses,
        "refusals": errors, "peak_rss_mb": round(peak_mb, 1),
        "copy": {"seconds": round(copy_s, 2), "records_per_s": round(copy_rate, 1),
                 "bytes": sum(len(v) for v in rows.values())},
        "ratio_file_over_copy": round(rate / copy_rate, 4),
        "city_day_hours_extrapolated": round(CITY_DAY / rate / 3600, 2),
        "cpu_ms_per_record": {"process": round(process_cpu / n * 1000, 3),
                              "postgres_backends": round(pg_cpu / n * 1000, 3)},
        "database_per_record": {k: round((db1[k] - db0[k]) / n, 2) for k in db1},
        "cpu_share_of_wall": {"process": round(process_cpu / elapsed, 2),
                              "postgres_backends": round(pg_cpu / elapsed, 2)},
        "machine": {"busy_cores": round((busy1 - busy0) / (total1 - total0)
                                        * (os.cpu_count() or 1), 2),
                    "loadavg_1m": [load0, load1]},
        "size": size,
    }


def child_post(rounds: int, users: int) -> dict[str, Any]:
    from carbon_credits.providers import crediting, registry
    from tests.signing import Key, sign

    name, url = new_database("post")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            app = service(url, Path(tmp))
            rt = app.extensions["carbon_credits"]
            provider_with_users(rt, name, users)
            key_view = registry.add_key(rt, "bench", PROVIDER, algorithm="hmac-sha256",
                                        public_key=None, key_id=None, reason="bench")
            key = Key.hmac(key_view["key_id"], key_view["secret"])
            with rt.db.transaction() as session:
                provider = registry.get_provider(session, PROVIDER)
            assert provider is not None
            client = app.test_client()
            now = datetime.now(UTC)
            per_user = 2 * rounds * 1000 // users
            if per_user * users != 2 * rounds * 1000:
                sys.exit("--post-users must divide 2 * rounds * 1000")
            batches = [[] for _ in range(2 * rounds)]  # type: list[list[dict[str, Any]]]
            flat = records(now, range(users), per_user, "p", seed=7)
            for i, rec in enumerate(flat):
                batches[i // 1000].append(rec)
            times = {"signed": 0.0, "unsigned": 0.0}
            statuses: dict[str, dict[str, int]] = {"signed": {}, "unsigned": {}}
            per_round = []
            busy0, total0, load0 = *machine_busy(), loadavg()
            for r in range(rounds):
                order = ("signed", "unsigned") if r % 2 == 0 else ("unsigned", "signed")
                took = {}
                for i, how in enumerate(order):
                    batch = batches[2 * r + i]
                    if how == "signed":
                        body = json.dumps({"records": batch}).encode()
                        headers = sign(key, "POST", "/v1/provider/records", body)
                        t = time.perf_counter()
                        resp = client.post("/v1/provider/records", data=body, headers=headers)
                        took[how] = time.perf_counter() - t
                        assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
                        results = resp.json["results"]
                    else:
                        t = time.perf_counter()
                        results = crediting.post_records(rt, provider, batch)
                        took[how] = time.perf_counter() - t
                    assert len(results) == len(batch)
                    for item in results:
                        s = str(item.get("status") or item.get("event", {}).get("status"))
                        statuses[how][s] = statuses[how].get(s, 0) + 1
                    times[how] += took[how]
                per_round.append({k: round(len(batches[0]) / v, 1) for k, v in took.items()})
            busy1, total1, load1 = *machine_busy(), loadavg()
            rt.db.dispose()
    finally:
        drop(name)
    n = 1000 * rounds
    return {"mode": "post", "rounds": rounds, "records_per_request": 1000,
            "client": "Flask test client (in process)", "users": users,
            "signed_records_per_s": round(n / times["signed"], 1),
            "unsigned_records_per_s": round(n / times["unsigned"], 1),
            "ratio_signed_over_unsigned": round(times["unsigned"] / times["signed"], 4),
            "ratio_median_of_rounds": round(statistics.median(
                r["signed"] / r["unsigned"] for r in per_round), 4),
            "per_round_records_per_s": per_round, "statuses": statuses,
            "machine": {"busy_cores": round((busy1 - busy0) / (total1 - total0)
                                            * (os.cpu_count() or 1), 2),
                        "loadavg_1m": [load0, load1]}}


def run_child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000:10000,1000000:100000",
                        help="records:users of each file run")
    parser.add_argument("--modes", default="file,post")
    parser.add_argument("--order", choices=("slot", "user"), default="slot",
                        help="records in the file slot by slot (users interleaved) or by user")
    parser.add_argument("--post-rounds", type=int, default=5)
    parser.add_argument("--post-users", type=int, default=2000)
    parser.add_argument("--analyze-every", type=float, default=30.0,
                        help="seconds between ANALYZEs of the job's database (0: none)")
    parser.add_argument("--workers", type=int, default=1,
                        help="file mode: the users split in this many files (u %% workers), "
                             "each a job processed by a worker process of its own, all at "
                             "once")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "worker":
            child_worker(*args.child[1:4])
            return
        if args.child[0] == "file":
            result = child_file(args.child[1].split(","), int(args.child[2]),
                                float(args.child[3]))
        else:
            result = child_post(int(args.child[1]), int(args.child[2]))
        print(json.dumps(result))
        return
    results = []
    modes = args.modes.split(",")
    if "post" in modes:
        result = run_child(["post", str(args.post_rounds), str(args.post_users)])
        print(json.dumps(result), flush=True)
        results.append(result)
    if "file" in modes:
        with tempfile.TemporaryDirectory() as tmp:
            for spec in args.sizes.split(","):
                rows, users = (int(v) for v in spec.split(":"))
                now, kinds = datetime.now(UTC), dict[str, int]()
                paths = [Path(tmp) / f"records-{rows}-{lane}.csv"
                         for lane in range(args.workers)]
                for lane, path in enumerate(paths):
                    for kind, count in write_file(path, now, rows, users, args.order, lane,
                                                  args.workers).items():
                        kinds[kind] = kinds.get(kind, 0) + count
                result = run_child(["file", ",".join(map(str, paths)), str(users),
                                    str(args.analyze_every)])
                result["kinds"], result["order"] = kinds, args.order
                result["file_mb"] = round(sum(p.stat().st_size for p in paths) / 1e6, 1)
                for path in paths:
                    path.unlink()
                print(json.dumps(result), flush=True)
                results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print("summary:")
    for r in results:
        if r["mode"] == "file":
            print(f"  file {r['records']:,} records / {r['users']:,} users, "
                  f"{r['workers']} worker(s): "
                  f"{r['records_per_s']:,} records/s, COPY {r['copy']['records_per_s']:,}/s, "
                  f"ratio {r['ratio_file_over_copy']}, city-day {r['city_day_hours_extrapolated']}"
                  f" h (extrapolated), peak RSS {r['peak_rss_mb']} MB, CPU ms/record "
                  f"{r['cpu_ms_per_record']}, machine {r['machine']}")
        else:
            print(f"  post: signed {r['signed_records_per_s']:,}/s, unsigned "
                  f"{r['unsigned_records_per_s']:,}/s, ratio "
                  f"{r['ratio_signed_over_unsigned']} (median of rounds "
                  f"{r['ratio_median_of_rounds']}), machine {r['machine']}")


if __name__ == "__main__":
    main()
