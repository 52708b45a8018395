"""What the carbon account holds about a user (its day and month aggregates), in the
export and in erasure (``privacy.registry``). The day rows are the live counters of the
ledger's ``daily_usage`` rows (one table for both): exported here as they were before,
and erased with the rest of that row by the ledger's holder (``ledger.personal_data``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.storage.models import AccountMonth, DailyUsage


def _export(session: Session, subject: Subject) -> dict[str, Any]:
    days = select(DailyUsage.user_id, DailyUsage.local_date, DailyUsage.mode,
                  DailyUsage.live_events, DailyUsage.live_ug, DailyUsage.live_points,
                  DailyUsage.activity).where(
        DailyUsage.user_id == subject.user_id, DailyUsage.live_events > 0).order_by(
        DailyUsage.local_date, DailyUsage.mode)
    return {
        "days": [{"user_id": user_id, "local_date": day, "mode": mode,
                  "events": events, "ug": ug, "points": points, "activity": activity}
                 for user_id, day, mode, events, ug, points, activity
                 in session.execute(days)],
        "months": [columns(row) for row in session.scalars(
            select(AccountMonth).where(AccountMonth.user_id == subject.user_id)
            .order_by(AccountMonth.month, AccountMonth.mode))],
    }


def _erase(session: Session, subject: Subject, pseudonym: str) -> None:
    """Deleted: the aggregates serve only the person's own screen and badges (reports read
    the rollups, which keep their totals); ``flask rebuild-account`` would make the
    pseudonym's from its events if ever wanted."""
    session.execute(delete(AccountMonth).where(AccountMonth.user_id == subject.user_id))


HOLDER = register(Holder("carbon_account", ("account_months",), _export, _erase, order=200))
