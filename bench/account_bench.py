"""Carbon account first screen for a user with 5 years of history vs GET /v1/me/account.

    .venv/bin/python bench/account_bench.py [--requests 2000] [--others 100] [--keep]

What is measured, in one run, in this process (Flask test client, no HTTP server: both
routes pay the same framework cost, and the figure is their ratio):

* A fresh database ``cc_bench_account`` on the local PostgreSQL, made by ``init-db``.
* The user ``bench-5y``: about 3,000 credited events over 5 years (1,826 local days ending
  today; on 1,500 of them 1 to 3 trips of metro or bus, plus the day's steps on one day in
  four; the last 400 days all green, so the streak is read back beyond the screen's
  84-day window, the costlier case). The events are not posted one by one (the backfill
  window refuses events older than 30 days); their month rows are written by the
  incremental path's own code (``account.aggregates.deltas`` and ``add``) from the same
  values a credit adds, their day rows as the daily usage rows the caps count
  (``day_rows``: every credit uncapped). ``--others`` other users get the same kind of
  history, so the tables hold ~``others`` x 2,600 day rows around the user's.
* Then one metro trip today is posted through ``POST /v1/events``, so that both screens
  show today's credits.
* ``--requests`` rounds, each one ``GET /v1/me/carbon-account`` and one
  ``GET /v1/me/account`` (the order alternating per round) after 200 warm-up rounds.

Figure: p99 of the first screen / p99 of ``GET /v1/me/account``; target <= 2. Also: p50s,
the screen's response bytes, and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchlib import drop_database, fresh_database  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "cc_bench_account"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
USER = "bench-5y"


@dataclass
class Credit:
    """What a credit adds to the aggregates (``account.aggregates.Credited``)."""

    user_id: str
    local_date: date
    mode: str
    credited_ug: int
    points: int
    activity: int


def history(user_id: str, today: date, rng: random.Random) -> list[Credit]:
    days = [today - timedelta(days=n) for n in range(1826)]
    recent, older = days[:400], days[400:]
    green = recent + rng.sample(older, 1100)
    out = []
    for day in green:
        for _ in range(rng.choice((1, 2, 2, 3))):
            mode = rng.choice(("metro", "metro", "bus"))
            metres = rng.randint(2000, 20000)
            ug = metres * (46_800 if mode == "metro" else 26_900)
            out.append(Credit(user_id, day, mode, ug, ug // 10**6, metres))
        if rng.random() < 0.25:
            out.append(Credit(user_id, day, "steps", 100 * 10**6, 100, 5000))
    return out


def day_rows(credits: list[Credit]) -> list[dict[str, Any]]:
    """The daily usage rows (``DailyUsage``) ``credits`` leave: caps' and live counters
    alike, as uncapped credits with no reversal count them."""
    days: dict[tuple[str, date, str], dict[str, Any]] = {}
    for c in credits:
        row = days.setdefault((c.user_id, c.local_date, c.mode), {
            "user_id": c.user_id, "local_date": c.local_date, "mode": c.mode, "events": 0,
            "credited_ug": 0, "points": 0, "max_quantity": 0, "live_events": 0,
            "live_ug": 0, "live_points": 0, "activity": 0})
        for caps, live, value in (("events", "live_events", 1),
                                  ("credited_ug", "live_ug", c.credited_ug),
                                  ("points", "live_points", c.points)):
            row[caps] += value
            row[live] += value
        row["activity"] += c.activity
    return list(days.values())


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--others", type=int, default=100)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    load_before = loadavg()
    fresh_database(ADMIN_DSN, DATABASE)
    os.environ["DATABASE_URL"] = URL
    os.environ["RATE_LIMITS"] = "events:user=1000000/60"
    from benchlib import in_process_app
    from sqlalchemy import insert

    from carbon_credits.account import aggregates
    from carbon_credits.ledger import entries
    from carbon_credits.storage.models import DailyUsage
    from carbon_credits.tokens import TokenCodec
    from tests import factories

    app = in_process_app()
    rt = app.extensions["carbon_credits"]
    today = factories.NOW.date()
    rng = random.Random(5)
    users = [USER] + [f"bench-other-{n}" for n in range(args.others)]
    events = 0
    for user_id in users:
        credits = history(user_id, today - timedelta(days=1), rng)
        if user_id == USER:
            events = len(credits)
        with rt.db.transaction() as session:
            entries.lock_account(session, user_id, "shenzhen")
            session.execute(insert(DailyUsage), day_rows(credits))
            aggregates.add(session, aggregates.deltas(credits))
    with rt.db.transaction() as session:
        session.connection().exec_driver_sql("ANALYZE")
    codec = TokenCodec(rt.config)
    auth = {"Authorization": f"Bearer {codec.encode(USER, 'user', 'shenzhen', 3600)}"}
    client = app.test_client()
    r = client.post("/v1/events", json=factories.metro(), headers=auth)
    assert r.status_code == 201, r.json
    screen = client.get("/v1/me/carbon-account", headers=auth)
    assert screen.status_code == 200, screen.json
    assert screen.json["streak"]["days"] >= 401, screen.json["streak"]
    timings: dict[str, list[float]] = {"screen": [], "account": []}
    paths = {"screen": "/v1/me/carbon-account", "account": "/v1/me/account"}
    for n in range(200 + args.requests):
        order = ("screen", "account") if n % 2 else ("account", "screen")
        for name in order:
            start = time.perf_counter()
            response = client.get(paths[name], headers=auth)
            took = time.perf_counter() - start
            assert response.status_code == 200
            if n >= 200:
                timings[name].append(took * 1000)
    result = {
        "events_of_user": events, "users": len(users), "requests": args.requests,
        "screen_p50_ms": round(statistics.median(timings["screen"]), 3),
        "screen_p99_ms": round(p(timings["screen"], 0.99), 3),
        "account_p50_ms": round(statistics.median(timings["account"]), 3),
        "account_p99_ms": round(p(timings["account"], 0.99), 3),
        "screen_bytes": len(screen.data),
        "load_before": load_before, "load_after": loadavg(),
    }
    result["ratio_p99"] = round(result["screen_p99_ms"] / result["account_p99_ms"], 3)
    result["ratio_p50"] = round(result["screen_p50_ms"] / result["account_p50_ms"], 3)
    print(json.dumps(result, indent=2))
    if not args.keep:
        rt.db.dispose()
        drop_database(ADMIN_DSN, DATABASE)


if __name__ == "__main__":
    main()
