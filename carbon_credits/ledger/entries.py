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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Select, Table, bindparam, delete, select, update
from sqlalchemy.orm import Session, joinedload

from carbon_credits.ledger import chain
from carbon_credits.storage.models import Account, LedgerEntry, User, utcnow
from carbon_credits.storage.sql import Prebuilt, Read, insert_missing

UG_PER_POINT = 1_000_000


class Balance(Protocol):
    """An account's balance and chain as the ledger moves them: an ORM ``Account`` or a
    ``LockedAccount``, locked by the caller."""

    user_id: str
    balance_points: int
    lifetime_points: int
    lifetime_ug: int
    carry_ug: int
    entry_count: int
    last_hash: bytes
    updated_at: datetime


def lock_account(session: Session, user_id: str, city: str) -> Account:
    """The user's account, created on first use, locked until the transaction ends.

    The common case (an existing account) is one round trip; the account's user row comes
    with it (``account.user``), so callers need not fetch it again.
    """
    account = session.scalars(_locking(user_id)).one_or_none()
    if account is None:
        _create(session, {user_id: city})
        account = session.scalars(_locking(user_id)).one()
    return account


def _locking(user_id: str) -> Select[Account]:
    return (select(Account).where(Account.user_id == user_id)
            .options(joinedload(Account.user)).with_for_update(of=Account))


@dataclass(slots=True)
class LockedAccount:
    """An account locked by this transaction, as plain values with its user's flags: what
    ingest reads and writes for a chunk of events (``open_accounts``, ``save_accounts``).
    Plain values rather than ORM instances: their load, identity map and unit-of-work
    flush cost more than the rest of a single post's transaction (BENCHMARKS.md)."""

    user_id: str
    balance_points: int
    lifetime_points: int
    lifetime_ug: int
    carry_ug: int
    entry_count: int
    last_hash: bytes
    updated_at: datetime
    frozen: bool
    city: str
    created: bool = False
    """Whether this transaction created the account (and its user)."""


_ACCOUNTS = cast(Table, Account.__table__)
_USERS = cast(Table, User.__table__)
_BALANCE = tuple(name for name in Balance.__annotations__ if name != "user_id")
"""The account columns the ledger moves (``save_accounts`` writes them back)."""
_LOCKED = tuple(f.name for f in fields(LockedAccount) if f.name != "created")
"""A locked account's row, in its fields' order: accounts' columns, then its user's."""
_LOCK_ROWS = Prebuilt(lambda one_of: (
    select(*(_ACCOUNTS.c[name] if name in _ACCOUNTS.c else _USERS.c[name]
             for name in _LOCKED))
    .join_from(_ACCOUNTS, _USERS, _ACCOUNTS.c.user_id == _USERS.c.id)
    .where(one_of(_ACCOUNTS.c.user_id, "users"))
    .order_by(_ACCOUNTS.c.user_id).with_for_update(of=_ACCOUNTS)))
_SAVE = Prebuilt(lambda _: (
    update(_ACCOUNTS).where(_ACCOUNTS.c.user_id == bindparam("b_user_id"))
    .values({name: bindparam(f"b_{name}") for name in _BALANCE})))


def accounts_read(user_ids: Iterable[str]) -> Read:
    """The read that locks these users' accounts (those that exist) in user id order, with
    their users' flags: the first of a ``read_together``, so that the reads sent after it
    in the same round trip run once the locks are granted, and see what was committed
    before. ``open_accounts`` takes its rows."""
    return _LOCK_ROWS, {"users": sorted(user_ids)}


def open_accounts(session: Session, cities: Mapping[str, str],
                  locked: Sequence[tuple[Any, ...]]) -> dict[str, LockedAccount]:
    """``lock_account`` for several users at once (a user id -> the city of a new user),
    from the rows of ``accounts_read``, as plain values (``LockedAccount``; the caller
    writes them back with ``save_accounts``). A caller that then stores nothing for a user
    it created removes it again (``settle_new_accounts``), or rolls back. Whatever the
    caller read of a user created here, it read without the lock: it reads it again.

    Locks are taken in user id order, existing accounts first (one statement), then the
    missing ones are created in that order and locked: two transactions opening
    overlapping sets of accounts wait for each other in one order. Should a rare
    interleaving of first posts still deadlock, PostgreSQL aborts one transaction, which
    the caller retries (``ingest/events.py``).
    """
    found = {row[0]: LockedAccount(*row) for row in locked}
    missing = sorted(set(cities) - found.keys())
    if missing:
        created = _create(session, {user_id: cities[user_id] for user_id in missing})
        for row in _LOCK_ROWS.rows(session, {"users": missing}):
            account = found[row[0]] = LockedAccount(*row)
            account.created = account.user_id in created
    return found


def _create(session: Session, cities: Mapping[str, str]) -> set[str]:
    """First events of these users: create their user and account rows, in user id order
    (a concurrent first event may win the race; ON CONFLICT makes that harmless); the
    users this statement created."""
    now = utcnow()
    created = insert_missing(session, User, [
        {"id": user_id, "city": cities[user_id], "frozen": False, "created_at": now}
        for user_id in sorted(cities)])
    insert_missing(session, Account, [
        {"user_id": user_id, "balance_points": 0, "lifetime_points": 0, "lifetime_ug": 0,
         "carry_ug": 0, "entry_count": 0, "last_hash": chain.GENESIS_HASH, "updated_at": now}
        for user_id in sorted(cities)])
    return created


def save_accounts(session: Session, accounts: Sequence[LockedAccount]) -> None:
    """Write back the balances of locked accounts (``open_accounts``): one executemany."""
    _SAVE.run(session, [{f"b_{name}": getattr(a, name) for name in ("user_id", *_BALANCE)}
                        for a in accounts])


def settle_new_accounts(session: Session, cities: Mapping[str, str | None]) -> None:
    """Accounts this transaction created, settled at its end (a user id -> None, or a
    city): None removes the account and its user again (a refused first event leaves no
    rows behind); a city replaces the one the user was created with (the caller passes
    one when the first post stored for the user named another than an earlier, refused
    post did)."""
    conn = session.connection()
    gone = sorted(user_id for user_id, city in cities.items() if city is None)
    if gone:  # the account before its user (FK)
        conn.execute(delete(_ACCOUNTS).where(_ACCOUNTS.c.user_id.in_(gone)))
        conn.execute(delete(_USERS).where(_USERS.c.id.in_(gone)))
    cities_of = [{"b_id": user_id, "b_city": city} for user_id, city in sorted(cities.items())
                 if city is not None]
    if cities_of:
        conn.execute(update(_USERS).where(_USERS.c.id == bindparam("b_id"))
                     .values(city=bindparam("b_city")), cities_of)


def points_for(carry_ug: int, ug: int) -> tuple[int, int]:
    """Whole points earned by ``ug`` on top of a carried remainder, and the new remainder."""
    return divmod(carry_ug + ug, UG_PER_POINT)


def earn(session: Session, account: Account, *, ug: int, event_pk: int, mode: str,
         factor_version_id: int) -> tuple[LedgerEntry, int]:
    """Credit ``ug`` micrograms to a locked account; returns the entry and its points."""
    points = claim_points(account, ug)
    entry = _append(session, account, kind="earn", points=points, ug=ug, event_pk=event_pk,
                    mode=mode, factor_version_id=factor_version_id)
    return entry, points


def claim_points(account: Balance, ug: int) -> int:
    """The whole points ``ug`` earns on the account's carried remainder; the remainder and
    the lifetime totals move on. The earn entry follows (``earn_entry``), possibly later in
    the same transaction: a set of events is decided one by one, then written at once."""
    points, account.carry_ug = points_for(account.carry_ug, ug)
    account.lifetime_points += points
    account.lifetime_ug += ug
    return points


def earn_entry(account: Balance, *, points: int, ug: int, event_pk: int, mode: str,
               factor_version_id: int, now: datetime) -> dict[str, Any]:
    """The column values of the next earn entry of a locked account (points from
    ``claim_points``), chained to its last entry; the account's balance, count and last
    hash move to it. The caller writes the row (bulk writes take plain values)."""
    return _entry(account, kind="earn", points=points, ug=ug, event_pk=event_pk, mode=mode,
                  factor_version_id=factor_version_id, now=now)


def redeem(session: Session, account: Account, *, points: int, redemption_pk: int
           ) -> LedgerEntry:
    """Spend points from a locked account; the caller checked the balance covers them. The
    fulfilment of a hold spends its points with this entry too, naming the redemption."""
    return _append(session, account, kind="redeem", points=-points, ug=0,
                   redemption_pk=redemption_pk)


def hold(session: Session, account: Account, *, redemption_pk: int) -> LedgerEntry:
    """Reserve a redemption's points on a locked account: a 'hold' entry of 0 points naming
    it. The balance does not move (the points are the user's until the hold is fulfilled);
    what may be spent does (``settlement.available``). Its amount is the redemption's."""
    return _append(session, account, kind="hold", points=0, ug=0, redemption_pk=redemption_pk)


def release(session: Session, account: Account, *, redemption_pk: int) -> LedgerEntry:
    """Free a held redemption's points again (its cancellation): a 'release' entry of 0
    points naming it; they are available again, from the lots the hold took them from."""
    return _append(session, account, kind="release", points=0, ug=0,
                   redemption_pk=redemption_pk)


def adjust(session: Session, account: Account, *, points: int, redemption_pk: int
           ) -> LedgerEntry:
    """Points given back to a locked account: a cancelled reward redemption refunds
    ``points`` > 0, naming its redemption. The only adjustment any code writes;
    verify-ledger names any other as forged."""
    return _append(session, account, kind="adjustment", points=points, ug=0,
                   redemption_pk=redemption_pk)


def expire(session: Session, account: Account, *, points: int, now: datetime
           ) -> LedgerEntry:
    """Take ``points`` > 0 that expired by their city's policy from a locked account
    (``ledger.expiring``): an 'expiry' entry dated ``now``, never an edit."""
    entry = LedgerEntry(**expiry_entry(account, points=points, now=now))
    session.add(entry)
    return entry


def expiry_entry(account: Balance, *, points: int, now: datetime) -> dict[str, Any]:
    """The column values of an 'expiry' entry of ``points`` > 0 for a locked account, which
    moves to it; the caller writes the row (the expiry job writes a batch at once)."""
    return _entry(account, kind="expiry", points=-points, ug=0, now=now)


def lapse(session: Session, account: Account, *, points: int, event_pk: int, now: datetime
          ) -> LedgerEntry:
    """An event's ``points`` > 0 left unclaimed past the city's claim window
    (``ledger.settlement``): a 'lapse' entry naming the event; its grams stay credited."""
    entry = LedgerEntry(**_entry(account, kind="lapse", points=-points, ug=0,
                                 event_pk=event_pk, now=now))
    session.add(entry)
    return entry


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


def _entry(account: Balance, *, kind: str, points: int, ug: int, now: datetime,
           event_pk: int | None = None, redemption_pk: int | None = None,
           mode: str | None = None, factor_version_id: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "user_id": account.user_id, "seq": account.entry_count + 1, "kind": kind,
        "points": points, "ug": ug, "balance_after": account.balance_points + points,
        "event_pk": event_pk, "redemption_pk": redemption_pk, "mode": mode,
        "factor_version_id": factor_version_id, "created_at": now}
    entry["hash"] = chain.next_hash(entry, account.last_hash)
    account.entry_count = entry["seq"]
    account.last_hash = entry["hash"]
    account.balance_points = entry["balance_after"]
    account.updated_at = now
    return entry


def bonus_entry(account: Balance, *, points: int, now: datetime) -> dict[str, Any]:
    """The column values of the next 'bonus' entry of a locked account: a campaign's bonus
    (``points`` > 0) or its take-back (< 0). No grams (ug 0) and no event: a bonus is not
    avoided CO2, so nothing that sums grams can count it; which campaign and event it
    belongs to is in ``campaign_bonuses`` (by user and seq), which verify-ledger checks.
    Lifetime totals do not move (they are what avoided CO2 earned). The caller writes it."""
    return _entry(account, kind="bonus", points=points, ug=0, now=now)
