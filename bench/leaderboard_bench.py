"""Leaderboard benchmark (issue 25): top 100 + my rank in a city of 1 M users, and the
rebuild of a city's leaderboards from the ledger.

1. **Read.** A private redis-server (no persistence, a spare port) holds a city's
   all-time board of ``--users`` members (1 M by default, random scores). In one process,
   in interleaved blocks, the script times three things and reports their p50/p99:
   - ``GET /v1/leaderboards/city?period=all&limit=100`` through the service's own app
     (Flask test client: JWT check, query schema, one Redis script call for the top 100,
     the reader's rank and score, the hidden marks and the board's size; JSON dump);
   - a Redis ``PING`` round trip on the same server (redis-py);
   - the framework's floor: a minimal Flask route returning a small JSON object, through
     the test client.
   The issue's target: the route's p99 <= 2 x PING p99 + the floor's p99, i.e. the ratio
   ``route / (2 x PING + floor)`` <= 1.
2. **Rebuild** (``--entries N``, PostgreSQL): a private database on the server of
   ``DATABASE_URL`` (``cc_bench_lb_<hex>``), migrated and seeded, gets N events with their
   earn entries (``history_data.generate``: 200,000 users, 30 local days ending today, both
   demo districts), then alternately: the ``SELECT`` of the same entries (events joined
   with their earn/reversal entries of the city, every row fetched by the client through a
   server-side cursor) and ``leaderboards.rebuild.rebuild`` (the CLI's code: the read in
   local-date order, the boards of every kept period written as each period is passed,
   the swap). Reports the ratio ``SELECT time / rebuild time`` (target >= 0.3), this
   process's CPU time in the rebuild and its peak RSS (before the rounds and after), and
   the Redis memory the boards take. The database is dropped afterwards.

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/leaderboard_bench.py [--users 1000000] [--samples 3000] \\
        [--entries 1000000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
import redis  # noqa: E402
from benchlib import bench_config  # noqa: E402
from flask import Flask, jsonify  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from carbon_credits.factory import create_app  # noqa: E402
from carbon_credits.leaderboards import keys, rebuild  # noqa: E402

SECRET = "bench-secret-" + "x" * 32
CITY = "benchcity"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            client.ping()
            return proc, url
        except redis.RedisError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fill_board(client: redis.Redis, users: int) -> str:
    key = keys.board(CITY, keys.city_scope(), "all")
    rng = random.Random(25)
    pipe = client.pipeline(transaction=False)
    for start in range(0, users, 10_000):
        pipe.zadd(key, {f"u{i}": rng.randrange(1, 10**10) for i in range(start,
                                                                       min(users, start + 10_000))})
        if start % 200_000 == 0:
            pipe.execute()
    pipe.execute()
    return key


def read_figures(args: argparse.Namespace, url: str, workdir: Path) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    started = time.perf_counter()
    fill_board(client, args.users)
    print(f"board of {args.users:,} members in {time.perf_counter() - started:.1f} s; "
          f"redis used_memory {client.info('memory')['used_memory'] / 2**20:.0f} MiB",
          flush=True)
    config = bench_config(instance_path=workdir,
                          database_url=f"sqlite:///{workdir / 'db.sqlite3'}",
                          redis_url=url, jwt_secret=SECRET, default_locale="en")
    config.auto_init_db = False
    app = create_app(config)
    rt = app.extensions["carbon_credits"]
    me = f"u{args.users // 2}"
    headers = {"Authorization": "Bearer " + rt.codec.encode(me, "user", CITY, 3600)}
    service = app.test_client()
    floor_app = Flask("floor")

    @floor_app.get("/floor")
    def floor() -> Any:
        return jsonify({"status": "ok"})

    floor_client = floor_app.test_client()

    def route() -> None:
        answer = service.get("/v1/leaderboards/city?period=all&limit=100", headers=headers)
        assert answer.status_code == 200 and len(answer.json["top"]) == 100, answer.json
        assert answer.json["me"] is not None

    def ping() -> None:
        client.ping()

    def base() -> None:
        assert floor_client.get("/floor").status_code == 200

    timed: dict[str, list[float]] = {"route": [], "ping": [], "floor": []}
    calls = {"route": route, "ping": ping, "floor": base}
    for fn in calls.values():  # warm up: connections, scripts loaded, imports
        for _ in range(50):
            fn()
    block = 100
    for _ in range(max(1, args.samples // block)):
        for name, fn in calls.items():
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                timed[name].append(time.perf_counter() - t0)
    out = {name: {"p50_ms": pct(v, 0.5) * 1e3, "p99_ms": pct(v, 0.99) * 1e3, "n": len(v)}
           for name, v in timed.items()}
    bound = 2 * out["ping"]["p99_ms"] + out["floor"]["p99_ms"]
    out["ratio_p99"] = out["route"]["p99_ms"] / bound
    out["ratio_p50"] = out["route"]["p50_ms"] / (2 * out["ping"]["p50_ms"]
                                                + out["floor"]["p50_ms"])
    return out


SELECT_ENTRIES = """
SELECT e.user_id, e.local_date, e.network_id, e.origin, l.ug
FROM events e JOIN ledger_entries l ON l.event_pk = e.id
WHERE e.city = %s AND l.kind IN ('earn', 'reversal')
"""


def rebuild_figures(args: argparse.Namespace, url: str, workdir: Path) -> dict[str, Any]:
    from benchlib import drop_database, fresh_database, libpq
    from history_data import CITY as HISTORY_CITY
    from history_data import DAYS, generate

    from carbon_credits.setup import init_db

    server = os.environ.get("DATABASE_URL", "")
    if not server.startswith("postgresql"):
        raise SystemExit("--entries needs DATABASE_URL=postgresql+psycopg://...")
    admin = make_url(server).set(drivername="postgresql", database="postgres"
                                 ).render_as_string(hide_password=False)
    name = f"cc_bench_lb_{uuid.uuid4().hex[:8]}"
    fresh_database(admin, name)
    dsn = libpq(admin, name)
    try:
        config = bench_config(instance_path=workdir,
                              database_url=make_url(server).set(database=name)
                              .render_as_string(hide_password=False),
                              redis_url=url, jwt_secret=SECRET)
        app = create_app(config)
        rt = app.extensions["carbon_credits"]
        init_db(rt.db, HISTORY_CITY)
        today = dt.datetime.now(config.tz).date()
        print(f"generating {args.entries:,} events and earn entries ...", flush=True)
        gen_s = generate(rt, 1, args.entries, first_day=today - dt.timedelta(days=DAYS - 1))
        client = redis.Redis.from_url(url)
        before = client.info("memory")["used_memory"]
        selects: list[float] = []
        rebuilds: list[float] = []
        cpus: list[float] = []
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        done: dict[str, int] = {}
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            rows = 0
            with psycopg.connect(dsn) as conn, conn.cursor(name="entries") as cur:
                cur.itersize = 50_000
                cur.execute(SELECT_ENTRIES, (HISTORY_CITY,))
                for _row in cur:
                    rows += 1
            selects.append(time.perf_counter() - t0)
            t0, c0 = time.perf_counter(), time.process_time()
            done = rebuild.rebuild(rt, HISTORY_CITY)
            rebuilds.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            print(f"  select {selects[-1]:.1f} s ({rows:,} rows), rebuild {rebuilds[-1]:.1f} s "
                  f"(this process's CPU {cpus[-1]:.1f} s; {done}), load {os.getloadavg()}",
                  flush=True)
        after = client.info("memory")["used_memory"]
        rt.db.dispose()
        return {"entries": args.entries, "generate_s": gen_s,
                "select_s": statistics.median(selects), "rebuild_s": statistics.median(rebuilds),
                "ratio": statistics.median(selects) / statistics.median(rebuilds),
                "rounds": args.rounds, "rebuilt": done,
                "rebuild_cpu_s": statistics.median(cpus),
                # ru_maxrss: the peak of this whole process (the SELECT's rows are not kept)
                "peak_rss_mib_before_rounds": rss_before,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "redis_boards_mib": (after - before) / 2**20}
    finally:
        drop_database(admin, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--entries", type=int, default=0,
                        help="ledger entries for the rebuild figure (0: skip it)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        proc, url = start_redis(workdir)
        try:
            if args.users:
                read = read_figures(args, url, workdir)
                print("read:", {k: (round(v, 3) if isinstance(v, float) else v)
                                for k, v in read.items()}, flush=True)
                redis.Redis.from_url(url).flushall()  # our private server only
            if args.entries:
                figures = rebuild_figures(args, url, workdir)
                print("rebuild:", figures, flush=True)
        finally:
            proc.kill()
            proc.wait()
    print(f"load average at end: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
