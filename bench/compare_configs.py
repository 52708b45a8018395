"""Two or more gunicorn configs of the service, compared in alternating rounds.

    .venv/bin/python bench/compare_configs.py deploy/gunicorn.conf.py other.conf.py \
        [--rounds 4] [--slice 8] [--workers 2]

Each round starts the service once per config (in the order given, rotated each round so
that no config always runs first), each on a fresh database, as bench/ingest_bench.py
does, and loads it with wrk for ``--slice`` seconds of GET /healthz, then ``--slice``
seconds of POST /v1/events (``bench/wrk/events.lua``, 16 connections). Prints each
round's requests/s, ingest / healthz and the machine's CPU per request (all processes:
workers, PostgreSQL, Redis, wrk), and per config the medians over rounds: on
this shared, noisy machine a difference between configs counts only if it holds round
after round. A config is a gunicorn config file; ``ENV=VALUE`` arguments after a
config's path (``deploy/gunicorn.conf.py:GUNICORN_THREADS=8``, comma-separated) set the
environment of that config's server.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest_bench as ib  # noqa: E402  (the bench directory's own helpers)


def busy_seconds() -> float:
    """CPU seconds the machine has spent busy so far, all cores (/proc/stat: everything but
    idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def parse_config(spec: str) -> tuple[Path, dict[str, str]]:
    path, _, settings = spec.partition(":")
    env = dict(item.split("=", 1) for item in settings.split(",") if item)
    return Path(path).resolve(), env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--slice", type=int, default=8, help="seconds per load")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    (ib.ROOT / "bench" / "results").mkdir(exist_ok=True)
    tokens = ib.day_tokens(ib.USERS)
    figures: dict[str, list[dict[str, float]]] = {spec: [] for spec in args.configs}
    for n in range(args.rounds):
        order = args.configs[n % len(args.configs):] + args.configs[:n % len(args.configs)]
        for spec in order:
            config, env = parse_config(spec)
            _, _, port, service = ib.start_service(
                "cc_bench_compare", {"WEB_CONCURRENCY": str(args.workers), **env}, config)
            try:
                ib.load(port, "healthz", 2, tokens)  # warm-up
                busy = busy_seconds()
                healthz = ib.load(port, "healthz", args.slice, tokens)
                now = busy_seconds()
                busy, healthz_cpu = now, now - busy
                ingest = ib.load(port, "events", args.slice, tokens)
                ingest_cpu = busy_seconds() - busy
            finally:
                ib.stop(service)
            row = {"healthz": healthz["requests_per_s"], "ingest": ingest["requests_per_s"],
                   "ingest_p99_ms": ingest["p99_ms"], "healthz_p99_ms": healthz["p99_ms"],
                   "non_2xx": healthz["non_2xx"] + ingest["non_2xx"],
                   "healthz_cpu_ms": round(1000 * healthz_cpu / healthz["requests"], 3),
                   "ingest_cpu_ms": round(1000 * ingest_cpu / ingest["requests"], 3)}
            row["ratio"] = round(row["ingest"] / row["healthz"], 3)
            figures[spec].append(row)
            print(f"round {n + 1} {spec}: {json.dumps(row)}", flush=True)
    print()
    for spec, rows in figures.items():
        medians = {key: round(statistics.median(r[key] for r in rows), 3)
                   for key in ("healthz", "ingest", "ratio", "ingest_p99_ms", "healthz_cpu_ms",
                               "ingest_cpu_ms")}
        print(f"{spec}: medians {json.dumps(medians)}; non-2xx "
              f"{sum(r['non_2xx'] for r in rows)}")


if __name__ == "__main__":
    main()
