"""Which badges a chunk's credited events earn, one event at a time, in order: pure, over
the user's aggregates as read before the chunk (tests/unit/test_badge_earning.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

from carbon_credits.account.history import month_of, week_of
from carbon_credits.badges import rules
from carbon_credits.badges.awards import ActiveBadge
from methodology import METHODOLOGIES


class Earning(Protocol):
    @property
    def local_date(self) -> date: ...
    @property
    def mode(self) -> str: ...
    @property
    def activity(self) -> int: ...


@dataclass
class Ledger:
    """A user's credited events per (day, mode) around the chunk's days, per (month,
    mode), and in all, with the trip modes' lifetime metres."""

    days: Counter[tuple[date, str]] = field(default_factory=Counter)
    months: Counter[tuple[date, str]] = field(default_factory=Counter)
    lifetime: Counter[str] = field(default_factory=Counter)
    activity: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, lifetime: Sequence[Sequence[Any]], months: Sequence[Sequence[Any]],
           days: Sequence[Sequence[Any]]) -> Ledger:
        """From lifetime sums (mode, events, activity), month rows (month, mode, events,
        activity) of the months around the chunk and day rows (day, ...) around it."""
        ledger = cls()
        for mode, events, activity in lifetime:
            ledger.lifetime[mode] += int(events)
            ledger.activity[mode] += int(activity)
        for month, mode, events, _activity in months:
            ledger.months[(_day(month), mode)] += int(events)
        for day, mode, events, _activity in days:
            ledger.days[(_day(day), mode)] += int(events)
        return ledger

    def add(self, event: Earning) -> None:
        self.days[(event.local_date, event.mode)] += 1
        self.months[(month_of(event.local_date), event.mode)] += 1
        self.lifetime[event.mode] += 1
        self.activity[event.mode] += event.activity

    def facts(self, day: date) -> rules.Facts:
        """The facts of the rules as of an event on ``day``."""
        monday = week_of(day)
        week_days = [monday + timedelta(days=n) for n in range(7)]
        modes = list(METHODOLOGIES)
        green = {d for (d, _mode), n in self.days.items() if n > 0}
        run = 1 if day in green else 0
        if run:
            before = day - timedelta(days=1)
            while before in green:
                run, before = run + 1, before - timedelta(days=1)
            after = day + timedelta(days=1)
            while after in green:
                run, after = run + 1, after + timedelta(days=1)
        return rules.Facts(
            day={m: self.days[(day, m)] for m in modes},
            week={m: sum(self.days[(d, m)] for d in week_days) for m in modes},
            month={m: self.months[(month_of(day), m)] for m in modes},
            all=dict(self.lifetime),
            distance_m={m: self.activity[m] for m in modes
                        if not METHODOLOGIES[m].cumulative},
            streak_days=run)


def earned(ledger: Ledger, events: Sequence[Any], badges: Sequence[ActiveBadge]
           ) -> Iterator[tuple[Any, ActiveBadge]]:
    """(event, badge) for each badge not yet held that an event earns: the first event,
    in order, after whose credit the badge's rule holds."""
    open_ = list(badges)
    for event in events:
        ledger.add(event)
        if not open_:
            continue
        facts = ledger.facts(event.local_date)
        still = []
        for badge in open_:
            if rules.holds(badge.rule, facts):
                yield event, badge
            else:
                still.append(badge)
        open_ = still


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
