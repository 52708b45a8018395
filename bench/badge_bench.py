"""Single-post ingest with 30 badge rules active vs with none, in one run.

    .venv/bin/python bench/badge_bench.py [--users 300] [--days 5] [--trips 4] [--block 200]

What is measured, in this process (Flask test client, no HTTP server; the same framework
cost on both sides, and the figure is a ratio):

* Two fresh databases on the local PostgreSQL, made by ``init-db``:
  ``cc_bench_badges_none``, whose ten demo badges are retired (no rule active), and
  ``cc_bench_badges_30``, with the ten demo badges and 20 more rules (streaks of 2 to 20
  days, trips per day, week, month and in all, distances, modes in a week, ``all`` and
  ``any`` combinations): 30 active.
* The same posts on both: ``--users`` users each post ``--trips`` metro or bus trips on
  each of ``--days`` past days (oldest day first), every one a single ``POST /v1/events``,
  all credited. So the users build history as they go, streak and period rules see it,
  and badges are earned along the way (the count is printed).
* The posts are sent in blocks of ``--block``, alternating databases block by block (none,
  30; 30, none; ...), so load from other work on the machine hits both alike.

Figure: posts/s with 30 rules / posts/s with none (total time of each side's posts);
target >= 0.9. Also: the median of the per-block-pair ratios, p50/p99 per post, badges
awarded, load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchlib import drop_database, fresh_database  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
NAMES = {"none": "cc_bench_badges_none", "30": "cc_bench_badges_30"}

EXTRA_RULES: list[dict[str, Any]] = (
    [{"kind": "streak", "days": n} for n in (2, 3, 4, 5, 10, 14, 20)]
    + [{"kind": "trips", "count": n, "period": p, "mode": m}
       for n, p, m in ((3, "day", "metro"), (8, "week", "bus"), (12, "month", "metro"),
                       (40, "all", "metro"))]
    + [{"kind": "trips", "count": 10, "period": "week"}]
    + [{"kind": "distance", "km": n, "modes": ["metro"]} for n in (5, 50, 500)]
    + [{"kind": "modes_in_week", "count": 2, "modes": ["bus", "metro"]}]
    + [{"all": [{"kind": "streak", "days": 3}, {"kind": "distance", "km": 20}]},
       {"any": [{"kind": "trips", "count": 6, "period": "day"},
                {"kind": "streak", "days": 25}]},
       {"all": [{"kind": "first_trip", "mode": "bus"}, {"kind": "first_trip", "mode": "metro"},
                {"kind": "trips", "count": 15, "period": "all"}]},
       {"any": [{"kind": "modes_in_week", "count": 3}, {"kind": "distance", "km": 1000}]}])


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


def app_on(name: str) -> Any:
    os.environ["DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    os.environ["RATE_LIMITS"] = "events:user=1000000/60,device=1000000/60,ip=1000000/60"
    from benchlib import in_process_app
    return in_process_app()


def posts(users: int, days: int, trips: int) -> list[tuple[str, dict[str, Any]]]:
    from tests import factories

    out = []
    for day in range(days, 0, -1):
        for trip in range(trips):
            for n in range(users):
                start = factories.today_at(7) - timedelta(days=day) + timedelta(hours=3 * trip)
                body = (factories.bus(start=start) if (n + trip) % 3 == 0
                        else factories.metro(start=start))
                out.append((f"badge-bench-{n}", body))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--trips", type=int, default=4)
    parser.add_argument("--block", type=int, default=200)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    load_before = loadavg()
    from carbon_credits.tokens import TokenCodec

    apps, clients, codecs = {}, {}, {}
    for side, name in NAMES.items():
        fresh_database(ADMIN_DSN, name)
        apps[side] = app_on(name)
        clients[side] = apps[side].test_client()
        codecs[side] = TokenCodec(apps[side].extensions["carbon_credits"].config)
    admin = {"Authorization": "Bearer " + codecs["none"].encode("bench-admin", "admin", None,
                                                                3600)}
    for badge in clients["none"].get("/v1/admin/badges", headers=admin).json["items"]:
        r = clients["none"].post(f"/v1/admin/badges/{badge['code']}/retirement",
                                 headers=admin, json={"reason": "bench: no rules"})
        assert r.status_code == 200, r.json
    for n, rule in enumerate(EXTRA_RULES):
        r = clients["30"].post("/v1/admin/badges", headers=admin, json={
            "code": f"bench-{n}", "name": {"zh": f"测试{n}", "en": f"Bench {n}"},
            "rule": rule})
        assert r.status_code == 201, r.json
    active = sum(b["status"] == "active" for b in clients["30"].get(
        "/v1/admin/badges", headers=admin).json["items"])
    assert active == 30, active
    work = posts(args.users, args.days, args.trips)
    tokens = {user: {"Authorization": "Bearer " + codecs["none"].encode(
        user, "user", "shenzhen", 6 * 3600)} for user in {u for u, _ in work}}
    # Warm-up: each side's first 100 posts (connections, prepared statements) uncounted.
    timings: dict[str, list[float]] = {"none": [], "30": []}
    blocks: dict[str, list[float]] = {"none": [], "30": []}
    for start in range(0, len(work), args.block):
        chunk = work[start:start + args.block]
        order = ("none", "30") if (start // args.block) % 2 == 0 else ("30", "none")
        for side in order:
            began = time.perf_counter()
            for user, body in chunk:
                t0 = time.perf_counter()
                r = clients[side].post("/v1/events", json=body, headers=tokens[user])
                took = time.perf_counter() - t0
                assert r.status_code == 201 and r.json["status"] == "credited", r.json
                if start >= 100:
                    timings[side].append(took * 1000)
            if start >= 100:
                blocks[side].append(time.perf_counter() - began)
    awarded = {}
    for side in NAMES:
        rt = apps[side].extensions["carbon_credits"]
        with rt.db.transaction() as session:
            awarded[side] = session.connection().exec_driver_sql(
                "SELECT count(*) FROM badge_awards").scalar()
    total = {side: sum(blocks[side]) for side in NAMES}
    counted = len(timings["none"])
    pair_ratios = [none / thirty for none, thirty in zip(blocks["none"], blocks["30"],
                                                         strict=True)]
    result = {
        "posts_per_side": counted, "users": args.users, "badges_active": {"none": 0, "30": 30},
        "posts_per_s_none": round(counted / total["none"], 1),
        "posts_per_s_30": round(counted / total["30"], 1),
        "ratio": round(total["none"] / total["30"], 3),
        "median_block_ratio": round(statistics.median(pair_ratios), 3),
        "p50_ms": {s: round(statistics.median(v), 3) for s, v in timings.items()},
        "p99_ms": {s: round(sorted(v)[int(0.99 * len(v))], 3) for s, v in timings.items()},
        "badges_awarded": awarded, "load_before": load_before, "load_after": loadavg(),
    }
    print(json.dumps(result, indent=2))
    if not args.keep:
        for side, name in NAMES.items():
            apps[side].extensions["carbon_credits"].db.dispose()
            drop_database(ADMIN_DSN, name)


if __name__ == "__main__":
    main()
