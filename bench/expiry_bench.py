"""The points expiry job (``flask expire-points``, ledger/expiring.py) over many accounts,
against a plain UPDATE touching the same rows, and ingest throughput while it runs against
ingest alone (issue 22: target >= 0.8), in one run.

A fresh PostgreSQL database gets ``--accounts`` accounts of one city with
``--entries`` ledger entries each (COPY; four earn entries to one redemption, written
evenly over the last 420 days; the city's policy: points expire 365 days after they were
earned), so at the first run about an eighth of each account's points are due. The
synthetic entries carry a dummy hash: verify-ledger is not the point here (figure 10 is).

Figures, all from this run:

- 15a: the job's first run (it folds every entry of every account into ``expiry_states``,
  then writes one 'expiry' entry per account with points due), against
  ``UPDATE accounts SET updated_at = now()`` of the same accounts in one statement;
- 15b: the job 60 days later (incremental: it reads only the entries written since);
- 15c: single posts ingested per second by in-process threads for accounts of the same
  city while the 60-days-later job runs in another process, against the same threads with
  no job (the mean of a round before and one after).

    .venv/bin/python bench/expiry_bench.py --accounts 100000 --entries 20
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import benchlib  # noqa: E402

CITY = "benchcity"
DB = "cc_expiry_bench"


def populate(dsn: str, accounts: int, per_account: int, now: datetime) -> int:
    """Users, accounts and their ledger entries by COPY; the number of entries."""
    span = timedelta(days=420)
    total = 0
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO expiry_policies VALUES (%s, %s, 'days', 365, 'bench', "
                    "'bench', %s)", (CITY, now - timedelta(days=3000), now))
        step = 10_000
        for first in range(0, accounts, step):
            users, accts, entries = io.StringIO(), io.StringIO(), io.StringIO()
            for a in range(first, min(first + step, accounts)):
                user = f"b{a:08d}"
                users.write(f"{user}\t{CITY}\tf\t{now.isoformat()}\n")
                balance = 0
                for i in range(per_account):
                    at = now - span + span * (i + 0.5) / per_account
                    if i % 5 == 4:
                        kind, points, ug = "redeem", -min(balance, 15), 0
                    else:
                        kind, points = "earn", 10 + (a + i) % 20
                        ug = points * 1_000_000
                    balance += points
                    entries.write(f"{user}\t{i + 1}\t{kind}\t{points}\t{ug}\t{balance}\t"
                                  f"{at.isoformat()}\t\\\\x{'00' * 32}\n")
                accts.write(f"{user}\t{balance}\t{balance}\t0\t0\t{per_account}\t"
                            f"\\\\x{'00' * 32}\t{now.isoformat()}\n")
                total += per_account
            for table, columns, data in (
                    ("users", "id, city, frozen, created_at", users),
                    ("accounts", "user_id, balance_points, lifetime_points, lifetime_ug, "
                                 "carry_ug, entry_count, last_hash, updated_at", accts),
                    ("ledger_entries", "user_id, seq, kind, points, ug, balance_after, "
                                       "created_at, hash", entries)):
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    copy.write(data.getvalue())
            conn.commit()
        cur.execute("ANALYZE")
        conn.commit()
    return total


def plain_update(dsn: str) -> float:
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        conn.execute("UPDATE accounts SET updated_at = now() WHERE user_id IN "
                     "(SELECT id FROM users WHERE city = %s)", (CITY,))
        conn.commit()
        return time.perf_counter() - started


def job_process(now: datetime, batch: int) -> subprocess.Popen[str]:
    """The job in a process of its own, as cron runs it."""
    return subprocess.Popen(
        [sys.executable, __file__, "--job", now.isoformat(), "--job-batch", str(batch)],
        stdout=subprocess.PIPE, text=True, env={**os.environ})


def run_job(now_iso: str, batch: int) -> None:
    from carbon_credits.ledger import expiring
    app = benchlib.in_process_app()
    started = time.perf_counter()
    run = expiring.expire_due(app.extensions["carbon_credits"], datetime.fromisoformat(now_iso),
                              batch=batch)
    print(json.dumps({"seconds": time.perf_counter() - started, "accounts": run.accounts,
                      "expired_accounts": run.expired_accounts,
                      "expired_points": run.expired_points, "batches": run.batches}))


class Ingest:
    """Threads posting one metro trip each for bench accounts (each account once)."""

    def __init__(self, threads: int, accounts: int) -> None:
        from carbon_credits.ingest import events
        from carbon_credits.schemas import load_event
        from carbon_credits.tokens import Principal
        from tests import factories
        self.app = benchlib.in_process_app()
        self.rt = self.app.extensions["carbon_credits"]
        self.threads, self.accounts = threads, accounts
        self.next = accounts - 1
        self.lock = threading.Lock()

        def post(n: int) -> None:
            events.ingest(self.rt, Principal(f"b{n:08d}", "user", CITY),
                          load_event(factories.metro(start=factories.today_at(8))))
        self.post = post

    def measure(self, seconds: float, until: subprocess.Popen[str] | None = None
                ) -> tuple[int, float]:
        stop = threading.Event()
        done = [0] * self.threads

        def work(k: int) -> None:
            while not stop.is_set():
                with self.lock:
                    n, self.next = self.next, self.next - 1
                self.post(n)
                done[k] += 1

        workers = [threading.Thread(target=work, args=(k,)) for k in range(self.threads)]
        started = time.perf_counter()
        for w in workers:
            w.start()
        if until is not None:
            until.wait()
        else:
            time.sleep(seconds)
        stop.set()
        for w in workers:
            w.join()
        return sum(done), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=20, help="per account")
    parser.add_argument("--threads", type=int, default=4, help="ingest threads")
    parser.add_argument("--ingest-seconds", type=float, default=30)
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--job-batch", type=int, default=500,
                        help="accounts per transaction of the job (its --batch)")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        run_job(args.job, args.job_batch)
        return
    dsn = benchlib.libpq(args.admin_dsn, DB)
    benchlib.fresh_database(args.admin_dsn, DB)
    os.environ["DATABASE_URL"] = dsn.replace("postgresql://", "postgresql+psycopg://")
    benchlib.in_process_app()  # migrate and seed
    now = datetime.now(UTC)
    out: dict[str, object] = {"accounts": args.accounts, "entries_per_account": args.entries,
                              "job_batch": args.job_batch, "load_before": os.getloadavg()}
    started = time.perf_counter()
    out["entries"] = populate(dsn, args.accounts, args.entries, now)
    out["populate_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out), flush=True)

    out["update_1_s"] = round(plain_update(dsn), 2)
    first = job_process(now, args.job_batch)
    stdout, _ = first.communicate()
    out["job_1"] = json.loads(stdout.strip().splitlines()[-1])
    out["update_2_s"] = round(plain_update(dsn), 2)
    print(json.dumps(out), flush=True)

    ingest = Ingest(args.threads, args.accounts)
    alone_1 = ingest.measure(args.ingest_seconds)
    later = now + timedelta(days=60)
    second = job_process(later, args.job_batch)
    during = ingest.measure(0, until=second)
    stdout, _ = second.communicate()
    out["job_2"] = json.loads(stdout.strip().splitlines()[-1])
    alone_2 = ingest.measure(args.ingest_seconds)
    rate_alone = (alone_1[0] + alone_2[0]) / (alone_1[1] + alone_2[1])
    out["ingest_alone_per_s"] = [round(n / s, 1) for n, s in (alone_1, alone_2)]
    out["ingest_during_job_per_s"] = round(during[0] / during[1], 1)
    out["ingest_during_job_posts"] = during[0]
    out["ratio_ingest_during_alone"] = round(during[0] / during[1] / rate_alone, 3)
    update = (out["update_1_s"] + out["update_2_s"]) / 2  # type: ignore[operator]
    out["ratio_job1_update"] = round(out["job_1"]["seconds"] / update, 1)  # type: ignore[index]
    out["ratio_job2_update"] = round(out["job_2"]["seconds"] / update, 1)  # type: ignore[index]
    out["load_after"] = os.getloadavg()
    out["sizes"] = benchlib.database_size(dsn, ("ledger_entries", "expiry_states", "accounts"))
    print(json.dumps(out, indent=1), flush=True)
    benchlib.drop_database(args.admin_dsn, DB)


if __name__ == "__main__":
    main()
