"""Daily and annual caps: how much of an event's quantified grams a user-day (per mode and
in total) and a user-year may credit, and its points.

One path for every credit: new events at ingest and held events an admin approves.
Callers hold the user's account lock, so the day's and the year's usage they read cannot
change under them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from carbon_credits.config import Config
from carbon_credits.ledger import entries
from carbon_credits.reports import rollups
from carbon_credits.storage.models import Account, AnnualUsage, DailyUsage, Event
from methodology import FactorSet, Methodology
from methodology.quantity import g_to_ug, whole_grams

CAP_RULE = ("credited = min(avoided, cap - already credited today), per local day in the "
            "city time zone")
ANNUAL_CAP_RULE = ("credited = min(avoided, annual cap - already credited this year), per "
                   "local calendar year in the city time zone")


def rule_for(cap: str) -> str:
    """The rule text of a cap met (``mode``, ``total``: daily; ``annual``)."""
    return ANNUAL_CAP_RULE if cap == "annual" else CAP_RULE
POINTS_RULE = ("1 point per gram; whole points of (carried remainder + this event's "
               "micrograms), the rest carried")


class Usage(Protocol):
    """A user's usage of one local day and mode: an ORM ``DailyUsage`` or ingest's plain
    row of it."""

    events: int
    credited_ug: int
    points: int
    max_quantity: int
    last_post_at: datetime | None
    live_events: int
    live_ug: int
    live_points: int
    activity: int


@dataclass(frozen=True)
class Credit:
    credited_ug: int
    points: int
    status: str
    reason: str | None
    cap: dict[str, Any] | None


def year_usage(session: Session, user_id: str, year: int) -> AnnualUsage | None:
    return session.get(AnnualUsage, (user_id, year))


def day_usage(session: Session, user_id: str, local_date: date) -> dict[str, DailyUsage]:
    rows = session.scalars(select(DailyUsage).where(DailyUsage.user_id == user_id,
                                                    DailyUsage.local_date == local_date))
    return {r.mode: r for r in rows}


def daily_caps_ug(config: Config, method: Methodology, factors: FactorSet
                  ) -> tuple[int | None, int | None]:
    """The (mode cap, total cap) in micrograms for one user-day; None means no cap."""
    candidates = [method.daily_cap_ug(factors)]
    configured = config.daily_caps_g.get(method.mode)
    if configured is not None:
        candidates.append(g_to_ug(configured))
    present = [c for c in candidates if c is not None]
    total = config.daily_caps_g.get("total")
    return (min(present) if present else None,
            None if total is None else g_to_ug(Decimal(total)))


def decide(config: Config, method: Methodology, factors: FactorSet, account: entries.Balance,
           usage: Mapping[str, Usage], avoided_ug: int, year_used_ug: int = 0) -> Credit:
    """How much of ``avoided_ug`` fits under today's caps and this year's
    (``year_used_ug``: credited in the event's local year before it), and the points it
    earns."""
    mode_cap, total_cap = daily_caps_ug(config, method, factors)
    used_mode = usage[method.mode].credited_ug if method.mode in usage else 0
    used_total = sum(u.credited_ug for u in usage.values())
    credited, which, cap_ug, used = avoided_ug, None, 0, 0
    if mode_cap is not None and used_mode + credited > mode_cap:
        credited, which, cap_ug, used = max(0, mode_cap - used_mode), "mode", mode_cap, used_mode
    if total_cap is not None and used_total + credited > total_cap:
        credited = max(0, total_cap - used_total)
        which, cap_ug, used = "total", total_cap, used_total
    annual_cap = None if config.annual_cap_g is None else g_to_ug(config.annual_cap_g)
    if annual_cap is not None and year_used_ug + credited > annual_cap:
        credited = max(0, annual_cap - year_used_ug)
        which, cap_ug, used = "annual", annual_cap, year_used_ug
    points, _carry = entries.points_for(account.carry_ug, credited)
    if which is None:
        return Credit(credited, points, "credited", None, None)
    return Credit(credited, points, "capped", "annual_cap" if which == "annual" else "daily_cap",
                  {"cap": which, "cap_g": whole_grams(cap_ug), "used_before_ug": used,
                   "uncapped_ug": avoided_ug, "rule": rule_for(which)})


def explain(explanation: dict[str, Any], credit: Credit) -> dict[str, Any]:
    """The event's explanation with what the caps and the carry made of it."""
    return {**explanation, "credited_ug": credit.credited_ug, "cap_applied": credit.cap,
            "points_rule": POINTS_RULE}


def apply(session: Session, account: Account, event: Event, credit: Credit,
          usage: dict[str, DailyUsage], method: Methodology, quantity: int,
          posted_at: datetime) -> None:
    """Write the credit: ledger entry, balance, the day's and the year's usage (event is
    flushed)."""
    if credit.credited_ug > 0:
        entries.earn(session, account, ug=credit.credited_ug, event_pk=event.id,
                    mode=method.mode, factor_version_id=event.factor_version_id)
        rollups.credit(session, [event])  # report rollups, in the same transaction
    row = usage.get(method.mode)
    if row is None:  # added to ``usage``: the next event of the day sees it
        row = usage[method.mode] = DailyUsage(
            user_id=account.user_id, local_date=event.local_date, mode=method.mode, events=0,
            credited_ug=0, points=0, max_quantity=0, live_events=0, live_ug=0,
            live_points=0, activity=0)
        session.add(row)
    count_usage(row, method, credit, quantity, posted_at, event.activity)
    year = year_usage(session, account.user_id, event.local_date.year)
    if year is None:
        year = AnnualUsage(user_id=account.user_id, year=event.local_date.year,
                           credited_ug=0, points=0)
        session.add(year)
    count_year(year, credit)


def count_usage(row: Usage, method: Methodology, credit: Credit, quantity: int,
                posted_at: datetime, activity: int) -> None:
    """Add a credited event to its day's usage row of its mode: to the caps' counters
    always, to the live ones (the carbon account's day) if it credited grams, the events
    an earn entry is written for (``DailyUsage``)."""
    row.events += 1
    row.credited_ug += credit.credited_ug
    row.points += credit.points
    if credit.credited_ug > 0:
        row.live_events += 1
        row.live_ug += credit.credited_ug
        row.live_points += credit.points
        row.activity += activity
    if method.cumulative:
        row.max_quantity = max(row.max_quantity, quantity)
        row.last_post_at = posted_at


class YearUsage(Protocol):
    """A user's credits of one local year: an ORM ``AnnualUsage`` or ingest's plain row."""

    credited_ug: int
    points: int


def count_year(row: YearUsage, credit: Credit) -> None:
    row.credited_ug += credit.credited_ug
    row.points += credit.points
