"""Profile the ingest path in-process (pyinstrument), on the configured database.

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/cc_profile \\
      .venv/bin/python bench/profile_ingest.py [--events 500] [--batch 500 --batches 4]

Drives POST /v1/events through Flask's test client (no HTTP server, so the profile is the
application's own cost: auth, schema, rate limit, rules, methodology, ledger, SQL round trips).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask.testing import FlaskClient

    from carbon_credits.extensions import Runtime

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--batch", type=int, default=0,
                        help="profile POST /v1/events/batch with this many events per request "
                             "(batch_bench.py's one-user history) instead of single events")
    parser.add_argument("--batches", type=int, default=4, help="batch requests to profile")
    args = parser.parse_args()
    from benchlib import in_process_app
    from pyinstrument import Profiler

    from tests import factories

    app = in_process_app()
    rt = app.extensions["carbon_credits"]
    client = app.test_client()
    if args.batch:
        profile_batches(rt, client, args.batch, args.batches)
        return
    tokens = [rt.codec.encode(f"prof-{os.getpid()}-{i}", "user", "shenzhen", 3600)
              for i in range(args.users)]
    bodies = []
    for n in range(args.events):
        user, k = n % args.users, n // args.users
        start = factories.today_at(0) + timedelta(minutes=40 * k)
        bodies.append((tokens[user], factories.metro(start=start)))
    for token, body in bodies[:20]:  # warm caches (network, factor versions, connections)
        client.post("/v1/events", json={**body, "event_id": body["event_id"] + "w"},
                    headers={"Authorization": f"Bearer {token}"})
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for token, body in bodies:
        r = client.post("/v1/events", json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.json
    profiler.stop()
    report(profiler)


def profile_batches(rt: Runtime, client: FlaskClient, size: int, count: int) -> None:
    """``count`` batch requests of ``size`` events, each a new user's 30-day history."""
    from pyinstrument import Profiler

    sys.path.insert(0, str(ROOT / "bench"))
    from batch_bench import batch_body

    from tests import factories

    body, _counts = batch_body(factories.NOW, size)  # the service's clock is pinned to NOW
    tokens = [rt.codec.encode(f"profb-{os.getpid()}-{i}", "user", "shenzhen", 3600)
              for i in range(count + 1)]
    post = client.post
    headers = {"Content-Type": "application/json"}
    r = post("/v1/events/batch", data=body, headers={**headers,  # warm caches
                                                      "Authorization": f"Bearer {tokens[-1]}"})
    assert r.status_code == 200, r.json
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for token in tokens[:-1]:
        r = post("/v1/events/batch", data=body,
                 headers={**headers, "Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and all(i["status"] == 201 for i in r.json["results"]), \
            r.json["results"][:3]
    profiler.stop()
    report(profiler)


def report(profiler: Any) -> None:
    """The profile as text; PROFILE_ALL=1 shows library frames too (SQLAlchemy, psycopg)."""
    print(profiler.output_text(unicode=False, color=False,
                               show_all=bool(os.environ.get("PROFILE_ALL"))))


if __name__ == "__main__":
    main()
