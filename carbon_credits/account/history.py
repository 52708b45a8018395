"""A user's credited history as compact aggregates, and what the account screen and the
badge rules make of them. Pure: no database (tests/unit/test_account_history.py).

The unit of the aggregates is the **credited event**: an event with an earn entry (status
``credited`` or ``capped`` with grams > 0), counted on its own local day (the city's time
zone) and mode, until it is reversed. Held, rejected and fully capped events (0 g) do not
count; neither do bonus points, which are ledger entries of their own kind, not events'
grams.

A **green-travel day** is a local day with at least one credited event of any mode (steps
included: walking is green travel). The **current streak** is the run of green days
ending today, or ending yesterday while today has none yet (today may still join it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from methodology import METHODOLOGIES
from methodology.quantity import whole_grams

DAY_TREND = 30
"""Days in the daily trend, today included."""
WEEK_TREND = 12
"""ISO weeks (Monday to Sunday) in the weekly trend, this one included."""
MONTH_TREND = 12
"""Calendar months in the monthly trend, this one included."""


@dataclass
class Sums:
    """Credited events, micrograms, points and activity (metres or steps) of a span."""

    events: int = 0
    ug: int = 0
    points: int = 0
    activity: int = 0

    def add(self, other: Sums) -> None:
        self.events += other.events
        self.ug += other.ug
        self.points += other.points
        self.activity += other.activity

    def view(self, mode: str) -> dict[str, Any]:
        """As shown: whole grams; ``distance_m`` for a trip mode, ``steps`` for steps."""
        shown: dict[str, Any] = {"grams": whole_grams(self.ug), "points": self.points,
                                 "events": self.events}
        method = METHODOLOGIES.get(mode)
        shown["steps" if method is not None and method.cumulative else "distance_m"] = (
            self.activity)
        return shown


def total_view(per_mode: Mapping[str, Sums]) -> dict[str, Any]:
    """All modes together: trip modes' metres as ``distance_m``, steps as ``steps``."""
    total = Sums()
    distance = steps = 0
    for mode, sums in per_mode.items():
        total.add(sums)
        method = METHODOLOGIES.get(mode)
        if method is not None and method.cumulative:
            steps += sums.activity
        else:
            distance += sums.activity
    return {"grams": whole_grams(total.ug), "points": total.points, "events": total.events,
            "distance_m": distance, "steps": steps}


@dataclass(frozen=True)
class Row:
    """One aggregate row: a day (``DailyUsage``'s live counters) or a month
    (``AccountMonth``, ``day`` being the month's first day) of one mode."""

    day: date
    mode: str
    sums: Sums


def month_of(day: date) -> date:
    return day.replace(day=1)


def week_of(day: date) -> date:
    """The Monday of ``day``'s ISO week."""
    return day - timedelta(days=day.weekday())


def months_back(month: date, n: int) -> date:
    """The first day of the month ``n`` months before ``month``'s."""
    index = month.year * 12 + month.month - 1 - n
    return date(index // 12, index % 12 + 1, 1)


def window_start(today: date) -> date:
    """The first day the screen reads day rows from: the weekly trend's first Monday, or
    the daily trend's first day, whichever is earlier."""
    return min(week_of(today) - timedelta(weeks=WEEK_TREND - 1),
               today - timedelta(days=DAY_TREND - 1))


@dataclass
class Trend:
    """Sums per period start and mode."""

    periods: list[date]
    cells: dict[tuple[date, str], Sums] = field(default_factory=dict)

    def add(self, period: date, mode: str, sums: Sums) -> None:
        if period in self._known:
            self.cells.setdefault((period, mode), Sums()).add(sums)

    def __post_init__(self) -> None:
        self._known = set(self.periods)

    def view(self, modes: Iterable[str]) -> dict[str, Any]:
        """Columns, one value per period, oldest first (what a chart takes): the periods'
        first days, and per mode and in total the series of ``Sums.view``'s fields."""
        per_period = []
        for period in self.periods:
            sums = {mode: self.cells.get((period, mode), Sums()) for mode in modes}
            per_period.append((total_view(sums), {m: s.view(m) for m, s in sums.items()}))
        return {"start": [p.isoformat() for p in self.periods],
                "total": _columns([total for total, _ in per_period]),
                "modes": {mode: _columns([by_mode[mode] for _, by_mode in per_period])
                          for mode in modes}}


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in rows[0]} if rows else {}


@dataclass(frozen=True)
class Streak:
    days: int
    """Green-travel days in a row ending today or yesterday (0: none)."""
    first_day: date | None
    last_day: date | None
    today_counted: bool
    """Whether today is already a green day (else the streak is still open for today)."""


def streak(green: set[date], today: date) -> Streak:
    """The current streak over ``green`` (green days; must include every day of the run,
    read back far enough: see ``reaches``)."""
    end = today if today in green else today - timedelta(days=1)
    if end not in green:
        return Streak(0, None, None, False)
    first = end
    while first - timedelta(days=1) in green:
        first -= timedelta(days=1)
    return Streak((end - first).days + 1, first, end, end == today)


def reaches(green: set[date], since: date, today: date) -> bool:
    """Whether the current streak over the days read (``since`` to ``today``) may go on
    before ``since``: then older days must be read to measure it."""
    found = streak(green, today)
    return found.first_day == since


def screen(today: date, months: Iterable[Row], days: Iterable[Row], green: set[date]
           ) -> dict[str, Any]:
    """The carbon account's first screen, from the user's month rows (all), day rows (from
    ``window_start(today)``) and green days (those rows' days, plus older ones as far
    back as the current streak goes)."""
    modes = list(METHODOLOGIES)
    lifetime: dict[str, Sums] = {mode: Sums() for mode in modes}
    this_month = month_of(today)
    month_trend = Trend([months_back(this_month, n) for n in range(MONTH_TREND - 1, -1, -1)])
    for row in months:
        lifetime.setdefault(row.mode, Sums()).add(row.sums)
        month_trend.add(row.day, row.mode, row.sums)
    day_trend = Trend([today - timedelta(days=n) for n in range(DAY_TREND - 1, -1, -1)])
    this_week = week_of(today)
    week_trend = Trend([this_week - timedelta(weeks=n) for n in range(WEEK_TREND - 1, -1, -1)])
    for row in days:
        day_trend.add(row.day, row.mode, row.sums)
        week_trend.add(week_of(row.day), row.mode, row.sums)
    total = total_view(lifetime)
    found = streak(green, today)
    return {
        "local_date": today,
        "lifetime": {"total": total,
                     "modes": {mode: sums.view(mode) for mode, sums in lifetime.items()}},
        "trends": {"day": day_trend.view(lifetime), "week": week_trend.view(lifetime),
                   "month": month_trend.view(lifetime)},
        "streak": {"days": found.days, "first_day": found.first_day,
                   "last_day": found.last_day, "today_counted": found.today_counted},
        "total_grams": total["grams"],
    }


def sums_of(values: Mapping[str, Any]) -> Sums:
    return Sums(int(values["events"]), int(values["ug"]), int(values["points"]),
                int(values["activity"]))
