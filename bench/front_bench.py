"""Single-post ingest through the production front (nginx, deploy/nginx.conf, in front of
gunicorn's gthread, deploy/gunicorn.conf.py) against the same server without nginx, and
against the minimal handler (bench/minimal_app.py) behind the same nginx and gunicorn
config, in alternating rounds of one run.

    .venv/bin/python bench/front_bench.py [--rounds 3] [--slice 10] [--connections 16]

Needs wrk and nginx (Debian packages) and the machine's PostgreSQL and Redis. Starts: the
service under gunicorn (deploy/gunicorn.conf.py, PostgreSQL + Redis, real JWT auth, rate
limits out of reach, plausibility rules, methodology, ledger) on a fresh database, the
minimal handler under the same config on a fresh database of its own, and an nginx
(deploy/nginx.conf, worker_processes auto, its files in a temporary directory; the bench
reuses the test suite's wrapper, tests/faults/nginx.py) in front of each. Each round loads,
in an order rotated each round, for ``--slice`` seconds each with wrk (``--connections``
connections, bench/wrk/events.lua: unique plausible posts of 125 users):

  service via nginx, service direct, minimal via nginx, minimal direct,
  and GET /healthz of the service via nginx and direct.

Per load: requests/s, p50/p99, non-2xx, and the CPU per request of the serving processes
(gunicorn master and workers, nginx master and workers, and the PostgreSQL backends
connected to that load's database, from /proc: not wrk, not Redis, not co-tenants). The
figures are the medians over rounds; ``ingest_via_nginx_over_minimal_via_nginx`` is the
issue's ratio. Results print as JSON and are saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest_bench as ib  # noqa: E402  (the bench directory's own helpers)

sys.path.insert(0, str(ib.ROOT))
from tests.faults.nginx import Nginx  # noqa: E402

CONFIG = ib.ROOT / "deploy" / "gunicorn.conf.py"
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def tree(root: int) -> set[int]:
    """``root`` and its live children (gunicorn's or nginx's master and workers)."""
    pids = {root}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        found = _stat(int(stat.parent.name))
        if found is not None and found[0] == root:
            pids.add(int(stat.parent.name))
    return pids


def backends(admin_dsn: str, database: str) -> set[int]:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                            (database,)).fetchall()
    return {int(r[0]) for r in rows}


def cpu(pids: set[int]) -> dict[int, float]:
    return {pid: found[1] for pid in pids if (found := _stat(pid)) is not None}


class Target:
    """One server (gunicorn, and the nginx in front of it when ``port`` is nginx's)."""

    def __init__(self, name: str, port: int, roots: list[int], database: str,
                 path: str) -> None:
        self.name, self.port, self.roots, self.database, self.path = (
            name, port, roots, database, path)

    def pids(self, admin_dsn: str) -> set[int]:
        pids: set[int] = set()
        for root in self.roots:
            pids |= tree(root)
        return pids | backends(admin_dsn, self.database)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default=ib.ADMIN_DSN)
    parser.add_argument("--redis", default=ib.REDIS_URL)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slice", type=int, default=10, help="seconds per load")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=None,
                        help="WEB_CONCURRENCY (default: deploy/gunicorn.conf.py's)")
    parser.add_argument("--loads", default=None,
                        help="comma-separated loads to run (default: all six)")
    args = parser.parse_args()
    (ib.ROOT / "bench" / "results").mkdir(exist_ok=True)
    tokens = ib.day_tokens(ib.USERS)
    sizing = {"WEB_CONCURRENCY": str(args.workers)} if args.workers else {}

    service_db, minimal_db = "cc_bench_front", "cc_bench_front_min"
    _, env, service_port, service = ib.start_service(
        service_db, {**sizing, "PROXY_FIX_X_FOR": "1"}, CONFIG, admin_dsn=args.pg,
        redis_url=args.redis)
    minimal_dsn = ib.fresh_database(args.pg, minimal_db)
    minimal_port = ib.free_port()
    minimal = ib.start_gunicorn("minimal_app:app", {**env, "MINIMAL_DSN": minimal_dsn},
                                minimal_port, ib.ROOT / "bench", CONFIG)
    fronts = [Nginx(f"127.0.0.1:{service_port}", "auto"),
              Nginx(f"127.0.0.1:{minimal_port}", "auto")]
    results: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "uname": " ".join(os.uname())},
        "settings": {k: v for k, v in vars(args).items() if k not in ("pg", "redis")},
    }
    try:
        for front in fronts:
            front.start()
        assert fronts[0].proc is not None and fronts[1].proc is not None
        targets = [
            Target("ingest_via_nginx", fronts[0].port, [service.pid, fronts[0].proc.pid],
                   service_db, "events"),
            Target("ingest_direct", service_port, [service.pid], service_db, "events"),
            Target("minimal_via_nginx", fronts[1].port, [minimal.pid, fronts[1].proc.pid],
                   minimal_db, "events"),
            Target("minimal_direct", minimal_port, [minimal.pid], minimal_db, "events"),
            Target("healthz_via_nginx", fronts[0].port, [service.pid, fronts[0].proc.pid],
                   service_db, "healthz"),
            Target("healthz_direct", service_port, [service.pid], service_db, "healthz"),
        ]
        if args.loads:
            targets = [t for t in targets if t.name in args.loads.split(",")]
        # The events script's sequence goes on across loads of one database, so every post
        # is a new event (the service's 125 users hold 60,000 posts in the backfill window).
        offsets = {service_db: 0, minimal_db: 0}
        warm = argparse.Namespace(**{**vars(args), "duration": 3})
        for target in targets:
            if target.path == "healthz":
                ib.wrk(f"http://127.0.0.1:{target.port}/healthz", warm)
        rounds: list[dict[str, dict[str, float]]] = []
        piece = argparse.Namespace(**{**vars(args), "duration": args.slice})
        for n in range(args.rounds):
            order = targets[n % len(targets):] + targets[:n % len(targets)]
            figures: dict[str, dict[str, float]] = {}
            for target in order:
                pids = target.pids(args.pg)
                before = cpu(pids)
                if target.path == "events":
                    out = ib.wrk(f"http://127.0.0.1:{target.port}", piece,
                                 ib.ROOT / "bench" / "wrk" / "events.lua",
                                 {**os.environ, "BENCH_TOKENS": str(tokens),
                                  "BENCH_OFFSET": str(offsets[target.database])})
                    offsets[target.database] += int(out["requests"]) + 1
                else:
                    out = ib.wrk(f"http://127.0.0.1:{target.port}/healthz", piece)
                db = backends(args.pg, target.database)
                after = cpu(pids | target.pids(args.pg))
                spent = sum(after[p] - before.get(p, 0.0) for p in after)
                out["cpu_ms_per_request"] = round(1000 * spent / max(1, out["requests"]), 3)
                # Where it went: the database's backends, the rest (gunicorn, nginx).
                in_db = sum(after[p] - before.get(p, 0.0) for p in after if p in db)
                out["db_cpu_ms_per_request"] = round(1000 * in_db / max(1, out["requests"]), 3)
                figures[target.name] = out
                print(f"round {n + 1} {target.name}: {out['requests_per_s']:.0f}/s "
                      f"p99 {out['p99_ms']} ms, {out['cpu_ms_per_request']} ms CPU/request "
                      f"({out['db_cpu_ms_per_request']} in PostgreSQL), "
                      f"non-2xx {out['non_2xx']}", flush=True)
            rounds.append(figures)
    finally:
        for front in fronts:
            front.stop()
        ib.stop(service)
        ib.stop(minimal)

    def median(name: str, key: str) -> float:
        return round(statistics.median(r[name][key] for r in rounds), 3)

    results["rounds"] = rounds
    results["medians"] = {t.name: {k: median(t.name, k) for k in
                                   ("requests_per_s", "p50_ms", "p99_ms", "cpu_ms_per_request",
                                    "db_cpu_ms_per_request")}
                          for t in targets}

    def ratio(a: str, b: str) -> dict[str, float]:
        each = [r[a]["requests_per_s"] / r[b]["requests_per_s"] for r in rounds]
        return {"median": round(statistics.median(each), 3), "min": round(min(each), 3),
                "max": round(max(each), 3)}

    ran = {t.name for t in targets}
    results["ratios"] = {
        f"{a}_over_{b}": ratio(a, b) for a, b in (
            ("ingest_via_nginx", "minimal_via_nginx"), ("ingest_direct", "minimal_direct"),
            ("ingest_via_nginx", "ingest_direct"), ("healthz_via_nginx", "healthz_direct"))
        if a in ran and b in ran}
    out_path = ib.ROOT / "bench" / "results" / f"front-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out_path.write_text(json.dumps(results, indent=2))
    print(json.dumps({"medians": results["medians"], "ratios": results["ratios"]}, indent=2))
    for name in (service_db, minimal_db):
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
