"""The points ledger: append-only entries, balances kept in the same transaction.

Every change to an account happens with the account row locked (``SELECT ... FOR UPDATE``
on PostgreSQL; SQLite's BEGIN IMMEDIATE locks the database), so per-account work is
serialised: balances, the hash chain and the daily caps cannot race.

Reversal policy: reversing an event removes everything it earned (points and grams), even
when the points were already spent; the balance may then go negative. That debt is repaid
by later earnings before anything can be redeemed (a redemption needs balance >= points),
so a fraudster cannot keep spent points. Only a reversal can make a balance negative: a
database CHECK refuses a redeem entry whose balance_after is below zero.

Points: 1 point per gram avoided (Wuhan's rule; policy). Grams are credited in exact
micrograms; an event earns the whole points contained in the account's carried remainder
plus its own micrograms, and the rest (< 1 point) is carried to the next event, so over any
sequence of events points == floor(total micrograms / 10^6): no gram is lost to rounding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload

from carbon_credits.models import Account, LedgerEntry, User, utcnow
from carbon_credits.sql import among, insert_missing

UG_PER_POINT = 1_000_000
GENESIS_HASH = "0" * 64


def lock_account(session: Session, user_id: str, city: str) -> Account:
    """The user's account, created on first use, locked until the transaction ends.

    The common case (an existing account) is one round trip; the account's user row comes
    with it (``account.user``), so callers need not fetch it again.
    """
    return open_accounts(session, {user_id: city})[user_id][0]


def open_accounts(session: Session, cities: Mapping[str, str]
                  ) -> dict[str, tuple[Account, bool]]:
    """``lock_account`` for several users at once (a user id -> the city of a new user):
    each account, and whether this transaction created it (and its user): a caller that
    then stores nothing for that user removes them again (``forget_new_account``), or
    rolls back.

    Locks are taken in user id order, existing accounts first (one statement), then the
    missing ones are created in that order and locked: two transactions opening
    overlapping sets of accounts wait for each other in one order. Should a rare
    interleaving of first posts still deadlock, PostgreSQL aborts one transaction, which
    the caller retries (``services/events.py``).
    """
    found = {a.user_id: (a, False) for a in session.scalars(_locking(sorted(cities)))}
    missing = sorted(set(cities) - found.keys())
    if missing:
        # First events of these users: create both rows (a concurrent first event may win
        # the race; ON CONFLICT makes that harmless), then take the locks as usual.
        now = utcnow()
        created = insert_missing(session, User, [
            {"id": user_id, "city": cities[user_id], "frozen": False, "created_at": now}
            for user_id in missing])
        insert_missing(session, Account, [
            {"user_id": user_id, "balance_points": 0, "lifetime_points": 0, "lifetime_ug": 0,
             "carry_ug": 0, "entry_count": 0, "last_hash": GENESIS_HASH, "updated_at": now}
            for user_id in missing])
        found.update((a.user_id, (a, a.user_id in created))
                     for a in session.scalars(_locking(missing)))
    return found


def _locking(user_ids: list[str]) -> Select[Account]:
    return (select(Account).where(among(Account.user_id, user_ids))
            .options(joinedload(Account.user)).order_by(Account.user_id)
            .with_for_update(of=Account))


def forget_new_account(session: Session, account: Account) -> None:
    """Remove an account (and its user) that this transaction created and then stored
    nothing for: a refused first event leaves no rows behind."""
    session.delete(account)  # the next flush deletes the account before its user (FK)
    session.delete(account.user)


def points_for(carry_ug: int, ug: int) -> tuple[int, int]:
    """Whole points earned by ``ug`` on top of a carried remainder, and the new remainder."""
    return divmod(carry_ug + ug, UG_PER_POINT)


HASHED = ("prev_hash", "user_id", "seq", "kind", "points", "ug", "balance_after", "event_pk",
          "redemption_pk", "mode", "factor_version_id", "created_at")
"""The facts of an entry its hash covers, in order."""


def entry_hash(entry: LedgerEntry) -> str:
    """SHA-256 over the entry's facts and its predecessor's hash (tamper evidence)."""
    return row_hash({name: getattr(entry, name) for name in HASHED})


def row_hash(row: Mapping[str, Any]) -> str:
    """``entry_hash`` of an entry given as its column values."""
    material = "|".join(
        "" if row[name] is None else str(row[name]) for name in HASHED[:-1]
    ) + "|" + row["created_at"].isoformat(timespec="microseconds")
    return hashlib.sha256(material.encode()).hexdigest()


def earn(session: Session, account: Account, *, ug: int, event_pk: int, mode: str,
         factor_version_id: int) -> tuple[LedgerEntry, int]:
    """Credit ``ug`` micrograms to a locked account; returns the entry and its points."""
    points = claim_points(account, ug)
    entry = _append(session, account, kind="earn", points=points, ug=ug, event_pk=event_pk,
                    mode=mode, factor_version_id=factor_version_id)
    return entry, points


def claim_points(account: Account, ug: int) -> int:
    """The whole points ``ug`` earns on the account's carried remainder; the remainder and
    the lifetime totals move on. The earn entry follows (``earn_entry``), possibly later in
    the same transaction: a set of events is decided one by one, then written at once."""
    points, account.carry_ug = points_for(account.carry_ug, ug)
    account.lifetime_points += points
    account.lifetime_ug += ug
    return points


def earn_entry(account: Account, *, points: int, ug: int, event_pk: int, mode: str,
               factor_version_id: int, now: datetime) -> dict[str, Any]:
    """The column values of the next earn entry of a locked account (points from
    ``claim_points``), chained to its last entry; the account's balance, count and last
    hash move to it. The caller writes the row (bulk writes take plain values)."""
    return _entry(account, kind="earn", points=points, ug=ug, event_pk=event_pk, mode=mode,
                  factor_version_id=factor_version_id, now=now)


def redeem(session: Session, account: Account, *, points: int, redemption_pk: int
           ) -> LedgerEntry:
    """Spend points from a locked account; the caller checked the balance covers them."""
    return _append(session, account, kind="redeem", points=-points, ug=0,
                   redemption_pk=redemption_pk)


def reverse(session: Session, account: Account, *, points: int, ug: int, event_pk: int,
            mode: str, factor_version_id: int) -> LedgerEntry:
    """Take back what an event earned (see the reversal policy above)."""
    entry = _append(session, account, kind="reversal", points=-points, ug=-ug,
                    event_pk=event_pk, mode=mode, factor_version_id=factor_version_id)
    account.lifetime_points -= points
    account.lifetime_ug -= ug
    return entry


def _append(session: Session, account: Account, *, kind: str, points: int, ug: int,
            event_pk: int | None = None, redemption_pk: int | None = None,
            mode: str | None = None, factor_version_id: int | None = None) -> LedgerEntry:
    entry = LedgerEntry(**_entry(account, kind=kind, points=points, ug=ug, event_pk=event_pk,
                                 redemption_pk=redemption_pk, mode=mode,
                                 factor_version_id=factor_version_id, now=utcnow()))
    session.add(entry)
    return entry


def _entry(account: Account, *, kind: str, points: int, ug: int, now: datetime,
           event_pk: int | None = None, redemption_pk: int | None = None,
           mode: str | None = None, factor_version_id: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "user_id": account.user_id, "seq": account.entry_count + 1, "kind": kind,
        "points": points, "ug": ug, "balance_after": account.balance_points + points,
        "event_pk": event_pk, "redemption_pk": redemption_pk, "mode": mode,
        "factor_version_id": factor_version_id, "created_at": now,
        "prev_hash": account.last_hash}
    entry["hash"] = row_hash(entry)
    account.entry_count = entry["seq"]
    account.last_hash = entry["hash"]
    account.balance_points = entry["balance_after"]
    account.updated_at = now
    return entry
