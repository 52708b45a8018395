"""Ingest throughput as ratios against baselines measured in the same run.

    .venv/bin/python bench/ingest_bench.py [--duration 15] [--connections 16]

Starts, on this machine: a fresh PostgreSQL database on the local server, the service under
gunicorn with the repo's deploy/gunicorn.conf.py (PostgreSQL + Redis, real JWT auth, rate limits,
plausibility rules, methodology, ledger), and the minimal baseline handler (bench/minimal_app.py)
under the same gunicorn settings. wrk (Debian package) loads each with unique, valid events
for many users (bench/wrk/events.lua). Figures:

  1. ingest / healthz          POST /v1/events vs the same server's GET /healthz (target >= 0.3);
                               then again as --rounds interleaved slices (healthz, ingest,
                               --slice seconds each) whose median ratio is the steadier figure
  1s. ingest / sync healthz    the same ingest vs GET /healthz of the app on sync workers
                               (GUNICORN_THREADS=1), whose healthz is faster: the stricter
                               baseline, since threads slow the baseline down too
  1o. sync ingest / healthz    the app on sync workers, each post alone (no group commit)
  1b. minimal / healthz        the calibration baseline's ratio, for the gap to it
Results print as JSON and are saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SECRET = "bench-secret-" + "k" * 40
UNLIMITED = "events:user=1000000/60,device=1000000/60,ip=1000000/60"  # far above any load here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_database(admin_dsn: str, name: str) -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_dsn.rsplit("/", 1)[0] + f"/{name}"


def start_gunicorn(target: str, env: dict[str, str], port: int, cwd: Path,
                   config: Path = ROOT / "deploy" / "gunicorn.conf.py") -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-c", str(config), target],
        cwd=cwd, env={**env, "PORT": str(port)}, stdout=subprocess.DEVNULL,
        stderr=open(ROOT / "bench" / "results" / f"gunicorn-{port}.log", "wb"))
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"{target} did not start on port {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def wrk_latency_ms(out: str, percentile: str) -> float:
    """A latency percentile ("50", "99") from wrk's ``--latency`` output, in ms (NaN if
    absent)."""
    m = re.search(rf"\s{percentile}%\s+([\d.]+)(us|ms|s)", out)
    if m is None:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def wrk_non_2xx(out: str) -> int:
    """wrk's count of responses that were not 2xx or 3xx."""
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return int(m.group(1)) if m else 0


def wrk(url: str, args: argparse.Namespace, script: Path | None = None,
        env: dict[str, str] | None = None) -> dict[str, float]:
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d",
           f"{args.duration}s", "--latency", url]
    if script is not None:
        cmd[1:1] = ["-s", str(script)]
    env = {**(env if env is not None else os.environ), "BENCH_THREADS": str(args.threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env,
                         cwd=ROOT).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"requests_per_s": rps, "requests": total, "non_2xx": wrk_non_2xx(out),
            "p50_ms": round(wrk_latency_ms(out, "50"), 2),
            "p99_ms": round(wrk_latency_ms(out, "99"), 2)}


def interleaved(port: int, args: argparse.Namespace, wrk_env: dict[str, str]
                ) -> dict[str, object]:
    """Figure 1 again as ``args.rounds`` rounds of a healthz slice then an ingest slice,
    ``args.slice`` seconds each, on the same server: the machine's speed drifts within
    a minute (a run's healthz moved by 40 % between runs minutes apart), so each ratio
    compares loads a few seconds apart, and the median of the rounds is the figure. The
    ingest slices continue the events script's sequence (``BENCH_OFFSET``), so every post
    is a new event (the script's users and days hold 16 x 30 posts a user; past that the
    posts are refused as too old, which non_2xx shows)."""
    rounds = []
    offset = 0
    piece = argparse.Namespace(**{**vars(args), "duration": args.slice})
    for _ in range(args.rounds):
        healthz = wrk(f"http://127.0.0.1:{port}/healthz", piece)
        ingest = wrk(f"http://127.0.0.1:{port}", piece, ROOT / "bench" / "wrk" / "events.lua",
                     {**wrk_env, "BENCH_OFFSET": str(offset)})
        offset += int(ingest["requests"]) + 1
        rounds.append({"healthz": healthz["requests_per_s"],
                       "ingest": ingest["requests_per_s"], "non_2xx": ingest["non_2xx"],
                       "ratio": round(ingest["requests_per_s"] / healthz["requests_per_s"], 3)})
    ratios = [r["ratio"] for r in rounds]
    return {"rounds": rounds, "ratio_median": round(statistics.median(ratios), 3),
            "ratio_min": min(ratios), "ratio_max": max(ratios)}


def write_tokens(path: Path, users: int, base: datetime) -> None:
    sys.path.insert(0, str(ROOT))
    # Imported here: benchlib imports this module (SECRET).
    from benchlib import bench_config

    from carbon_credits.tokens import TokenCodec

    codec = TokenCodec(bench_config(instance_path=ROOT / "instance", database_url="sqlite://",
                                    jwt_secret=SECRET))
    tokens = [codec.encode(f"bench-{i}", "user", "shenzhen", 6 * 3600) for i in range(users)]
    path.write_text("TOKENS = {\n" + ",\n".join(f'"{t}"' for t in tokens)
                    + f"\n}}\nBASE = {int(base.timestamp())}\n")


USERS = 125
"""Users whose posts the events script cycles through (one token each), each a trip at a
time. Most posts of a run are then of users the database already knows, as in a city
whose riders post every day: a user's first post, which creates the account, costs more.
125 users at 16 trips a day over the 30-day backfill window hold 60,000 posts. (Until
2026-12-04 the script was given 2,000 tokens and, by a stride of 64, visited 125 of
them: the figures before that date are of this same load.)"""

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
TOKENS = ROOT / "bench" / "wrk" / "tokens.lua"


def day_tokens(users: int, days_back: int = 1) -> Path:
    """``TOKENS`` for ``users`` users, the events script's newest day the city's local day
    ``days_back`` days before today (negative: ahead of it)."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).replace(hour=0, minute=0, second=0,
                                                            microsecond=0)
    write_tokens(TOKENS, users, (today - timedelta(days=days_back)).astimezone(UTC))
    return TOKENS


def start_service(database: str, env: dict[str, str],
                  config: Path = ROOT / "deploy" / "gunicorn.conf.py", admin_dsn: str = ADMIN_DSN,
                  redis_url: str = REDIS_URL
                  ) -> tuple[str, dict[str, str], int, subprocess.Popen[bytes]]:
    """The service under gunicorn (``config``) on a fresh database ``database`` of the
    server of ``admin_dsn``, migrated and seeded (``flask init-db``), with Redis, the bench
    secret, no limit in reach (``UNLIMITED``), the consent gate off (``benchlib.service_env``)
    and ``env`` over the process's environment.
    The database's libpq DSN, the service's environment, its port and its process."""
    from benchlib import service_env  # here: benchlib imports this module (SECRET)

    dsn = fresh_database(admin_dsn, database)
    env = service_env(**{
        "REDIS_URL": redis_url, "JWT_SECRET": SECRET, "AUTO_INIT_DB": "0",
        "RATE_LIMITS": UNLIMITED, **env,
        "DATABASE_URL": dsn.replace("postgresql://", "postgresql+psycopg://", 1)})
    subprocess.run([str(VENV_BIN / "flask"), "--app", "app", "init-db"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    port = free_port()
    return dsn, env, port, start_gunicorn("app:app", env, port, ROOT, config)


def load(port: int, path: str, duration: int, tokens: Path) -> dict[str, float]:
    """wrk on ``path`` ("events": posts of the events script; "healthz") for ``duration``
    seconds, 16 connections."""
    args = argparse.Namespace(duration=duration, threads=1, connections=16)
    if path == "events":
        return wrk(f"http://127.0.0.1:{port}", args, ROOT / "bench" / "wrk" / "events.lua",
                   {**os.environ, "BENCH_TOKENS": str(tokens)})
    return wrk(f"http://127.0.0.1:{port}/healthz", args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved healthz/ingest slices on the default server")
    parser.add_argument("--slice", type=int, default=3, help="seconds per slice")
    parser.add_argument("--workers", type=int, default=None,
                        help="WEB_CONCURRENCY (default: deploy/gunicorn.conf.py's 2 x cores + 1)")
    args = parser.parse_args()
    (ROOT / "bench" / "results").mkdir(exist_ok=True)

    wrk_env = {**os.environ, "BENCH_TOKENS": str(day_tokens(args.users))}

    results: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "uname": " ".join(os.uname())},
        "settings": {k: v for k, v in vars(args).items() if k not in ("pg", "redis")},
    }
    # The repo's default server (gthread workers: single posts in groups), then the same
    # app on sync workers (GUNICORN_THREADS=1: each post alone, the pre-group-commit
    # server), each on a fresh database (the Lua script's event ids restart at each run).
    sizing = {"WEB_CONCURRENCY": str(args.workers)} if args.workers else {}
    for prefix, overrides in (("", {}), ("sync_", {"GUNICORN_THREADS": "1"})):
        dsn, env, port, service = start_service("cc_bench_ingest", {**sizing, **overrides},
                                                admin_dsn=args.pg, redis_url=args.redis)
        try:
            wrk(f"http://127.0.0.1:{port}/healthz", argparse.Namespace(**{**vars(args),
                                                                          "duration": 3}))
            results[f"{prefix}healthz"] = wrk(f"http://127.0.0.1:{port}/healthz", args)
            results[f"{prefix}ingest"] = wrk(f"http://127.0.0.1:{port}", args,
                                             ROOT / "bench" / "wrk" / "events.lua", wrk_env)
        finally:
            stop(service)
        with psycopg.connect(dsn) as conn:
            results[f"{prefix}ingest_db"] = dict(zip(
                ("events", "credited", "ledger_entries"),
                conn.execute("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM "
                             "events WHERE status IN ('credited', 'capped')), "
                             "(SELECT count(*) FROM ledger_entries)").fetchone() or (),
                strict=True))
    if args.rounds:  # figure 1 again, interleaved, on a fresh database of its own
        _, _, port, service = start_service("cc_bench_ingest_mixed", sizing,
                                            admin_dsn=args.pg, redis_url=args.redis)
        try:
            wrk(f"http://127.0.0.1:{port}/healthz", argparse.Namespace(**{**vars(args),
                                                                          "duration": 3}))
            results["interleaved"] = interleaved(port, args, wrk_env)
        finally:
            stop(service)
    # The calibration handler on sync workers (the last env, whose database it writes to):
    # its fastest configuration.
    port = free_port()
    minimal = start_gunicorn("minimal_app:app", {**env, "MINIMAL_DSN": dsn}, port,
                             ROOT / "bench")
    try:
        results["minimal_healthz"] = wrk(f"http://127.0.0.1:{port}/healthz", args)
        results["minimal_ingest"] = wrk(f"http://127.0.0.1:{port}", args,
                                        ROOT / "bench" / "wrk" / "events.lua", wrk_env)
    finally:
        stop(minimal)

    def rps(name: str) -> float:
        figures = results[name]
        assert isinstance(figures, dict)
        return float(figures["requests_per_s"])

    results["ratios"] = {
        "ingest_over_healthz": round(rps("ingest") / rps("healthz"), 3),
        "ingest_over_healthz_interleaved_median": (
            mixed["ratio_median"] if isinstance(mixed := results.get("interleaved"), dict)
            else None),
        "ingest_over_sync_healthz": round(rps("ingest") / rps("sync_healthz"), 3),
        "sync_ingest_over_sync_healthz": round(rps("sync_ingest") / rps("sync_healthz"), 3),
        "ingest_over_sync_ingest": round(rps("ingest") / rps("sync_ingest"), 3),
        "minimal_over_minimal_healthz": round(rps("minimal_ingest") / rps("minimal_healthz"), 3),
        "ingest_over_minimal_ingest": round(rps("ingest") / rps("minimal_ingest"), 3),
    }
    out = ROOT / "bench" / "results" / f"ingest-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "cc_bench_ingest" WITH (FORCE)')
        conn.execute('DROP DATABASE IF EXISTS "cc_bench_ingest_mixed" WITH (FORCE)')


if __name__ == "__main__":
    main()
