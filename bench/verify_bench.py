"""verify-ledger over N entries against a plain SELECT of the same rows; and single-post
ingest with the keyed chain against the unkeyed one (issue 23).

    .venv/bin/python bench/verify_bench.py --entries 1000000 [--per-account 1000]
    .venv/bin/python bench/verify_bench.py --ingest [--posts 300 --rounds 4]

``--entries``: builds a private database (``cc_bench_verify``) on the local PostgreSQL
server holding N credited events and their keyed earn entries (``--per-account`` entries per
account), written with COPY, then runs, each in a fresh child process so its peak RSS is its
own: (a) ``verification.verify`` over everything, (b) the plain SELECT of the same rows
(entries left-joined to their events, redemptions and reward redemptions, in (user, seq)
order) streamed through a server-side cursor and dropped. Prints wall time, the ratio and
each child's peak RSS (ru_maxrss); run it at two sizes to see that memory is flat.

``--ingest``: the service in-process on a fresh database (as bench/chunk_cpu.py), single
posts (chunks of one) applied by ``ingest.events.apply_chunk``; rounds alternate the keyed
hash (``chain.next_hash``, HMAC-SHA256) and the unkeyed one (plain SHA-256, patched in),
and it prints the CPU per post of each and the unkeyed/keyed throughput ratio.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchlib import drop_database, fresh_database, libpq  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "cc_bench_verify"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"


def _app():  # type: ignore[no-untyped-def]
    os.environ["DATABASE_URL"] = URL
    os.environ["RATE_LIMITS"] = "events:user=1000000/60"
    from benchlib import in_process_app
    return in_process_app()


def build(entries: int, per_account: int) -> None:
    """N credited events and their keyed earn entries, by COPY (minutes, not hours)."""
    import psycopg

    from carbon_credits.ledger import chain
    from carbon_credits.storage.models import FactorVersion

    app = _app()
    rt = app.extensions["carbon_credits"]
    with rt.db.transaction() as s:
        factor = s.query(FactorVersion).filter_by(city="shenzhen", mode="metro").first()
        assert factor is not None
        factor_id = factor.id
    rt.db.dispose()
    accounts = -(-entries // per_account)
    t0 = time.perf_counter()
    # This month's first day: events are partitioned by month (migration 0009_partition),
    # and the migration makes the months from about three before today on.
    base = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with psycopg.connect(libpq(ADMIN_DSN, DATABASE)) as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY users (id, city, frozen, created_at) FROM STDIN") as cp:
                for a in range(accounts):
                    cp.write_row((f"u{a:07d}", "shenzhen", False, base))
        event_id = 0
        for a in range(accounts):
            user = f"u{a:07d}"
            n = min(per_account, entries - a * per_account)
            events, ledger = io.StringIO(), []
            prev, balance = chain.GENESIS_HASH, 0
            for seq in range(1, n + 1):
                event_id += 1
                ug = 2_000_000
                at = base + timedelta(minutes=seq)
                events.write(f"{event_id}\t{user}\te{event_id}\tmetro\tshenzhen\t"
                             f"{at.isoformat()}\t{base.date()}\t\\\\x{'00' * 32}\t"
                             f"credited\t{ug}\t{ug}\t2\t{factor_id}\tbench\t1000\t"
                             f"{at.isoformat()}\n")
                balance += 2
                row = {"user_id": user, "seq": seq, "kind": "earn", "points": 2, "ug": ug,
                       "balance_after": balance, "event_pk": event_id, "redemption_pk": None,
                       "mode": "metro", "factor_version_id": factor_id, "created_at": at}
                prev = chain.next_hash(row, prev)
                ledger.append((user, seq, "earn", 2, ug, balance, event_id, "metro",
                               factor_id, at, prev))
            with conn.cursor() as cur:
                with cur.copy("COPY accounts (user_id, balance_points, lifetime_points, "
                              "lifetime_ug, carry_ug, entry_count, last_hash, updated_at) "
                              "FROM STDIN") as cp:
                    cp.write_row((user, balance, balance, n * 2_000_000, 0, n, prev, base))
                with cur.copy("COPY events (id, user_id, event_id, mode, city, occurred_at, "
                              "local_date, payload_hash, status, avoided_ug, credited_ug, "
                              "points, factor_version_id, methodology_version, activity, "
                              "created_at) FROM STDIN") as cp:
                    cp.write(events.getvalue())
                with cur.copy("COPY ledger_entries (user_id, seq, kind, points, ug, "
                              "balance_after, event_pk, mode, factor_version_id, created_at, "
                              "hash) FROM STDIN") as cp:
                    for r in ledger:
                        cp.write_row(r)
            if a % 100 == 99:
                conn.commit()
        with conn.cursor() as cur:
            cur.execute("SELECT setval('events_id_seq', %s)", (event_id,))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    print(f"built {entries:,} entries over {accounts:,} accounts in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)


def measure(what: str) -> None:
    """One measurement in this (child) process: wall time, rows, peak RSS."""
    t0 = time.perf_counter()
    if what == "verify":
        from carbon_credits.ledger.verification import Report, verify
        app = _app()
        report = Report()
        problems = sum(1 for _ in verify(app.extensions["carbon_credits"].db, report))
        rows = report.entries
        assert problems == 0, problems
    else:
        import psycopg
        rows = 0
        with psycopg.connect(libpq(ADMIN_DSN, DATABASE)) as conn, \
                conn.cursor(name="plain") as cur:
            cur.itersize = 10_000
            cur.execute(
                "SELECT * FROM ledger_entries e LEFT JOIN events ev ON ev.id = e.event_pk "
                "LEFT JOIN redemptions r ON r.id = e.redemption_pk LEFT JOIN "
                "reward_redemptions rr ON rr.redemption_pk = e.redemption_pk "
                "ORDER BY e.user_id, e.seq")
            for _ in cur:
                rows += 1
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RESULT {what} rows={rows} wall={wall:.2f} rss_mb={rss:.0f}", flush=True)


def child(what: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--measure", what], check=True,
                         capture_output=True, text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    return {k: float(v) for k, v in (p.split("=") for p in line.split()[2:])}


def verify_bench(entries: int, per_account: int) -> None:
    fresh_database(ADMIN_DSN, DATABASE)
    try:
        build(entries, per_account)
        plain, verified = child("select"), child("verify")
        print(f"{entries:,} entries: plain SELECT {plain['wall']:.1f} s, "
              f"{plain['rss_mb']:.0f} MB; verify-ledger {verified['wall']:.1f} s, "
              f"{verified['rss_mb']:.0f} MB; ratio {verified['wall'] / plain['wall']:.1f}x")
    finally:
        drop_database(ADMIN_DSN, DATABASE)


def ingest_bench(posts: int, rounds: int) -> None:
    fresh_database(ADMIN_DSN, DATABASE)
    app = _app()
    from benchlib import alternating_rounds

    from carbon_credits.ledger import chain

    rt = app.extensions["carbon_credits"]
    keyed = chain.next_hash

    def hashing(mode: str) -> None:
        chain.next_hash = keyed if mode == "keyed" else chain.legacy_hash  # type: ignore[assignment]

    try:
        m = alternating_rounds(rt, ("keyed", "unkeyed"), hashing, posts, rounds)
        cpu, n = m.cpu, m.posts
        print(f"single posts, {n} each: keyed {1000 * cpu['keyed'] / n:.3f} ms CPU/post, "
              f"unkeyed {1000 * cpu['unkeyed'] / n:.3f} ms CPU/post; keyed/unkeyed "
              f"throughput {cpu['unkeyed'] / cpu['keyed']:.3f}")
    finally:
        chain.next_hash = keyed  # type: ignore[assignment]
        rt.db.dispose()
        drop_database(ADMIN_DSN, DATABASE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=0)
    parser.add_argument("--per-account", type=int, default=1000)
    parser.add_argument("--measure", choices=("verify", "select"))
    parser.add_argument("--ingest", action="store_true")
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
    elif args.ingest:
        ingest_bench(args.posts, args.rounds)
    else:
        verify_bench(args.entries or 1_000_000, args.per_account)


if __name__ == "__main__":
    main()
