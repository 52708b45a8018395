"""What the ledger holds about a user: the account (user row, balances, cap usage), the
ledger entries and the points redemptions; each feature's part of the export
(``privacy.registry``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.storage.models import (
    Account,
    AnnualUsage,
    DailyUsage,
    LedgerEntry,
    Redemption,
    User,
)


def _account(session: Session, subject: Subject) -> dict[str, Any]:
    user = session.get(User, subject.user_id)
    account = session.get(Account, subject.user_id)
    return {
        "user": None if user is None else columns(user),
        "balance": None if account is None else columns(account, ("last_hash",)),
        "daily_usage": [columns(u) for u in session.scalars(
            select(DailyUsage).where(DailyUsage.user_id == subject.user_id)
            .order_by(DailyUsage.local_date, DailyUsage.mode))],
        "annual_usage": [columns(u) for u in session.scalars(
            select(AnnualUsage).where(AnnualUsage.user_id == subject.user_id)
            .order_by(AnnualUsage.year))],
    }


def _ledger(session: Session, subject: Subject) -> list[dict[str, Any]]:
    return [columns(e) for e in session.scalars(
        select(LedgerEntry).where(LedgerEntry.user_id == subject.user_id)
        .order_by(LedgerEntry.seq))]


def _redemptions(session: Session, subject: Subject) -> list[dict[str, Any]]:
    return [columns(r) for r in session.scalars(
        select(Redemption).where(Redemption.user_id == subject.user_id)
        .order_by(Redemption.id))]


ACCOUNT = register(Holder("account", ("users", "accounts", "daily_usage", "annual_usage"),
                          _account, order=900))
LEDGER = register(Holder("ledger", ("ledger_entries",), _ledger, order=500))
REDEMPTIONS = register(Holder("redemptions", ("redemptions",), _redemptions, order=400))
