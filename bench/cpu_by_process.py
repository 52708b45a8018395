"""Where the CPU of a loaded server goes, by process: gunicorn workers, PostgreSQL, Redis,
wrk, per request.

    .venv/bin/python bench/cpu_by_process.py [--path events|healthz] [--duration 15]
        [--workers 2] [--threads 16] [--rate-limits SPEC] [--future-days 0]

Starts the service as bench/ingest_bench.py does (fresh database ``cc_bench_cpu``, the
repo's deploy/gunicorn.conf.py, PostgreSQL + Redis, real JWTs) and loads it with wrk for
``--duration`` seconds (16 connections, ``bench/wrk/events.lua`` or GET /healthz). Reads
every process's user and system CPU time from /proc before and after, and prints them per
request, grouped (BENCHMARKS.md, figure 6). Variants used in the fifth round of `git show
24afb5c:BENCHMARKS.md`:
``--rate-limits 'reports:user=60/60'`` (no limit on the events route: the limiter's cost),
``--future-days 40`` (every event in the future, refused before any database work: the
request path's own cost), ``--threads 1 --workers 5`` (sync workers).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest_bench as ib  # noqa: E402  (the bench directory's own helpers)
from benchlib import drop_database  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times() -> dict[int, tuple[str, int, int]]:
    """pid -> (command line, user ticks, system ticks) of every process, its reaped
    children's included: a gunicorn worker recycled by ``max_requests`` during the run, or
    a PostgreSQL backend that ended, is counted in its parent (gunicorn's master, the
    postmaster) once gone."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
        found[int(pid)] = (cmd, utime + cutime, stime + cstime)
    return found


def group(cmd: str) -> str:
    if "gunicorn" in cmd:
        return "gunicorn"
    if cmd.startswith("postgres") or "postgres:" in cmd:
        return "postgres"
    if "redis" in cmd:
        return "redis"
    return "other"


def context_switches() -> int:
    """Context switches of the whole machine so far (/proc/stat): a process or thread going
    to sleep or being preempted, and another run. On this VM (a Firecracker guest with
    nested paravirtualization) each costs tens of microseconds of CPU, so their count per
    request is as much a cost as the code run."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("ctxt "):
            return int(line.split()[1])
    return 0


def stolen() -> float:
    """CPU seconds the hypervisor gave to other guests while this one wanted to run
    (/proc/stat, steal), over all CPUs: how much of a run the host took away."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", choices=("events", "healthz"), default="events")
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None,
                        help="GUNICORN_THREADS (default: deploy/gunicorn.conf.py's)")
    parser.add_argument("--rate-limits", default=ib.UNLIMITED)
    parser.add_argument("--config", type=Path, default=ib.ROOT / "deploy" / "gunicorn.conf.py",
                        help="gunicorn config file (a variant under test)")
    parser.add_argument("--future-days", type=int, default=0,
                        help="shift the events this many days ahead (40: all refused)")
    args = parser.parse_args()
    (ib.ROOT / "bench" / "results").mkdir(exist_ok=True)
    tokens = ib.day_tokens(ib.USERS, 1 - args.future_days)
    env = {"RATE_LIMITS": args.rate_limits, "WEB_CONCURRENCY": str(args.workers)}
    if args.threads is not None:
        env["GUNICORN_THREADS"] = str(args.threads)
    _, _, port, service = ib.start_service("cc_bench_cpu", env, args.config)
    try:
        ib.load(port, "healthz", 3, tokens)  # warm-up
        before, started, children = cpu_times(), time.time(), os.times()
        switches, steal = context_switches(), stolen()
        result = ib.load(port, args.path, args.duration, tokens)
        after, elapsed, done = cpu_times(), time.time() - started, os.times()
        switches, steal = context_switches() - switches, stolen() - steal
    finally:
        ib.stop(service)
        drop_database(ib.ADMIN_DSN, "cc_bench_cpu")
    # A group's CPU is what its processes hold after, less what they held before, those
    # gone since included: a reaped process's whole CPU moved into its parent's children
    # figures (cpu_times), the part it had used before the load with it.
    totals: dict[str, list[float]] = {}
    for sign, snapshot in ((1, after), (-1, before)):
        for cmd, user, system in snapshot.values():
            into = totals.setdefault(group(cmd), [0.0, 0.0])
            into[0] += sign * user / TICKS
            into[1] += sign * system / TICKS
    totals["wrk"] = [done.children_user - children.children_user,
                     done.children_system - children.children_system]
    n = result["requests"]
    print(f"{args.path}: {result['requests_per_s']:.0f} requests/s, {result['non_2xx']} "
          f"non-2xx, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; "
          f"{sum(u + s for u, s in totals.values()) / elapsed:.2f} cores busy; "
          f"{switches / n:.1f} context switches per request (machine); "
          f"{steal / elapsed:.2f} cores stolen by the host")
    for name, (user, system) in sorted(totals.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {name:9s} {1000 * (user + system) / n:6.3f} ms CPU per request "
              f"(system {1000 * system / n:.3f})")


if __name__ == "__main__":
    main()
