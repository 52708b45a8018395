"""What the carbon account holds about a user (its day and month aggregates), in the
export and in erasure (``privacy.registry``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.storage.models import AccountDay, AccountMonth


def _export(session: Session, subject: Subject) -> dict[str, Any]:
    return {
        "days": [columns(row) for row in session.scalars(
            select(AccountDay).where(AccountDay.user_id == subject.user_id)
            .order_by(AccountDay.local_date, AccountDay.mode))],
        "months": [columns(row) for row in session.scalars(
            select(AccountMonth).where(AccountMonth.user_id == subject.user_id)
            .order_by(AccountMonth.month, AccountMonth.mode))],
    }


def _erase(session: Session, subject: Subject, pseudonym: str) -> None:
    """Deleted: the aggregates serve only the person's own screen and badges (reports read
    the rollups, which keep their totals); ``flask rebuild-account`` would make the
    pseudonym's from its events if ever wanted."""
    for table in (AccountDay, AccountMonth):
        session.execute(delete(table).where(table.user_id == subject.user_id))


HOLDER = register(Holder("carbon_account", ("account_days", "account_months"), _export,
                         _erase, order=200))
