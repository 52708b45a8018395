"""Where the CPU of a loaded server's workers goes, by block of the ingest path.

    .venv/bin/python bench/profile_server.py [--duration 15] [--workers 2]

Starts the service as bench/cpu_by_process.py does (fresh database ``cc_bench_prof``,
PostgreSQL + Redis, real JWTs, wrk with ``bench/wrk/events.lua``, 16 connections), under
``bench/gunicorn_profile.conf.py``: the repo's gunicorn settings, with named blocks of the
path (gunicorn's request handling, Flask's dispatch, the view, group commit, the rate
limits, the transaction and its read, decide and write steps) timed by the CPU clock of
the thread running them. Prints each block's CPU per post and per transaction (inclusive:
blocks nest), the workers' main threads (accepting and closing connections) and the
workers' whole CPU, and the mean group size. Why not a profiler: see the config's
docstring.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest_bench as ib  # noqa: E402  (the bench directory's own helpers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", choices=("events", "healthz"), default="events")
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    (ib.ROOT / "bench" / "results").mkdir(exist_ok=True)
    tokens = ib.day_tokens(ib.USERS)
    profiles = Path(tempfile.mkdtemp(prefix="cc-prof-"))
    _, _, port, service = ib.start_service(
        "cc_bench_prof", {"WEB_CONCURRENCY": str(args.workers), "CC_PROFILE_DIR": str(profiles)},
        ib.ROOT / "bench" / "gunicorn_profile.conf.py")
    try:
        result = ib.load(port, args.path, args.duration, tokens)
    finally:
        ib.stop(service)
    deadline = time.time() + 20
    while len(list(profiles.glob("*.json"))) < args.workers and time.time() < deadline:
        time.sleep(0.2)
    seconds: dict[str, float] = {}
    counts: dict[str, float] = {}
    for f in profiles.glob("*.json"):
        data = json.loads(f.read_text())
        for key, value in data.pop("seconds").items():
            seconds[key] = seconds.get(key, 0.0) + value
        for key, value in data.items():
            counts[key] = counts.get(key, 0.0) + value
    posts, transactions = counts["posts"], counts["transactions"]
    print(f"{result['requests_per_s']:.0f} posts/s, {result['non_2xx']} non-2xx; "
          f"{posts:.0f} posts in {transactions:.0f} transactions "
          f"(mean group {posts / transactions:.2f})")
    seconds["main threads"] = counts["main thread"]
    seconds["process"] = counts["process"]
    for name, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {name:20s} {1000 * value / posts:6.3f} ms per post "
              f"{1000 * value / transactions:7.3f} ms per transaction")


if __name__ == "__main__":
    main()
