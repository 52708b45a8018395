"""The points ledger: append-only entries, balances kept in the same transaction.

Every change to an account happens with the account row locked (``SELECT ... FOR UPDATE``
on PostgreSQL; SQLite's BEGIN IMMEDIATE locks the database), so per-account work is
serialised: balances, the hash chain and the daily caps cannot race.

Points: 1 point per gram avoided (Wuhan's rule; policy). Grams are credited in exact
micrograms; an event earns the whole points contained in the account's carried remainder
plus its own micrograms, and the rest (< 1 point) is carried to the next event, so over any
sequence of events points == floor(total micrograms / 10^6): no gram is lost to rounding.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from carbon_credits.models import Account, LedgerEntry, User, utcnow
from carbon_credits.sql import insert_ignore

UG_PER_POINT = 1_000_000
GENESIS_HASH = "0" * 64


def lock_account(session: Session, user_id: str, city: str) -> Account:
    """The user's account, created on first use, locked until the transaction ends."""
    insert_ignore(session, User, {"id": user_id, "city": city, "frozen": False,
                                  "created_at": utcnow()})
    insert_ignore(session, Account, {
        "user_id": user_id, "balance_points": 0, "lifetime_points": 0, "lifetime_ug": 0,
        "carry_ug": 0, "entry_count": 0, "last_hash": GENESIS_HASH, "updated_at": utcnow()})
    account = session.scalars(
        select(Account).where(Account.user_id == user_id).with_for_update()
    ).one()
    return account


def points_for(carry_ug: int, ug: int) -> tuple[int, int]:
    """Whole points earned by ``ug`` on top of a carried remainder, and the new remainder."""
    return divmod(carry_ug + ug, UG_PER_POINT)


def entry_hash(prev_hash: str, user_id: str, seq: int, kind: str, points: int, ug: int,
               event_pk: int | None, created_at: datetime) -> str:
    """SHA-256 over the entry's facts and its predecessor's hash (tamper evidence)."""
    material = "|".join([prev_hash, user_id, str(seq), kind, str(points), str(ug),
                         "" if event_pk is None else str(event_pk),
                         created_at.isoformat(timespec="microseconds")])
    return hashlib.sha256(material.encode()).hexdigest()


def earn(session: Session, account: Account, *, ug: int, event_pk: int, mode: str,
         factor_version_id: int) -> tuple[LedgerEntry, int]:
    """Credit ``ug`` micrograms to a locked account; returns the entry and its points."""
    points, carry = points_for(account.carry_ug, ug)
    entry = _append(session, account, kind="earn", points=points, ug=ug, event_pk=event_pk,
                    mode=mode, factor_version_id=factor_version_id)
    account.carry_ug = carry
    account.lifetime_points += points
    account.lifetime_ug += ug
    return entry, points


def _append(session: Session, account: Account, *, kind: str, points: int, ug: int,
            event_pk: int | None, mode: str | None, factor_version_id: int | None
            ) -> LedgerEntry:
    now = utcnow()
    seq = account.entry_count + 1
    digest = entry_hash(account.last_hash, account.user_id, seq, kind, points, ug, event_pk,
                        now)
    entry = LedgerEntry(user_id=account.user_id, seq=seq, kind=kind, points=points, ug=ug,
                        event_pk=event_pk, mode=mode, factor_version_id=factor_version_id,
                        created_at=now, prev_hash=account.last_hash, hash=digest)
    session.add(entry)
    account.entry_count = seq
    account.last_hash = digest
    account.balance_points += points
    account.updated_at = now
    return entry
