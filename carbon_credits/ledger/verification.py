"""verify-ledger: re-check every invariant and the keyed hash chain from the stored rows.

Each entry's hash must be the HMAC under one of the configured chain keys (ledger/chain.py),
or, for an entry written before keying (id up to the sealed ``ledger_chain_start``), its
plain SHA-256; each entry must be of a kind a code path writes, written the way that path
writes it: 'earn' for a credited event of its user, 'reversal' for a reversed one, 'redeem'
for a redemption of its user (points or reward form), 'adjustment' only as the refund of a
cancelled reward redemption that spent at once, 'hold' (0 points) only for a reward
redemption that holds its points, 'release' (0 points) only for such a one cancelled,
'expiry' only for points due by the city's expiry policy,
'lapse' only as an event's points left unclaimed (one per event, by a unique index),
'bonus' only as a campaign's bonus or its take-back (no grams, no event or redemption on
the entry; its ``campaign_bonuses`` row of the same points, and per user and campaign the
bonus entries adding up to the bonus the progress holds, the campaign's spent points to
what its users hold, never beyond its budget).
Each account's entries are folded into its lots by expiry date as they stream
(``ledger.expiry``): an expiry entry must take exactly what was due on its local day
(never points not yet due, never the same points twice), no redemption may take more than
was live, the lots plus the reserved points less the debt must equal the balance (so
available + pending + unclaimed + reserved == balance, ``settlement.split``), and the
stored lots
(``expiry_states``) must equal the fold at their seq. A deleted or rewritten tail is found
against a checkpoint kept outside the database (checkpoints.py).

Streams the ledger in (account, seq) order with bounded memory, so it runs on a full
production ledger: per account, the chain of hashes, the sequence, the running balance and
the account's stored totals; per entry, agreement with the event it credits or reverses;
and, by anti-join, credited events without an earn entry.

Months of ``events`` detached from the table (``flask partitions detach``: PostgreSQL,
storage/partitions.py) are not in it. An entry whose event is in a detached month whose
table is kept is checked against the event read from that table. A month detached and
then dropped (after its export) cannot be read: the entries of a user with an event in that
month (``event_keys`` keeps every event id with its day) whose event is missing are not
cross-checked, and ``Report.detached`` / ``Report.unchecked`` say which months and how many
entries, in place of a failure per entry. Which months were detached is read from the
audit log (the CLI records each detach and attach): a missing event of a user with none
in a dropped month is still a failure. The anti-join covers the attached months only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    case,
    false,
    func,
    inspect,
    null,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from carbon_credits.ledger import chain
from carbon_credits.ledger.chain import GENESIS_HASH, Keyring
from carbon_credits.ledger.entries import UG_PER_POINT
from carbon_credits.ledger.expiry import (
    HOLD_KINDS,
    OWN_LOT_FIRST,
    Entry,
    Lots,
    Policy,
    fold,
)
from carbon_credits.storage import partitions
from carbon_credits.storage.db import Database
from carbon_credits.storage.models import (
    Account,
    AuditRecord,
    Campaign,
    CampaignBonus,
    CampaignProgress,
    Event,
    EventKey,
    ExpiryPolicy,
    ExpiryState,
    LedgerChainStart,
    LedgerEntry,
    Redemption,
    Reward,
    RewardRedemption,
    User,
    VoucherCode,
)

KINDS = ("earn", "reversal", "redeem", "adjustment", "expiry", "lapse", "bonus", "hold",
         "release")
"""The entry kinds code writes (ledger/entries.py); any other is refused."""


@dataclass(frozen=True)
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class Report:
    accounts: int = 0
    entries: int = 0
    detached: list[str] = field(default_factory=list)
    """Each month of events detached from ``events``, and how its entries were checked."""
    unchecked: int = 0
    """Entries whose event is in a detached month that was dropped: not cross-checked."""


EVENT_KINDS = ("earn", "reversal", "lapse")
"""The entry kinds checked against their event."""


MONTH_TABLE = re.compile(r"events_p(\d{4})_(\d{2})")
"""A month's table of events (``partitions.partition_name``)."""


@dataclass(frozen=True)
class _Away:
    """Months of events detached from ``events``: tables kept (name -> month label), and
    tables detached then dropped (labels)."""

    kept: dict[str, str]
    dropped: list[date]


def _away(session: Session) -> _Away:
    conn = session.connection()
    if not partitions.is_partitioned(conn):
        return _Away({}, [])
    kept = {name: f"{month:%Y-%m}" for month, name in partitions.detached(conn).items()}
    attached = set(partitions.attached(conn).values())
    last: dict[str, str] = {}
    for target, action in session.execute(
            select(AuditRecord.target, AuditRecord.action)
            .where(AuditRecord.action.in_(("partition.detach", "partition.attach")))
            .order_by(AuditRecord.id)):
        last[target] = action
    dropped = [date(int(m.group(1)), int(m.group(2)), 1)
               for name, action in sorted(last.items())
               if action == "partition.detach" and name not in attached and name not in kept
               and (m := MONTH_TABLE.fullmatch(name)) is not None]
    return _Away(kept, dropped)


def _keys_away(session: Session, months: list[date], users: set[str]) -> set[str]:
    """Those of ``users`` with an event in one of the dropped ``months`` (``event_keys``
    keeps every event id, detached or not, with its day): only their entries may name an
    event that is not in the database."""
    if not users or not months:
        return set()
    in_months = or_(*(and_(EventKey.local_date >= m,
                           EventKey.local_date < partitions.next_month(m)) for m in months))
    return set(session.scalars(select(EventKey.user_id).distinct().where(
        EventKey.user_id.in_(sorted(users)), in_months)))


def _events_away(session: Session, tables: Iterable[str], pks: set[int]
                 ) -> dict[int, EventFacts]:
    """The events of ``pks`` found in the kept tables of detached months."""
    found: dict[int, EventFacts] = {}
    if not pks:
        return found
    for name in sorted(tables):
        # ``name`` is a partition name read from the catalogue (events_pYYYY_MM).
        statement = sql_text(f"SELECT id, user_id, event_id, status, points, credited_ug "
                         f"FROM {name} WHERE id IN :pks").bindparams(
                             bindparam("pks", expanding=True))
        for row in session.execute(statement, {"pks": sorted(pks)}):
            found[row.id] = EventFacts(row.id, row.user_id, row.event_id, row.status,
                                       row.points, row.credited_ug)
    return found


SHANGHAI = ZoneInfo("Asia/Shanghai")
"""CITY_TIMEZONE's default."""

ENTRIES_PER_READ = 5000
"""Entries read in one query (keyset over (user_id, seq); an account may span pages):
memory is bounded by one page, whatever the accounts' sizes."""


@dataclass(frozen=True)
class _Chain:
    keys: tuple[tuple[str, bytes], ...]
    legacy_last_entry_id: int
    """Entries up to this id may carry plain SHA-256 (written before keying)."""
    tz: ZoneInfo


def verify(db: Database, report: Report | None = None,
           user_ids: Iterable[str] | None = None,
           keyring: Keyring | None = None,
           tz: ZoneInfo = SHANGHAI) -> Iterator[Problem]:
    """Yield every broken invariant; a clean ledger yields nothing.

    With ``user_ids``, only those accounts and their events are checked (the reliability
    suites check the accounts they touched). Entries are read in pages by keyset over
    (user_id, seq), each page fully read before the session lets go of its objects: no
    cursor stays open across pages (a streamed ``yield_per`` result cannot survive
    ``expunge_all``). On PostgreSQL the whole check reads one
    REPEATABLE READ snapshot, so entries and account totals are of the same moment even
    while the service ingests.

    ``keyring``: the chain keys to verify with (the CLI passes the configured ones; default:
    the process's, ``chain.keyring()``). ``tz``: the city time zone (CITY_TIMEZONE) whose
    local days expiry dates are.
    """
    keys = (keyring or chain.keyring()).keys
    report = report if report is not None else Report()
    only = sorted(set(user_ids)) if user_ids is not None else None
    with db.transaction() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        start, problem = _chain_start(session, keys)
        if problem is not None and only is None:
            yield problem
        rules = _Chain(keys, start, tz)
        away = _away(session)
        report.detached = (
            [f"{month} (table {name} kept, detached: its events were checked from it)"
             for name, month in sorted(away.kept.items(), key=lambda kv: kv[1])]
            + [f"{month:%Y-%m} (detached and dropped: its events were not cross-checked; "
               "its export holds them)" for month in away.dropped])
        expiry = inspect(session.connection()).has_table(ExpiryState.__tablename__)
        history: dict[str, list[Policy]] = {}
        if expiry:
            for p in session.scalars(select(ExpiryPolicy).order_by(
                    ExpiryPolicy.city, ExpiryPolicy.effective_from)):
                history.setdefault(p.city, []).append(
                    Policy(p.rule, p.amount, p.effective_from))
        # A schema from before the rewards catalogue (the migration tests verify one) has
        # no reward redemptions to join.
        rewards = inspect(session.connection()).has_table(RewardRedemption.__tablename__)
        holds = rewards and "hold" in {c["name"] for c in inspect(
            session.connection()).get_columns(RewardRedemption.__tablename__)}
        campaigns = inspect(session.connection()).has_table(CampaignBonus.__tablename__)
        # Columns, not ORM entities: hydrating four objects a row was most of the time.
        entry_columns = cast(Table, LedgerEntry.__table__).c
        earned = aliased(LedgerEntry)
        query = (select(*entry_columns, Event.user_id.label("ev_user"),
                        Event.event_id.label("ev_event_id"), Event.status.label("ev_status"),
                        Event.points.label("ev_points"), Event.credited_ug.label("ev_ug"),
                        Event.id.label("ev_id"), Redemption.user_id.label("r_user"),
                        Redemption.points.label("r_points"), Redemption.id.label("r_id"),
                        (RewardRedemption.state if rewards else null()).label("m_state"),
                        (RewardRedemption.hold if holds else null()).label("m_hold"),
                        earned.created_at.label("earned_at"),
                        (CampaignBonus.points if campaigns else null()).label("b_points"))
                 .outerjoin(Event, Event.id == LedgerEntry.event_pk)
                 .outerjoin(earned, and_(LedgerEntry.kind.in_(OWN_LOT_FIRST),
                                         earned.event_pk == LedgerEntry.event_pk,
                                         earned.kind == "earn"))
                 .outerjoin(Redemption, Redemption.id == LedgerEntry.redemption_pk))
        if rewards:
            query = query.outerjoin(
                RewardRedemption, RewardRedemption.redemption_pk == LedgerEntry.redemption_pk)
        if campaigns:
            query = query.outerjoin(CampaignBonus, and_(
                CampaignBonus.user_id == LedgerEntry.user_id,
                CampaignBonus.seq == LedgerEntry.seq))
        running: _Running | None = None
        after: tuple[str, int] | None = None
        while True:
            page = query.order_by(LedgerEntry.user_id, LedgerEntry.seq).limit(ENTRIES_PER_READ)
            if only is not None:
                page = page.where(LedgerEntry.user_id.in_(only))
            if after is not None:
                page = page.where(tuple_(LedgerEntry.user_id, LedgerEntry.seq) > after)
            rows = session.execute(page).all()
            if not rows:
                break
            in_page = {row.user_id for row in rows}
            heads = {a.user_id: (a, city) for a, city in session.execute(
                select(Account, User.city).join(User, User.id == Account.user_id)
                .where(Account.user_id.in_(in_page)))}
            states = {} if not expiry else {s.user_id: (s.seq, Lots.from_json(s.lots))
                                            for s in session.scalars(select(ExpiryState)
                                            .where(ExpiryState.user_id.in_(in_page)))}
            missing = {row.event_pk for row in rows
                       if row.event_pk is not None and row.ev_id is None}
            outside = _events_away(session, away.kept, missing) if away.kept else {}
            users_away = _keys_away(session, away.dropped, {
                row.user_id for row in rows if row.event_pk in missing - set(outside)})
            for row in rows:
                if running is None or row.user_id != running.user_id:
                    if running is not None:
                        yield from _finish(running)
                    report.accounts += 1
                    head, city = heads.get(row.user_id, (None, ""))
                    running = _Running(row.user_id, head, history=history.get(city, []),
                                       stored=states.get(row.user_id))
                report.entries += 1
                credits, redemption, made, bonus = _facts(row)
                unchecked = False
                if credits is None and row.event_pk is not None:
                    credits = outside.get(row.event_pk)
                    unchecked = credits is None and row.user_id in users_away
                    report.unchecked += unchecked
                yield from _entry(running, row, credits, redemption, made, bonus, rules,
                                  event_away=unchecked)
            after = (rows[-1].user_id, rows[-1].seq)
            session.expunge_all()  # bounded memory over millions of entries
        if running is not None:
            yield from _finish(running)
        if only is None:
            report.accounts += _count_empty(session)
        for account in session.scalars(select(Account).where(
                _in_scope(Account.user_id, only),
                or_(Account.entry_count != 0, Account.balance_points != 0,
                    Account.lifetime_ug != 0, Account.carry_ug != 0),
                ~select(LedgerEntry.id).where(LedgerEntry.user_id == Account.user_id)
                .exists())):
            yield Problem(f"account {account.user_id}", "has totals but no ledger entries")
        earn = aliased(LedgerEntry)
        for event in session.scalars(
                select(Event).outerjoin(earn, and_(earn.event_pk == Event.id,
                                                   earn.kind == "earn"))
                .where(_in_scope(Event.user_id, only), Event.credited_ug > 0, earn.id.is_(None))):
            yield Problem(f"event {event.id} ({event.user_id}/{event.event_id})",
                          "credited but has no earn entry")
        if only is None:
            yield from _rewards(session, holds)
            if campaigns:
                yield from _campaigns(session)


def _in_scope(column: InstrumentedAttribute[str], only: list[str] | None
              ) -> ColumnElement[bool]:
    return column.in_(only) if only is not None else true()


def _chain_start(session: Session, keys: tuple[tuple[str, bytes], ...]
                 ) -> tuple[int, Problem | None]:
    """The last entry id that may carry plain SHA-256, and a problem if its record is
    missing or its seal does not verify (then none may: every entry must be keyed). A
    schema from before migration 0008 has no record and no legacy entries to allow."""
    if not inspect(session.connection()).has_table(LedgerChainStart.__tablename__):
        return 0, None
    start = session.get(LedgerChainStart, 1)
    where = "ledger_chain_start"
    if start is None:
        return 0, Problem(where, "missing: where keyed entries start is unknown")
    if not any(chain.start_mac(start.legacy_last_entry_id, key) == start.mac
               for _, key in keys):
        return 0, Problem(where, f"legacy_last_entry_id {start.legacy_last_entry_id} does not "
                                 "match its seal under any chain key (moved by someone "
                                 "without the key)")
    return start.legacy_last_entry_id, None


class EntryFacts(Protocol):
    """A ledger entry as verify reads it (a result row, or a ``LedgerEntry``)."""

    @property
    def id(self) -> int: ...
    @property
    def user_id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def points(self) -> int: ...
    @property
    def ug(self) -> int: ...
    @property
    def balance_after(self) -> int: ...
    @property
    def hash(self) -> bytes: ...
    @property
    def created_at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class EventFacts:
    id: int
    user_id: str
    event_id: str
    status: str
    points: int
    credited_ug: int


@dataclass(frozen=True, slots=True)
class RedemptionFacts:
    id: int
    user_id: str
    points: int


@dataclass(frozen=True, slots=True)
class RefundFacts:
    state: str
    hold: bool = False
    """Whether the reward redemption holds its points until fulfilment."""


@dataclass(frozen=True, slots=True)
class BonusFacts:
    points: int
    """The points of the entry's ``campaign_bonuses`` row."""


def _facts(row: Any) -> tuple[EventFacts | None, RedemptionFacts | None, RefundFacts | None,
                              BonusFacts | None]:
    return (EventFacts(row.ev_id, row.ev_user, row.ev_event_id, row.ev_status, row.ev_points,
                       row.ev_ug) if row.ev_id is not None else None,
            RedemptionFacts(row.r_id, row.r_user, row.r_points)
            if row.r_id is not None else None,
            RefundFacts(row.m_state, bool(row.m_hold)) if row.m_state is not None else None,
            BonusFacts(row.b_points) if row.b_points is not None else None)


def _hash_problem(entry: EntryFacts, prev: bytes, rules: _Chain) -> str | None:
    """Why the entry's stored hash is not its hash, or None. The hash covers the previous
    entry's hash: an entry altered (its facts or its hash), or one missing before it, fails
    here or at the next one; one hashed without the key fails whatever else it matches."""
    values = chain.entry_values(entry)
    if entry.id <= rules.legacy_last_entry_id and entry.hash == chain.legacy_hash(values, prev):
        return None
    if chain.matching_key(values, prev, entry.hash, rules.keys) is not None:
        return None
    if entry.hash == chain.legacy_hash(values, prev):
        return (f"plain SHA-256 hash on an entry after keyed entries started (id > "
                f"{rules.legacy_last_entry_id}): written without the chain key (forged)")
    return ("hash is not the chain-key HMAC of the entry's contents and the previous "
            "entry's hash under any configured key (this entry or the one before it "
            "altered or rewritten without the key, an entry missing, or its key no longer "
            "configured)")


def _kind_problem(entry: EntryFacts, event: EventFacts | None,
                  redemption: RedemptionFacts | None, made: RefundFacts | None,
                  bonus: BonusFacts | None = None) -> str | None:
    """Whether the entry is written the way the code path of its kind writes it."""
    if entry.kind not in KINDS:
        return f"kind {entry.kind!r} is written by no code path (forged)"
    if entry.kind == "expiry":
        if entry.points >= 0 or entry.ug != 0 or event is not None or redemption is not None:
            return "expiry entry that takes no points, or names an event or a redemption"
        return None
    if entry.kind == "lapse":
        if event is None or event.user_id != entry.user_id:
            return "lapse entry without an event of its user"
        if (entry.points, entry.ug) != (-event.points, 0):
            return f"lapse of {entry.points} points for event {event.event_id} of {event.points}"
        return None
    if entry.kind == "bonus":
        if entry.ug != 0 or event is not None or redemption is not None:
            return "bonus entry with grams, an event or a redemption (forged)"
        if bonus is None or bonus.points != entry.points or entry.points == 0:
            return "bonus entry without its campaign bonus of the same points (forged)"
        return None
    if entry.kind in ("earn", "reversal"):
        sign = 1 if entry.kind == "earn" else -1
        if event is None:
            return f"{entry.kind} entry without its event"
        if event.user_id != entry.user_id:
            return f"{entry.kind} entry for event {event.id} of another user"
        if entry.kind == "reversal" and event.status != "reversed":
            return f"reversal of event {event.event_id}, which is {event.status}"
        if (entry.points, entry.ug) != (sign * event.points, sign * event.credited_ug):
            return f"points/ug differ from event {event.event_id}"
        return None
    if redemption is None or redemption.user_id != entry.user_id:
        what = {"redeem": "redeem entry", "adjustment": "adjustment"}.get(
            entry.kind, f"{entry.kind} entry")
        return (f"{what} without a redemption of its user"
                + (" (no code path writes one: forged)" if entry.kind != "redeem" else ""))
    if entry.kind == "redeem":
        if entry.points != -redemption.points:
            return f"redeem entry of {entry.points} for redemption of {redemption.points}"
        if made is not None and made.hold and made.state in HELD_OR_RELEASED:
            return (f"redeem entry for a hold that is {made.state}: its points were spent "
                    "though the good was not shipped")
        return None
    if entry.kind in ("hold", "release"):
        if entry.points != 0 or entry.ug != 0:
            return f"{entry.kind} entry that moves points or grams (forged)"
        if made is None or not made.hold:
            return (f"{entry.kind} entry for a redemption that holds no points (no code "
                    "path writes one: forged)")
        if entry.kind == "release" and made.state != "cancelled":
            return f"release of a hold that is {made.state}, not cancelled"
        return None
    if made is None or made.state != "cancelled" or made.hold:
        return ("adjustment that is not the refund of a cancelled reward redemption that "
                "spent its points (no code path writes one: forged)")
    return None


HELD_OR_RELEASED = ("pending", "cancelled")
"""States of a held reward redemption whose points are not spent (the hold is open, or
released): no 'redeem' entry may name it."""


@dataclass
class _Running:
    """One account's entries so far, as verify streams them (pages may split an account)."""

    user_id: str
    account: Account | None
    """The account row (detached after its page: only its loaded columns are read)."""
    prev: bytes = GENESIS_HASH
    balance: int = 0
    ug_sum: int = 0
    count: int = 0
    history: list[Policy] = field(default_factory=list)
    """The expiry policies of the account's city."""
    lots: Lots = field(default_factory=Lots)
    stored: tuple[int, Lots] | None = None
    """The account's ``expiry_states`` row: its seq and lots."""


def _entry(running: _Running, entry: EntryFacts, event: EventFacts | None,
           redemption: RedemptionFacts | None, made: RefundFacts | None,
           bonus: BonusFacts | None, rules: _Chain, event_away: bool = False
           ) -> Iterator[Problem]:
    """One entry's checks; ``event_away``: its event is in a dropped detached month, not
    cross-checked (counted in ``Report.unchecked``), every other check made."""
    running.count += 1
    where = f"ledger entry {entry.id} (user {entry.user_id}, seq {entry.seq})"
    if entry.seq != running.count:
        yield Problem(where, f"sequence gap: expected seq {running.count}")
    wrong = _hash_problem(entry, running.prev, rules)
    if wrong is not None:
        yield Problem(where, wrong)
    running.balance += entry.points
    running.ug_sum += entry.ug
    if entry.balance_after != running.balance:
        yield Problem(where, f"balance_after {entry.balance_after} but the running sum "
                             f"of points is {running.balance}")
    wrong = _kind_problem(entry, event, redemption, made, bonus)
    if wrong is not None and not (event_away and entry.kind in EVENT_KINDS):
        yield Problem(where, wrong)
    running.prev = entry.hash
    problems: list[str] = []
    fold(running.lots, [Entry(entry.seq, entry.kind, entry.points, entry.created_at,
                              getattr(entry, "event_pk", None),
                              getattr(entry, "redemption_pk", None),
                              getattr(entry, "earned_at", None),
                              (redemption.points if redemption is not None
                               and entry.kind in HOLD_KINDS else 0))],
         running.history, rules.tz, problems)
    for wrong in problems:
        yield Problem(where, wrong)
    if running.stored is not None and running.stored[0] == entry.seq:
        stored = running.stored[1]
        if (stored.lots, stored.debt, stored.held) != (running.lots.lots, running.lots.debt,
                                                       running.lots.held):
            yield Problem(f"expiry state of {entry.user_id}",
                          f"lots {stored.lots} (debt {stored.debt}, held {stored.held}) at "
                          f"seq {entry.seq} differ from the ledger's {running.lots.lots} "
                          f"(debt {running.lots.debt}, held {running.lots.held})")


def _finish(running: _Running) -> Iterator[Problem]:
    """The account row against the entries: balance, chain head, count and totals."""
    account, balance = running.account, running.balance
    where = f"account {running.user_id}"
    if account is None:
        yield Problem(where, "has ledger entries but no account row")
        return
    if account.balance_points != balance:
        yield Problem(where, f"balance {account.balance_points} != sum of entries {balance}")
    if account.last_hash != running.prev or account.entry_count != running.count:
        yield Problem(where, "head of the hash chain or entry count does not match entries")
    if account.lifetime_ug != running.ug_sum:
        yield Problem(where, f"lifetime_ug {account.lifetime_ug} != sum of entries "
                             f"{running.ug_sum}")
    if running.lots.balance != balance:
        yield Problem(where, f"live points by expiry date plus reserved less the debt "
                             f"({running.lots.balance}) != balance {balance}")
    if running.stored is not None and running.stored[0] > running.count:
        yield Problem(where, f"expiry state folded to seq {running.stored[0]}, beyond the "
                             f"ledger's {running.count} entries")
    if not 0 <= account.carry_ug < UG_PER_POINT:
        yield Problem(where, f"carry {account.carry_ug} outside [0, 1 point)")


def _count_empty(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Account).where(
        Account.entry_count == 0)) or 0)


def _rewards(session: Session, holds: bool = True) -> Iterator[Problem]:
    """The rewards catalogue's invariants: no reward sold beyond its stock; every voucher
    code issued once and tied to one redemption of its own reward, one per unit; every
    reward redemption paid by its 'redeem' entry, and every cancelled one refunded once by
    an 'adjustment' entry naming it (and no other refund)."""
    held = (select(RewardRedemption.reward_id,
                   func.sum(RewardRedemption.quantity).label("units"))
            .where(RewardRedemption.state != "cancelled")
            .group_by(RewardRedemption.reward_id).subquery())
    for reward, units in session.execute(
            select(Reward, func.coalesce(held.c.units, 0))
            .outerjoin(held, held.c.reward_id == Reward.id)
            .where(Reward.stock_left + func.coalesce(held.c.units, 0) != Reward.stock)):
        yield Problem(f"reward {reward.id}", f"stock {reward.stock} != stock_left "
                                             f"{reward.stock_left} + {units} units redeemed")
    for text, n in session.execute(select(VoucherCode.code, func.count()).group_by(
            VoucherCode.code).having(func.count() > 1)):
        yield Problem(f"voucher code {text}", f"stored {n} times")
    for code, made in session.execute(
            select(VoucherCode, RewardRedemption)
            .outerjoin(RewardRedemption, RewardRedemption.id == VoucherCode.reward_redemption_id)
            .where(VoucherCode.state != "available",
                   or_(RewardRedemption.id.is_(None),
                       RewardRedemption.reward_id != VoucherCode.reward_id))):
        yield Problem(f"voucher code {code.id}",
                      "issued without a redemption of its reward" if made is None
                      else f"issued to redemption {made.id} of another reward")
    issued = (select(VoucherCode.reward_redemption_id.label("made"),
                     func.count().label("n"))
              .where(VoucherCode.state != "available")
              .group_by(VoucherCode.reward_redemption_id).subquery())
    for made, n in session.execute(
            select(RewardRedemption, func.coalesce(issued.c.n, 0))
            .join(Reward, Reward.id == RewardRedemption.reward_id)
            .outerjoin(issued, issued.c.made == RewardRedemption.id)
            .where(Reward.kind == "voucher",
                   func.coalesce(issued.c.n, 0) != RewardRedemption.quantity)):
        yield Problem(f"reward redemption {made.id}",
                      f"{n} voucher codes for {made.quantity} units")
    paid = aliased(LedgerEntry)
    for made, entry in session.execute(
            select(RewardRedemption, paid)
            .outerjoin(paid, and_(paid.redemption_pk == RewardRedemption.redemption_pk,
                                  paid.kind == "redeem"))
            .where(RewardRedemption.hold.is_(False) if holds else true(),
                   or_(paid.id.is_(None), paid.points != -RewardRedemption.points))):
        yield Problem(f"reward redemption {made.id}",
                      "no redeem entry" if entry is None
                      else f"redeem entry of {entry.points} for {made.points} points")
    if holds:  # a schema from before migration 0009_holds has none
        yield from _holds(session)
    refunds = (select(LedgerEntry.redemption_pk.label("pk"), func.count().label("n"),
                      func.sum(LedgerEntry.points).label("points"))
               .where(LedgerEntry.kind == "adjustment", LedgerEntry.redemption_pk.is_not(None))
               .group_by(LedgerEntry.redemption_pk).subquery())
    for made, n, points in session.execute(
            select(RewardRedemption, func.coalesce(refunds.c.n, 0), refunds.c.points)
            .outerjoin(refunds, refunds.c.pk == RewardRedemption.redemption_pk)
            .where(or_(and_(RewardRedemption.state == "cancelled",
                            RewardRedemption.hold.is_(False) if holds else true(),
                            or_(func.coalesce(refunds.c.n, 0) != 1,
                                refunds.c.points != RewardRedemption.points)),
                       and_(or_(RewardRedemption.state != "cancelled",
                                RewardRedemption.hold.is_(True) if holds else false()),
                            func.coalesce(refunds.c.n, 0) != 0)))):
        yield Problem(f"reward redemption {made.id} ({made.state})",
                      f"{n} refund entries of {points} points for {made.points} points")
    for pk, in session.execute(
            select(refunds.c.pk).outerjoin(RewardRedemption,
                                           RewardRedemption.redemption_pk == refunds.c.pk)
            .where(RewardRedemption.id.is_(None))):
        yield Problem(f"redemption {pk}", "refunded but not a reward redemption")


def _holds(session: Session) -> Iterator[Problem]:
    """Each reward redemption that holds its points: one 'hold' entry; a 'redeem' entry of
    its points once shipped (and only then); a 'release' once cancelled (and only then); the
    points its row and its redemption name agree (the hold entry carries none: a row
    altered to hold less, or moved on without its entry, shows here)."""
    per_kind = (select(LedgerEntry.redemption_pk.label("pk"),
                       func.sum(case((LedgerEntry.kind == "hold", 1), else_=0)).label("holds"),
                       func.sum(case((LedgerEntry.kind == "redeem", 1), else_=0)).label("paid"),
                       func.sum(case((LedgerEntry.kind == "redeem", LedgerEntry.points),
                                     else_=0)).label("spent"),
                       func.sum(case((LedgerEntry.kind == "release", 1), else_=0))
                       .label("releases"))
                .where(LedgerEntry.redemption_pk.is_not(None),
                       LedgerEntry.kind.in_(("hold", "redeem", "release")))
                .group_by(LedgerEntry.redemption_pk).subquery())
    for made, points, holds, paid, spent, releases in session.execute(
            select(RewardRedemption, Redemption.points, func.coalesce(per_kind.c.holds, 0),
                   func.coalesce(per_kind.c.paid, 0), func.coalesce(per_kind.c.spent, 0),
                   func.coalesce(per_kind.c.releases, 0))
            .join(Redemption, Redemption.id == RewardRedemption.redemption_pk)
            .outerjoin(per_kind, per_kind.c.pk == RewardRedemption.redemption_pk)
            .where(RewardRedemption.hold.is_(True))):
        shipped = made.state not in HELD_OR_RELEASED
        expected = (1, int(shipped), -made.points if shipped else 0,
                    int(made.state == "cancelled"))
        if points != made.points or (holds, paid, spent, releases) != expected:
            yield Problem(f"reward redemption {made.id} ({made.state}, held)",
                          f"{holds} hold, {paid} redeem ({spent} points), {releases} release "
                          f"entries for {made.points} points (redemption of {points}); "
                          f"expected {expected[0]} hold, {expected[1]} redeem "
                          f"({expected[2]}), {expected[3]} release")


def _campaigns(session: Session) -> Iterator[Problem]:
    """Campaigns' invariants: a user's bonus entries in a campaign add up to the bonus its
    progress holds; a campaign's spent points are what its users hold, within its budget;
    every ``campaign_bonuses`` row names a bonus entry of its user."""
    held = (select(CampaignBonus.user_id, CampaignBonus.campaign_id,
                   func.sum(CampaignBonus.points).label("points"))
            .group_by(CampaignBonus.user_id, CampaignBonus.campaign_id).subquery())
    for progress, points in session.execute(
            select(CampaignProgress, func.coalesce(held.c.points, 0))
            .outerjoin(held, and_(held.c.user_id == CampaignProgress.user_id,
                                  held.c.campaign_id == CampaignProgress.campaign_id))
            .where(func.coalesce(held.c.points, 0) != CampaignProgress.bonus_points)):
        yield Problem(f"campaign {progress.campaign_id} (user {progress.user_id})",
                      f"bonus entries of {points} points, progress holds "
                      f"{progress.bonus_points}")
    for user_id, campaign_id, points in session.execute(
            select(held.c.user_id, held.c.campaign_id, held.c.points)
            .outerjoin(CampaignProgress, and_(
                CampaignProgress.user_id == held.c.user_id,
                CampaignProgress.campaign_id == held.c.campaign_id))
            .where(CampaignProgress.user_id.is_(None), held.c.points != 0)):
        yield Problem(f"campaign {campaign_id} (user {user_id})",
                      f"bonus entries of {points} points without progress")
    paid = (select(CampaignProgress.campaign_id,
                   func.sum(CampaignProgress.bonus_points).label("points"))
            .group_by(CampaignProgress.campaign_id).subquery())
    for campaign, points in session.execute(
            select(Campaign, func.coalesce(paid.c.points, 0))
            .outerjoin(paid, paid.c.campaign_id == Campaign.id)
            .where(or_(func.coalesce(paid.c.points, 0) != Campaign.spent_points,
                       Campaign.spent_points > Campaign.budget_points))):
        yield Problem(f"campaign {campaign.id}",
                      f"spent {campaign.spent_points} of {campaign.budget_points}, "
                      f"users hold {points}")
    for bonus in session.scalars(
            select(CampaignBonus).outerjoin(LedgerEntry, and_(
                LedgerEntry.user_id == CampaignBonus.user_id,
                LedgerEntry.seq == CampaignBonus.seq, LedgerEntry.kind == "bonus"))
            .where(LedgerEntry.id.is_(None))):
        yield Problem(f"campaign bonus (user {bonus.user_id}, seq {bonus.seq})",
                      "names no bonus entry")
