"""Concurrent copies and concurrent events: the database, not Python, keeps the rules."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from carbon_credits.errors import ServiceError
from carbon_credits.ingest import events
from carbon_credits.runtime import Runtime
from carbon_credits.schemas import load_event
from carbon_credits.storage.models import Account, Event, LedgerEntry
from carbon_credits.tokens import Principal
from tests import factories


def _ingest(rt: Runtime, sub: str, body: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    result = events.ingest(rt, Principal(sub, "user", "shenzhen"), load_event(body))
    return result.created, result.event


def test_concurrent_copies_of_many_events_credit_each_exactly_once(
        lenient_rt: Runtime, is_postgres: bool, user_id: str) -> None:
    rt = lenient_rt
    # The figure on PostgreSQL; SQLite serialises all writers, so fewer there.
    n_events, copies = (200, 50) if is_postgres else (40, 10)
    users = [f"{user_id}-{i}" for i in range(20)]
    bodies = [(users[i % len(users)],
               factories.metro(start=factories.today_at(5) + timedelta(minutes=i)))
              for i in range(n_events)]
    work = [pair for pair in bodies for _ in range(copies)]
    start = threading.Barrier(8)

    def run(chunk: list[tuple[str, dict[str, Any]]]) -> list[tuple[bool, dict[str, Any]]]:
        start.wait()
        return [_ingest(rt, sub, body) for sub, body in chunk]

    chunks = [work[i::8] for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = [a for chunk in pool.map(run, chunks) for a in chunk]
    by_event: dict[str, list[tuple[bool, dict[str, Any]]]] = {}
    for created, answer in answers:
        by_event.setdefault(answer["event_id"], []).append((created, answer))
    assert len(by_event) == n_events
    for copies_seen in by_event.values():
        assert len(copies_seen) == copies
        assert sum(created for created, _ in copies_seen) == 1
        assert all(a == copies_seen[0][1] for _, a in copies_seen)
    with rt.db.transaction() as s:
        n_earn = s.scalar(select(func.count()).select_from(LedgerEntry)
                          .where(LedgerEntry.user_id.in_(users)))
        balances = s.scalar(select(func.sum(Account.balance_points))
                            .where(Account.user_id.in_(users)))
        n_rows = s.scalar(select(func.count()).select_from(Event)
                          .where(Event.user_id.in_(users)))
    assert n_earn == n_rows == n_events
    assert balances == sum(a[0][1]["points"] for a in by_event.values())


def test_concurrent_events_of_one_user_fill_the_daily_cap_exactly(
        lenient_rt: Runtime, user_id: str) -> None:
    rt = lenient_rt  # 50 trips a day would be held as too many: this tests the cap alone
    cap_g = int(rt.config.daily_caps_g["total"])  # 5000 g by default
    bodies = [factories.metro(start=factories.today_at(6) + timedelta(minutes=i))
              for i in range(50)]  # 50 x 376.18 g = 18.8 kg, far over the cap
    start = threading.Barrier(10)

    def run(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        start.wait()
        return [_ingest(rt, user_id, b)[1] for b in chunk]

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = [a for chunk in pool.map(run, [bodies[i::10] for i in range(10)])
                   for a in chunk]
    with rt.db.transaction() as s:
        credited = s.scalar(select(func.sum(Event.credited_ug))
                            .where(Event.user_id == user_id))
        account = s.get_one(Account, user_id)
    assert credited == cap_g * 10**6
    assert account.balance_points == cap_g and account.lifetime_ug == cap_g * 10**6
    assert sum(a["grams"] for a in answers) <= cap_g
    assert {a["status"] for a in answers} == {"credited", "capped"}


def test_concurrent_redemptions_never_overdraw(rt: Runtime, user_id: str) -> None:
    from carbon_credits.ledger import redemptions

    principal = Principal(user_id, "user", "shenzhen")
    _ingest(rt, user_id, factories.metro())  # 376 points
    start = threading.Barrier(8)

    def spend(i: int) -> str:
        start.wait()
        try:
            redemptions.redeem(rt, principal, {"redemption_id": f"r{i}", "points": 100,
                                               "description": None})
            return "ok"
        except ServiceError as exc:
            return exc.code

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(spend, range(8)))
    assert outcomes.count("ok") == 3 and outcomes.count("insufficient_points") == 5
    with rt.db.transaction() as s:
        assert s.get_one(Account, user_id).balance_points == 76
