"""A randomized life of one account: the ledger's invariants hold after every step."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from carbon_credits.errors import Conflict
from carbon_credits.ingest import events
from carbon_credits.ledger import redemptions, reversals
from carbon_credits.runtime import Runtime
from carbon_credits.schemas import load_event
from carbon_credits.storage.models import Account, LedgerEntry
from carbon_credits.tokens import Principal
from tests import factories

STATIONS = ["luohu", "guomao", "laojie", "huaxin", "shaoniangong", "fumin", "chegongmiao"]


def test_random_earns_redemptions_reversals_and_replays_keep_the_invariants(
        lenient_rt: Runtime) -> None:
    rt = lenient_rt  # random trips overlap in time; the rules are tested elsewhere
    class AccountLife(RuleBasedStateMachine):
        earned = Bundle("earned")

        def __init__(self) -> None:
            super().__init__()
            self.user = Principal(f"h-{uuid.uuid4().hex[:12]}", "user", "shenzhen")
            self.admin = Principal("h-admin", "admin", None)
            self.balance = 0
            self.minute = 0

        @rule(target=earned, a=st.sampled_from(STATIONS), b=st.sampled_from(STATIONS))
        def earn(self, a: str, b: str) -> dict[str, Any]:
            self.minute += 1
            body = factories.metro(entry_station_id=a, exit_station_id=b,
                                   start=factories.today_at(0) + timedelta(minutes=self.minute))
            result = events.ingest(rt, self.user, load_event(body))
            assert result.created
            self.balance += result.event["points"]
            return {"body": body, "answer": result.event, "reversed": False}

        @rule(item=earned)
        def replay(self, item: dict[str, Any]) -> None:
            result = events.ingest(rt, self.user, load_event(item["body"]))
            assert not result.created
            assert result.event["points"] == item["answer"]["points"]

        @rule(points=st.integers(min_value=1, max_value=900))
        def redeem(self, points: int) -> None:
            data = {"redemption_id": uuid.uuid4().hex, "points": points, "description": None}
            try:
                view, created = redemptions.redeem(rt, self.user, data)
            except Conflict as exc:
                assert exc.code == "insufficient_points" and self.balance < points
                return
            assert created and self.balance >= points
            self.balance -= points
            assert view["balance_after"] == self.balance

        @rule(item=earned)
        def reverse(self, item: dict[str, Any]) -> None:
            try:
                reversals.reverse_event(rt, self.admin, self.user.sub,
                                        item["body"]["event_id"], "property test")
            except Conflict:
                assert item["reversed"]
                return
            assert not item["reversed"]
            item["reversed"] = True
            self.balance -= item["answer"]["points"]

        @invariant()
        def balance_is_the_sum_of_entries(self) -> None:
            with rt.db.transaction() as s:
                account = s.get(Account, self.user.sub)
                total, lowest_after_redeem = s.execute(select(
                    func.coalesce(func.sum(LedgerEntry.points), 0),
                    func.min(LedgerEntry.balance_after).filter(LedgerEntry.kind == "redeem"),
                ).where(LedgerEntry.user_id == self.user.sub)).one()
            stored = account.balance_points if account else 0
            assert stored == total == self.balance
            assert lowest_after_redeem is None or lowest_after_redeem >= 0

    run_state_machine_as_test(AccountLife, settings=settings(
        max_examples=15, stateful_step_count=12, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))
