"""The expiry job and what a user sees of it: the rules of ``ledger.expiry`` applied to the
stored ledger.

A user's lots are kept folded in ``expiry_states`` (one row per user: the lots by expiry
date as of entry ``seq``). Nothing on the ingest or redemption path writes it: the job folds
the entries written since its last run, under the account lock, then writes one 'expiry'
entry per account with lots due. Folding later gives the same lots as folding at once,
since the rules read only the entries and their order, so spending stays oldest-first
without the spending path reading or writing any lot.

The job goes through the accounts in batches of ``BATCH``, one short transaction each
(the batch's accounts locked in user id order, as ingest locks them): ingest waits at most
one batch's work for an account it shares with the job, never the whole run. Running it
twice, or two at once, expires nothing twice: a lot's points are taken once, and a second
run re-reads the lots under the lock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, insert, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from carbon_credits.ledger import entries
from carbon_credits.ledger.expiry import (
    OWN_LOT_FIRST,
    Entry,
    Lots,
    Policy,
    expiry_amount,
    fold,
)
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import (
    Account,
    ExpiryPolicy,
    ExpiryState,
    LedgerEntry,
    User,
)

BATCH = 500


def policies(session: Session) -> dict[str, list[Policy]]:
    """Every city's expiry policies, oldest first."""
    history: dict[str, list[Policy]] = defaultdict(list)
    for row in session.scalars(select(ExpiryPolicy).order_by(ExpiryPolicy.city,
                                                             ExpiryPolicy.effective_from)):
        history[row.city].append(Policy(row.rule, row.amount, row.effective_from))
    return dict(history)


def _expiring_cities(history: dict[str, list[Policy]]) -> list[str]:
    return sorted(city for city, rows in history.items()
                  if any(p.rule != "never" for p in rows))


@dataclass
class Run:
    accounts: int = 0
    """Accounts folded (and locked) by the run."""
    expired_accounts: int = 0
    expired_points: int = 0
    batches: int = 0


def expire_due(rt: Runtime, now: datetime | None = None, batch: int = BATCH) -> Run:
    """Expire every lot due on the local day of ``now`` (default: the clock): one 'expiry'
    entry per account with lots due; folds every account of an expiring city whose ledger
    moved since the last run."""
    now = now or rt.clock()
    tz = rt.config.tz
    today = now.astimezone(tz).date()
    run = Run()
    with rt.db.transaction() as session:
        history = policies(session)
    cities = _expiring_cities(history)
    if not cities:
        return run
    after = ""
    while True:
        with rt.db.transaction() as session:
            users = list(session.scalars(_candidates(cities, today, after, batch)))
            if not users:
                break
            after = users[-1]
            run.batches += 1
            written, states = [], []
            for account, lots in _fold_locked(session, users, history, tz):
                run.accounts += 1
                due = expiry_amount(lots, today)
                if due > 0:
                    written.append(entries.expiry_entry(account, points=due, now=now))
                    fold(lots, [Entry(account.entry_count, "expiry", -due, now)], [], tz)
                    run.expired_accounts += 1
                    run.expired_points += due
                states.append({"user_id": account.user_id, "seq": lots.seq,
                               "next_due": lots.next_due(), "lots": lots.to_json(),
                               "updated_at": now})
            # One statement each for the batch: the entries, then the lots (the accounts'
            # new balances and chain heads are flushed with them).
            if written:
                session.execute(insert(LedgerEntry), written)
            _save(session, states)
    return run


def _candidates(cities: Sequence[str], today: date, after: str, batch: int
                ) -> Select[str]:
    state = aliased(ExpiryState)
    return (select(Account.user_id)
            .join(User, User.id == Account.user_id)
            .outerjoin(state, state.user_id == Account.user_id)
            .where(User.city.in_(cities), Account.user_id > after,
                   or_(Account.entry_count > func.coalesce(state.seq, literal(0)),
                       state.next_due <= today))
            .order_by(Account.user_id).limit(batch))


def _fold_locked(session: Session, users: Sequence[str], history: dict[str, list[Policy]],
                 tz: ZoneInfo) -> Iterator[tuple[Account, Lots]]:
    """Lock the accounts (user id order), and fold each one's new entries into its lots."""
    accounts = list(session.scalars(select(Account).where(Account.user_id.in_(users))
                                    .order_by(Account.user_id).with_for_update()))
    cities = dict(session.execute(select(User.id, User.city).where(User.id.in_(users))).all())
    states = {s.user_id: Lots.from_json(s.lots) for s in session.scalars(
        select(ExpiryState).where(ExpiryState.user_id.in_(users)))}
    new = _new_entries(session, users)
    for account in accounts:
        lots = states.get(account.user_id) or Lots()
        fold(lots, new.get(account.user_id, []), history.get(cities[account.user_id], []), tz)
        yield account, lots


def _new_entries(session: Session, users: Sequence[str]) -> dict[str, list[Entry]]:
    """Each user's entries after its folded ``seq``, in order, with the time a reversed
    event was earned (its lot)."""
    earn = aliased(LedgerEntry)
    state = aliased(ExpiryState)
    rows = session.execute(
        select(LedgerEntry.user_id, LedgerEntry.seq, LedgerEntry.kind, LedgerEntry.points,
               LedgerEntry.created_at, LedgerEntry.event_pk, LedgerEntry.redemption_pk,
               earn.created_at)
        .outerjoin(state, state.user_id == LedgerEntry.user_id)
        .outerjoin(earn, and_(LedgerEntry.kind.in_(OWN_LOT_FIRST),
                              earn.event_pk == LedgerEntry.event_pk, earn.kind == "earn"))
        .where(LedgerEntry.user_id.in_(users),
               LedgerEntry.seq > func.coalesce(state.seq, literal(0)))
        .order_by(LedgerEntry.user_id, LedgerEntry.seq))
    out: dict[str, list[Entry]] = defaultdict(list)
    for user_id, seq, kind, points, created_at, event_pk, redemption_pk, earned_at in rows:
        out[user_id].append(Entry(seq, kind, points, created_at, event_pk, redemption_pk,
                                  earned_at))
    return out


def _save(session: Session, states: list[dict[str, Any]]) -> None:
    """Upsert the batch's lots (the accounts are locked: no other writer)."""
    if not states:
        return
    upsert = (pg_insert if session.get_bind().dialect.name == "postgresql"
              else sqlite_insert)(ExpiryState)
    session.execute(upsert.on_conflict_do_update(
        index_elements=[ExpiryState.user_id],
        set_={name: upsert.excluded[name] for name in ("seq", "next_due", "lots",
                                                        "updated_at")}), states)


def lots_of(session: Session, user_id: str, city: str, tz: ZoneInfo) -> Lots | None:
    """A user's lots as of their last entry, folded in memory (nothing written), or None
    when the city's points never expired."""
    history = policies(session)
    if city not in _expiring_cities(history):
        return None
    row = session.get(ExpiryState, user_id)
    lots = Lots.from_json(row.lots if row is not None else None)
    return fold(lots, _new_entries(session, [user_id]).get(user_id, []),
                history.get(city, []), tz)


def expiring_soon(session: Session, user_id: str, city: str, tz: ZoneInfo, today: date,
                  days: int) -> list[dict[str, object]]:
    """Live points expiring within ``days`` of ``today``: per expiry date, oldest first."""
    lots = lots_of(session, user_id, city, tz)
    if lots is None:
        return []
    return [{"expires_on": day, "last_valid_day": day - timedelta(days=1), "points": n}
            for day, n in lots.upcoming(today + timedelta(days=days))]

