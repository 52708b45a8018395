"""The per-user aggregates of credited events: the day rows (the live counters of the
ledger's ``daily_usage``: one row per user, day and mode for the caps and the account
alike) and the month rows (``account_months``), kept in the crediting transaction, taken
back by a reversal, read by the account screen and the badge rules.

**Day rows** are counted by the caps' own ``ledger.caps.count_usage`` with the rest of the
usage row (ingest writes the whole row back, under the account lock); a row whose
``live_events`` is 0 (capped to nothing, or every credit reversed) is not a green day,
and every read here leaves it out.

**Month rows add.** A credit adds its deltas with one upsert per (user, month, mode) row
(``INSERT ... ON CONFLICT DO UPDATE SET events = events + excluded.events, ...``), merged
per row and sent in key order with the ingest's COMMIT. The caller holds the user's
account lock, so a user's rows are written by one transaction at a time anyway; the
additive form keeps them exact even without it.

**Reversal subtracts** exactly what the event added: from the day's live counters (the
caps' stay: a reversed credit still used its day's cap) and from the month row, deleting
a month row left with no credited event.

**Rebuild** (``flask --app app rebuild-account``) recomputes the live counters and the
month rows from the events with an earn entry and no reversal, the same rows the
incremental path keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Protocol, cast

from sqlalchemy import (
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from carbon_credits.account.history import Row, Sums, month_of
from carbon_credits.storage.models import AccountMonth, DailyUsage, Event
from carbon_credits.storage.sql import Prebuilt, Read

DAYS = cast(Table, DailyUsage.__table__)
MONTHS = cast(Table, AccountMonth.__table__)
SUMMED = ("events", "ug", "points", "activity")
"""A month row's sums; a day row's are ``LIVE``, in the same order."""
LIVE = ("live_events", "live_ug", "live_points", "activity")
LIVE_STATUSES = ("credited", "capped")


class Credited(Protocol):
    """What the aggregates read of a credited event: a stored ``Event`` or one a chunk is
    writing (``ingest.decide.NewEvent``)."""

    @property
    def user_id(self) -> str: ...
    @property
    def local_date(self) -> date: ...
    @property
    def mode(self) -> str: ...
    @property
    def credited_ug(self) -> int: ...
    @property
    def points(self) -> int: ...
    @property
    def activity(self) -> int: ...


def deltas(events: Sequence[Credited]) -> list[dict[str, Any]]:
    """The month rows ``events`` add, merged per row, in key order (their day rows were
    counted with the usage: ``ledger.caps.count_usage``)."""
    months: dict[tuple[str, date, str], dict[str, Any]] = {}
    for e in events:
        key = (e.user_id, month_of(e.local_date), e.mode)
        row = months.get(key)
        if row is None:
            row = months[key] = {"user_id": key[0], "month": key[1], "mode": key[2],
                                 "events": 0, "ug": 0, "points": 0, "activity": 0}
        row["events"] += 1
        row["ug"] += e.credited_ug
        row["points"] += e.points
        row["activity"] += e.activity
    return [months[k] for k in sorted(months)]


def _upsert(dialect: str) -> Prebuilt:
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    row = ins(MONTHS).values({name: bindparam(name)
                              for name in ("user_id", "month", "mode", *SUMMED)})
    statement = row.on_conflict_do_update(
        index_elements=["user_id", "month", "mode"],
        set_={name: MONTHS.c[name] + row.excluded[name] for name in SUMMED})
    return Prebuilt(lambda _: statement)


_UPSERTS = {dialect: _upsert(dialect) for dialect in ("postgresql", "sqlite")}


def add(session: Session, months: list[dict[str, Any]]) -> None:
    """Add ``deltas``' rows (driver statements only: may be sent with the COMMIT)."""
    _UPSERTS[session.get_bind().dialect.name].run(session, months)


def reverse(session: Session, event: Event) -> None:
    """Take a reversed event back out of its day's live counters and its month row.
    Caller holds the lock on the event's account and calls this before changing the
    event."""
    live = (DAYS.c.user_id == event.user_id, DAYS.c.local_date == event.local_date,
            DAYS.c.mode == event.mode)
    session.execute(update(DAYS).where(*live).values(
        live_events=DAYS.c.live_events - 1, live_ug=DAYS.c.live_ug - event.credited_ug,
        live_points=DAYS.c.live_points - event.points,
        activity=DAYS.c.activity - event.activity))
    month = (MONTHS.c.user_id == event.user_id, MONTHS.c.month == month_of(event.local_date),
             MONTHS.c.mode == event.mode)
    session.execute(update(MONTHS).where(*month).values(
        events=MONTHS.c.events - 1, ug=MONTHS.c.ug - event.credited_ug,
        points=MONTHS.c.points - event.points,
        activity=MONTHS.c.activity - event.activity))
    session.execute(delete(MONTHS).where(*month, MONTHS.c.events <= 0))


# ---------------------------------------------------------------- reads

MONTHS_READ = Prebuilt(lambda _: select(
    MONTHS.c.month, MONTHS.c.mode, *(MONTHS.c[n] for n in SUMMED))
    .where(MONTHS.c.user_id == bindparam("user")))
DAYS_READ = Prebuilt(lambda _: select(
    DAYS.c.local_date, DAYS.c.mode, *(DAYS.c[n] for n in LIVE))
    .where(DAYS.c.user_id == bindparam("user"), DAYS.c.live_events > 0,
           DAYS.c.local_date >= bindparam("since", type_=DAYS.c.local_date.type),
           DAYS.c.local_date <= bindparam("until", type_=DAYS.c.local_date.type)))
GREEN_BEFORE = Prebuilt(lambda _: select(DAYS.c.local_date).distinct()
                        .where(DAYS.c.user_id == bindparam("user"),
                               DAYS.c.live_events > 0,
                               DAYS.c.local_date < bindparam("before",
                                                             type_=DAYS.c.local_date.type))
                        .order_by(DAYS.c.local_date.desc()).limit(bindparam("n")))


def months_read(user_id: str) -> Read:
    return MONTHS_READ, {"user": user_id}


def days_read(user_id: str, since: date, until: date) -> Read:
    return DAYS_READ, {"user": user_id, "since": since, "until": until}


def rows_of(rows: Sequence[tuple[Any, ...]]) -> list[Row]:
    return [Row(_day(day), mode, Sums(int(n), int(ug), int(points), int(activity)))
            for day, mode, n, ug, points, activity in rows]


def green_before(session: Session, user_id: str, before: date, n: int) -> list[date]:
    """Up to ``n`` green days before ``before``, newest first."""
    return [_day(row[0]) for row in GREEN_BEFORE.rows(
        session, {"user": user_id, "before": before, "n": n})]


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# ---------------------------------------------------------------- rebuild

def rebuild(session: Session) -> tuple[int, int]:
    """Recompute the day rows' live counters and the month rows from the events with an
    earn entry and no reversal (in one transaction; the caller commits). The (day, month)
    rows written. The caps' counters are left as they are. On PostgreSQL both tables are
    locked against writers first (ingests wait), so no credit lands between the reset and
    the writes."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE daily_usage, account_months IN EXCLUSIVE MODE"))
    session.execute(update(DAYS).where(DAYS.c.live_events != 0).values(
        {name: 0 for name in LIVE}))
    session.execute(delete(MONTHS))
    # Live credited = an earn entry and no reversal: exactly these statuses with grams
    # (an earn entry is written then, and a reversal changes the status; reports.rollups).
    query = (select(Event.user_id, Event.local_date, Event.mode, func.count(),
                    func.sum(Event.credited_ug), func.sum(Event.points),
                    func.sum(Event.activity))
             .where(Event.status.in_(LIVE_STATUSES), Event.credited_ug > 0)
             .group_by(Event.user_id, Event.local_date, Event.mode))
    days: list[dict[str, Any]] = []
    months: dict[tuple[str, date, str], dict[str, Any]] = {}
    for user_id, day, mode, n, ug, points, activity in session.execute(query):
        day = _day(day)
        values = {"events": int(n), "ug": int(ug), "points": int(points),
                  "activity": int(activity)}
        days.append({"user_id": user_id, "local_date": day, "mode": mode,
                     **{live: values[name] for live, name in zip(LIVE, SUMMED, strict=True)}})
        month = months.setdefault((user_id, month_of(day), mode), {
            "user_id": user_id, "month": month_of(day), "mode": mode,
            "events": 0, "ug": 0, "points": 0, "activity": 0})
        for name, value in values.items():
            month[name] += value
    # A day every credit of which the caps counted has its usage row; the upsert also
    # makes one (caps' counters 0) should a row be missing.
    ins = postgresql.insert if session.get_bind().dialect.name == "postgresql" \
        else sqlite.insert
    row = ins(DAYS)
    put_days = row.on_conflict_do_update(
        index_elements=["user_id", "local_date", "mode"],
        set_={name: row.excluded[name] for name in LIVE})
    for i in range(0, len(days), 5000):
        session.execute(put_days, [{"events": 0, "credited_ug": 0, "points": 0,
                                    "max_quantity": 0, **d} for d in days[i:i + 5000]])
    rows = list(months.values())
    for i in range(0, len(rows), 5000):
        session.execute(insert(MONTHS), rows[i:i + 5000])
    return len(days), len(months)


_HISTORY_OF = Prebuilt(lambda one_of: union_all(
    select(DAYS.c.user_id, literal("day"), DAYS.c.local_date, DAYS.c.mode,
           DAYS.c.live_events, DAYS.c.activity)
    .where(one_of(DAYS.c.user_id, "users"), DAYS.c.live_events > 0,
           DAYS.c.local_date >= bindparam("since", type_=DAYS.c.local_date.type),
           DAYS.c.local_date <= bindparam("until", type_=DAYS.c.local_date.type)),
    select(MONTHS.c.user_id, literal("month"), MONTHS.c.month, MONTHS.c.mode, MONTHS.c.events,
           MONTHS.c.activity)
    .where(one_of(MONTHS.c.user_id, "users"),
           MONTHS.c.month >= bindparam("first_month", type_=MONTHS.c.month.type),
           MONTHS.c.month <= bindparam("last_month", type_=MONTHS.c.month.type)),
    select(MONTHS.c.user_id, literal("all"), func.min(MONTHS.c.month), MONTHS.c.mode,
           func.sum(MONTHS.c.events), func.sum(MONTHS.c.activity))
    .where(one_of(MONTHS.c.user_id, "users")).group_by(MONTHS.c.user_id, MONTHS.c.mode)))


def history_read_of(users: list[str], since: date, until: date) -> Read:
    """``users``' credited history as the badge rules read it, in one statement: (user,
    part, date, mode, events, activity) rows, where part is ``day`` (the day rows from
    ``since`` to ``until``), ``month`` (the month rows of those months) or ``all`` (the
    sums per mode over every month, summed by the server; date: the first month)."""
    return _HISTORY_OF, {"users": users, "since": since, "until": until,
                         "first_month": month_of(since), "last_month": month_of(until)}


History = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]


def histories(rows: Sequence[tuple[Any, ...]]) -> dict[str, History]:
    """Each user's (lifetime, month, day) rows of ``history_read_of``'s rows, in one pass
    (a chunk of a record file has thousands of users: a pass per user was quadratic)."""
    found: dict[str, History] = {}
    for user, part, when, mode, events, activity in rows:
        lifetime, months, days = found.setdefault(user, ([], [], []))
        if part == "all":
            lifetime.append((mode, events, activity))
        else:
            (months if part == "month" else days).append((when, mode, events, activity))
    return found
