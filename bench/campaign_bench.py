"""Single-post ingest with an active campaign and a webhook subscription / with neither.

    .venv/bin/python bench/campaign_bench.py [--posts 300 --rounds 4]

The service in-process on a fresh database (``cc_bench_campaigns``, as bench/verify_bench.py
--ingest), single posts (chunks of one) applied by ``ingest.events.apply_chunk``, in
alternating rounds: "hooks" with the crediting hooks installed, one campaign running in
the posts' city and mode (goal 10,000 trips: every post counts, none completes) and one
webhook endpoint subscribed to ``event.credited`` (every post writes an outbox row; the
sender is switched off, so what is measured is the crediting transaction, not the HTTP
sends); "none" with no hook installed (the ingest of before campaigns and webhooks). It
prints wall time and client CPU per post of each and the hooks/none throughput ratio.
The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchlib import drop_database, fresh_database  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "cc_bench_campaigns"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    fresh_database(ADMIN_DSN, DATABASE)
    os.environ["DATABASE_URL"] = URL
    os.environ["RATE_LIMITS"] = "events:user=1000000/60"
    from benchlib import alternating_rounds, in_process_app
    app = in_process_app()
    from carbon_credits.campaigns import service
    from carbon_credits.ledger import hooks
    from carbon_credits.tokens import Principal
    from carbon_credits.webhooks import endpoints, outbox
    from tests import factories

    rt = app.extensions["carbon_credits"]
    admin = Principal("bench", "admin", None)
    today = factories.NOW.date()
    service.create(rt, admin, {
        "id": "bench-metro", "city": "shenzhen", "mode": "metro",
        "starts_on": today - timedelta(days=40), "ends_on": today + timedelta(days=30),
        "goal_events": 10_000, "bonus_points": 100, "budget_points": 1_000_000,
        "title_zh": "基准", "title_en": "bench", "reason": "benchmark"})
    endpoints.register(rt, admin, {"id": "bench-hook", "url": "http://127.0.0.1:9/hook",
                                   "kinds": ["event.credited"], "reason": "benchmark"})
    outbox.use_sender(None)  # the rows are written; nothing is sent
    installed = hooks.install(())
    hooks.install(installed)
    try:
        # The users' first posts (before the rounds) run with the hooks: accounts exist,
        # progress rows too.
        m = alternating_rounds(
            rt, ("hooks", "none"),
            lambda mode: hooks.install(installed if mode == "hooks" else ()),
            args.posts, args.rounds)
        hooks.install(installed)
        wall, cpu, n = m.wall, m.cpu, m.posts
        with rt.db.transaction() as session:
            from sqlalchemy import func, select

            from carbon_credits.storage.models import CampaignProgress, WebhookDelivery
            counted = session.scalar(select(func.sum(CampaignProgress.events)))
            rows = session.scalar(select(func.count()).select_from(WebhookDelivery))
        print(f"single posts, {n} each: hooks {1000 * wall['hooks'] / n:.3f} ms/post "
              f"({1000 * cpu['hooks'] / n:.3f} ms CPU), none {1000 * wall['none'] / n:.3f} "
              f"ms/post ({1000 * cpu['none'] / n:.3f} ms CPU); hooks/none throughput "
              f"{wall['none'] / wall['hooks']:.3f} (CPU {cpu['none'] / cpu['hooks']:.3f}); "
              f"events counted {counted}, outbox rows {rows}")
    finally:
        rt.db.dispose()
        drop_database(ADMIN_DSN, DATABASE)


if __name__ == "__main__":
    main()
