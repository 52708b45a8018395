"""What the ledger holds about a user: the account (user row, balances, cap usage), the
ledger entries and the points redemptions; their part of the export and of erasure
(``privacy.registry``, ``privacy.erasure``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, delete, literal, select, update
from sqlalchemy.orm import Session

from carbon_credits.errors import Conflict
from carbon_credits.ledger import chain
from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.storage.models import (
    Account,
    AnnualUsage,
    DailyUsage,
    ExpiryState,
    LedgerChainStart,
    LedgerEntry,
    PointClaim,
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


def _erase_account(session: Session, subject: Subject, pseudonym: str) -> None:
    """Last: the cap usage (kept only to cap the person's future credits) and the user and
    account rows, whose totals the pseudonym's account carries on."""
    for table in (DailyUsage, AnnualUsage, Account):
        session.execute(delete(table).where(table.user_id == subject.user_id))
    session.execute(delete(User).where(User.id == subject.user_id))


def _erase_ledger(session: Session, subject: Subject, pseudonym: str) -> None:
    """Move the entries to the pseudonym, re-chained under the current key: the chain
    covers the user id, so the old hashes cannot stay. The old chain is checked first (an
    erasure must not launder entries altered before it): a break is a 409, nothing erased."""
    entries = list(session.scalars(select(LedgerEntry).where(
        LedgerEntry.user_id == subject.user_id).order_by(LedgerEntry.seq)))
    keys = chain.keyring().keys
    start = session.get(LedgerChainStart, 1)
    legacy_last = start.legacy_last_entry_id if start is not None else 0
    prev, fresh = chain.GENESIS_HASH, chain.GENESIS_HASH
    moved: list[dict[str, object]] = []
    for entry in entries:
        values = chain.entry_values(entry)
        if chain.matching_key(values, prev, entry.hash, keys) is None and not (
                entry.id <= legacy_last and entry.hash == chain.legacy_hash(values, prev)):
            raise Conflict(f"ledger entry {entry.seq} of this user does not verify: run "
                           "verify-ledger; nothing was erased", code="ledger_unverifiable")
        prev = entry.hash
        fresh = chain.next_hash({**values, "user_id": pseudonym}, fresh)
        moved.append({"id": entry.id, "user_id": pseudonym, "hash": fresh})
    session.expunge_all()  # the rows change below, by statement
    if moved:
        session.execute(update(LedgerEntry), moved)
    session.execute(update(Account).where(Account.user_id == pseudonym).values(
        last_hash=fresh))


def _erase_redemptions(session: Session, subject: Subject, pseudonym: str) -> None:
    """Kept (the ledger's redeem entries point at them), under the pseudonym, without the
    client's redemption id or description."""
    session.execute(update(Redemption).where(Redemption.user_id == subject.user_id).values(
        user_id=pseudonym, redemption_id=literal("x") + cast(Redemption.id, String),
        description=None, payload_hash=""))


ACCOUNT = register(Holder("account", ("users", "accounts", "daily_usage", "annual_usage"),
                          _account, _erase_account, order=900))
LEDGER = register(Holder("ledger", ("ledger_entries",), _ledger, _erase_ledger, order=500))
REDEMPTIONS = register(Holder("redemptions", ("redemptions",), _redemptions,
                              _erase_redemptions, order=400))


def _lots(session: Session, subject: Subject) -> dict[str, Any]:
    lots = session.get(ExpiryState, subject.user_id)
    claims = session.get(PointClaim, subject.user_id)
    return {"expiry_state": None if lots is None else columns(lots),
            "claims": None if claims is None else columns(claims)}


def _erase_lots(session: Session, subject: Subject, pseudonym: str) -> None:
    """Moved to the pseudonym with the entries they fold (verify-ledger compares the stored
    lots with the fold of the account's entries at their seq)."""
    for table in (ExpiryState, PointClaim):
        session.execute(update(table).where(table.user_id == subject.user_id)
                        .values(user_id=pseudonym))


LOTS = register(Holder("points_lots", ("expiry_states", "point_claims"), _lots, _erase_lots,
                       order=450))
"""The account's points by expiry date and its claim watermark (ledger/expiry.py)."""
