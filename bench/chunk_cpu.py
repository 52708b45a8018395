"""CPU of applying a chunk of single posts, by chunk size, in-process (no HTTP server).

    .venv/bin/python bench/chunk_cpu.py [--sizes 1,2,4,8,16] [--groups 150]

What group commit (carbon_credits/ingest/group_commit.py) makes of concurrent posts: the chunk of
``size`` posts, one per user, applied by ``ingest.events.apply_chunk`` in one transaction, as a
worker's group of that size is. Creates a private database (``cc_bench_chunk``) on the local
PostgreSQL server, warms up 400 users (each with an account, a device and a first trip),
then applies ``--groups`` chunks per size and prints the process's CPU time per event (the
client side only: PostgreSQL's own CPU is not counted) and the wall time. The figures in
BENCHMARKS.md (figure 7; the rounds of `git show 24afb5c:BENCHMARKS.md`) come from this script.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import drop_database, fresh_database  # noqa: E402  (bench/)

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "cc_bench_chunk"
USERS = 400


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,2,4,8,16")
    parser.add_argument("--groups", type=int, default=150)
    args = parser.parse_args()
    fresh_database(ADMIN_DSN, DATABASE)
    os.environ["DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
    os.environ["RATE_LIMITS"] = "events:user=1000000/60"

    from benchlib import in_process_app, metro_posts

    from carbon_credits.ingest import events

    rt = in_process_app().extensions["carbon_credits"]
    posted = metro_posts(rt, USERS)
    turn = 0
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            chunks = []
            for _ in range(args.groups):
                chunks.append([posted((turn + k) % USERS) for k in range(size)])
                turn += size
            for chunk in chunks[:5]:  # warm-up: statements compiled and prepared
                events.apply_chunk(rt, chunk)
            cpu, wall = time.process_time(), time.perf_counter()
            for chunk in chunks[5:]:
                assert all(getattr(r, "created", False) for r in events.apply_chunk(rt, chunk))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            n = (args.groups - 5) * size
            print(f"chunk of {size:3d}: CPU {1000 * cpu / n:6.3f} ms per event, "
                  f"wall {1000 * wall / n:6.3f} ms per event")
    finally:
        rt.db.dispose()
        drop_database(ADMIN_DSN, DATABASE)


if __name__ == "__main__":
    main()
