"""The expiry job and what a user sees of it: the rules of ``ledger.expiry`` applied to the
stored ledger.

A user's lots are kept folded in ``expiry_states`` (one row per user: the lots by expiry
date as of entry ``seq``). Nothing on the ingest or redemption path writes it: the job folds
the entries written since its last run, under the account lock, then writes one 'expiry'
entry per account with lots due. Folding later gives the same lots as folding at once,
since the rules read only the entries and their order, so spending stays oldest-first
without the spending path reading or writing any lot.

The job goes through the accounts in batches of ``BATCH``: it folds a batch without any
lock (lots folded up to entry S are right whatever is written later: entries never change),
stores the lots (a newer state is never replaced by an older one), then locks only the
accounts with points due (in user id order, as ingest locks them), folds what was written
meanwhile and writes their 'expiry' entries. Ingest waits at most for that last short
transaction, for an account it shares with it. Running the job twice, or two at once,
expires nothing twice: a lot's points are taken once, and a second run re-reads the lots
under the lock.
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
    HOLD_KINDS,
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
    Redemption,
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
        # 1. No lock: fold the batch's new entries, as of one snapshot of the ledger.
        with rt.db.transaction() as session:
            users = list(session.scalars(_candidates(cities, today, after, batch)))
            if not users:
                break
            after = users[-1]
            run.batches += 1
            folded = dict(_fold(session, users, history, tz))
        run.accounts += len(folded)
        # 2. No account lock: keep the lots. Lots folded up to entry S are right whatever
        # is written after S (entries never change); a newer state is never replaced.
        with rt.db.transaction() as session:
            _save(session, [_state(user, lots, now) for user, lots in folded.items()])
        # 3. Only the accounts with points due are locked, only to write their entries:
        # the entries written since step 1 are folded again under the lock.
        due_users = [user for user, lots in folded.items() if expiry_amount(lots, today)]
        if not due_users:
            continue
        with rt.db.transaction() as session:
            written, states = [], []
            accounts = list(session.scalars(
                select(Account).where(Account.user_id.in_(due_users))
                .order_by(Account.user_id).with_for_update()))
            relocked = dict(_fold(session, due_users, history, tz))
            for account in accounts:
                lots = relocked[account.user_id]
                due = expiry_amount(lots, today)
                if due > 0:
                    written.append(entries.expiry_entry(account, points=due, now=now))
                    fold(lots, [Entry(account.entry_count, "expiry", -due, now)], [], tz)
                    run.expired_accounts += 1
                    run.expired_points += due
                    states.append(_state(account.user_id, lots, now))
            # One statement each for the batch: the entries, then the lots (the accounts'
            # new balances and chain heads are flushed with them).
            if written:
                session.execute(insert(LedgerEntry), written)
            _save(session, states)
    return run


def _state(user_id: str, lots: Lots, now: datetime) -> dict[str, Any]:
    return {"user_id": user_id, "seq": lots.seq, "next_due": lots.next_due(),
            "lots": lots.to_json(), "updated_at": now}


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


def expiring_cities(history: dict[str, list[Policy]]) -> list[str]:
    """The cities some of whose points may expire (a policy other than ``never``)."""
    return _expiring_cities(history)


def due_by(cities: Sequence[str], until: date, after: str, batch: int) -> Select[str]:
    """The next ``batch`` accounts after ``after`` (user id order) of ``cities`` that may
    hold points expiring by ``until``: their stored lots have a date by then, or their
    ledger moved since they were folded (``webhooks.expiring`` folds them again)."""
    return _candidates(cities, until, after, batch)


def fold_accounts(session: Session, users: Sequence[str], history: dict[str, list[Policy]],
                  tz: ZoneInfo) -> dict[str, Lots]:
    """Each user's lots as of their last entry, folded in memory (nothing written, no
    lock: lots folded up to an entry stay right whatever is written later)."""
    return dict(_fold(session, users, history, tz))


def _fold(session: Session, users: Sequence[str], history: dict[str, list[Policy]],
          tz: ZoneInfo) -> Iterator[tuple[str, Lots]]:
    """Each user's stored lots with the entries written since folded in, in user id order
    (the caller holds the accounts' locks when it writes entries from them)."""
    for user, (city, lots, new) in sorted(_stored_and_new(session, users).items()):
        yield user, fold(lots, new, history.get(city, []), tz)


def _stored_and_new(session: Session, users: Sequence[str]
                    ) -> dict[str, tuple[str, Lots, list[Entry]]]:
    """Each user's city, stored lots and the entries after them, with the time a reversed
    or lapsed event was earned (its lot), and the points a hold or release names (its
    redemption's). One statement, so one snapshot: the lots and the entries after their
    seq agree even while another run stores newer lots."""
    earn = aliased(LedgerEntry)
    rows = session.execute(
        select(User.id, User.city, ExpiryState.seq, ExpiryState.lots, LedgerEntry.seq,
               LedgerEntry.kind, LedgerEntry.points, LedgerEntry.created_at,
               LedgerEntry.event_pk, LedgerEntry.redemption_pk, earn.created_at,
               Redemption.points)
        .select_from(User)
        .outerjoin(ExpiryState, ExpiryState.user_id == User.id)
        .outerjoin(LedgerEntry, and_(LedgerEntry.user_id == User.id, LedgerEntry.seq
                                     > func.coalesce(ExpiryState.seq, literal(0))))
        .outerjoin(earn, and_(LedgerEntry.kind.in_(OWN_LOT_FIRST),
                              earn.event_pk == LedgerEntry.event_pk, earn.kind == "earn"))
        .outerjoin(Redemption, and_(LedgerEntry.kind.in_(HOLD_KINDS),
                                    Redemption.id == LedgerEntry.redemption_pk))
        .where(User.id.in_(users))
        .order_by(User.id, LedgerEntry.seq))
    out: dict[str, tuple[str, Lots, list[Entry]]] = {}
    for (user, city, _, stored, seq, kind, points, created_at, event_pk, redemption_pk,
         earned_at, held) in rows:
        if user not in out:
            out[user] = (city, Lots.from_json(stored), [])
        if seq is not None:
            out[user][2].append(Entry(seq, kind, points, created_at, event_pk,
                                      redemption_pk, earned_at, held or 0))
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
                                                        "updated_at")},
        where=ExpiryState.seq < upsert.excluded.seq), states)


def lots_of(session: Session, user_id: str, city: str, tz: ZoneInfo) -> Lots | None:
    """A user's lots as of their last entry, folded in memory (nothing written), or None
    when the city's points never expired."""
    history = policies(session)
    if city not in _expiring_cities(history):
        return None
    return dict(_fold(session, [user_id], history, tz)).get(user_id, Lots())


def expiring_soon(session: Session, user_id: str, city: str, tz: ZoneInfo, today: date,
                  days: int) -> list[dict[str, object]]:
    """Live points expiring within ``days`` of ``today``: per expiry date, oldest first."""
    lots = lots_of(session, user_id, city, tz)
    if lots is None:
        return []
    return [{"expires_on": day, "last_valid_day": day - timedelta(days=1), "points": n}
            for day, n in lots.upcoming(today + timedelta(days=days))]

