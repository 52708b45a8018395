"""Report rollups under batch ingest: no deadlock between chunks, exact sums.

Found in review: a batch chunk applied its rollup upserts as its items came, holding the
rows locked until the chunk committed, so two users of one shard whose batches credited two
cells in opposite orders deadlocked on PostgreSQL. A chunk now writes its credits at its
end, merged per row and applied in key order (ingest/intake.py, rollups.credit)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from carbon_credits.ingest import events
from carbon_credits.reports import rollups, sketch
from carbon_credits.runtime import Runtime
from carbon_credits.tokens import Principal
from tests import factories


def _two_users_in_one_shard() -> tuple[str, str]:
    seen: dict[int, str] = {}
    while True:
        uid = f"u-{uuid.uuid4().hex[:16]}"
        shard = sketch.UserHash.of(uid).shard
        if shard in seen:
            return seen[shard], uid
        seen[shard] = uid


def test_two_batches_crossing_cells_do_not_fail(make_app: Callable[..., Flask],
                                                 is_postgres: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL the barrier forces the interleaving that deadlocked; SQLite serialises
    whole transactions (BEGIN IMMEDIATE), so there the second batch waits for the first and
    the barrier gives up after a short wait: the outcome must be the same."""
    # The batch that waits on the other's first row waits out the barrier's timeout and the
    # other's commit: with the default lock timeout (5 s) a busy machine could make that a
    # 503, so the lock timeout here is only a bound for a real deadlock's "never".
    rt: Runtime = make_app(db_lock_timeout_ms=120_000).extensions["carbon_credits"]
    a, b = _two_users_in_one_shard()
    today = factories.today_at(8)
    yesterday = today - timedelta(days=1)
    batches = {a: [factories.metro(start=today), factories.metro(start=yesterday)],
               b: [factories.metro(start=yesterday), factories.metro(start=today)]}

    # Make the interleaving deterministic: each user's first rollup upsert is done (row
    # locked) before either goes on to its second row.
    barrier = threading.Barrier(2)
    original = rollups.apply_credits

    def credit(session: Any, rows: list[Any]) -> None:
        original(session, rows[:1])
        try:
            # with the rows in key order the other batch waits on this one's first row
            # instead of reaching the barrier, and must not give up before the barrier does
            barrier.wait(timeout=2 if is_postgres else 1)
        except threading.BrokenBarrierError:
            pass
        original(session, rows[1:])

    monkeypatch.setattr(rollups, "apply_credits", credit)
    outcome: dict[str, Any] = {}

    def run(uid: str) -> None:
        try:
            results = events.ingest_batch(rt, Principal(uid, "user", "shenzhen"), batches[uid])
            outcome[uid] = [r["status"] for r in results]
        except Exception as exc:  # noqa: BLE001
            outcome[uid] = repr(exc)[:200]

    threads = [threading.Thread(target=run, args=(u,)) for u in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert outcome == {a: [201, 201], b: [201, 201]}


def test_a_batch_leaves_the_rollups_a_rebuild_would_make(rt: Runtime,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """Merged, held-back credits add up to exactly what the ledger says, row for row,
    also when an item of the chunk is refused and rolled back."""
    from tests.integration.test_rollups import rebuild, seed_city, snapshot

    monkeypatch.setattr(events, "ITEMS_PER_TRANSACTION", 4)
    city = seed_city(rt, "rb")
    user = f"batch-{uuid.uuid4().hex[:8]}"
    start = factories.today_at(6)
    items: list[Any] = [
        {**factories.metro(start=start + timedelta(days=-d, minutes=40 * k)), "city": city}
        for d in range(3) for k in range(3)]
    items.insert(2, {**factories.metro(start=start), "city": city,
                     "exit_station_id": "atlantis"})  # refused inside a chunk
    results = events.ingest_batch(rt, Principal(user, "user", city), items)
    assert [r["status"] for r in results].count(201) == 9
    assert results[2]["status"] == 422
    incremental = snapshot(rt, city)
    assert incremental[0] and incremental[1]
    rebuild(rt, city)
    assert snapshot(rt, city) == incremental
