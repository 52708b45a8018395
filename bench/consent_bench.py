"""Single-post ingest with the consent gate on against off (issue 23, PIPL).

    .venv/bin/python bench/consent_bench.py [--posts 300 --rounds 4]

The service in-process on a fresh database (as bench/verify_bench.py --ingest): 400 users
who all accepted the privacy notice, single posts (chunks of one) applied by
``ingest.events.apply_chunk``; rounds alternate CONSENT_REQUIRED=all (the gate reads each
chunk's users' latest consent in the ingest's one round trip) and =none (no read). Prints
the wall time and client CPU per post of each, and the throughput ratio gate on / off on
each (wall: the database's work on the extra read included).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchlib import drop_database, fresh_database  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "cc_bench_consent"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"


def bench(posts: int, rounds: int) -> None:
    fresh_database(ADMIN_DSN, DATABASE)
    os.environ["DATABASE_URL"] = URL
    os.environ["RATE_LIMITS"] = "events:user=1000000/60"
    from benchlib import alternating_rounds, in_process_app

    app = in_process_app()
    from carbon_credits.privacy import consents

    rt = app.extensions["carbon_credits"]
    users = 400

    def gate(mode: str) -> None:
        rt.config.consent_required = "all" if mode == "on" else "none"

    try:
        for user in range(users):  # every user of the rounds consents first
            consents.accept(rt.db, f"u{user}", rt.config.privacy_notice_version,
                            rt.config.privacy_notice_version)
        m = alternating_rounds(rt, ("on", "off"), gate, posts, rounds, users)
        wall, cpu, n = m.wall, m.cpu, m.posts
        print(f"single posts, {n} each: gate on {1000 * wall['on'] / n:.3f} ms wall, "
              f"{1000 * cpu['on'] / n:.3f} ms CPU a post; gate off {1000 * wall['off'] / n:.3f} "
              f"ms wall, {1000 * cpu['off'] / n:.3f} ms CPU; throughput on/off: wall "
              f"{wall['off'] / wall['on']:.3f}, CPU {cpu['off'] / cpu['on']:.3f}")
    finally:
        rt.db.dispose()
        drop_database(ADMIN_DSN, DATABASE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    bench(args.posts, args.rounds)


if __name__ == "__main__":
    main()
