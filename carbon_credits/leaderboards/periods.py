"""The periods of the boards, in the city's time (pure: no Redis, no database).

An event counts in the boards of its own local date (``Event.local_date``, the city's
time zone): that day, its ISO week (Monday to Sunday) and its calendar month, and all time.
A board of a period is kept ``keep_days`` after the period ends (``LEADERBOARD_KEEP_DAYS``),
then dropped (Redis ``EXPIREAT``); all-time boards are kept for ever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PERIODS = ("day", "week", "month", "all")
"""The period names of the API (``?period=``)."""


@dataclass(frozen=True)
class Period:
    name: str
    """One of ``PERIODS``."""
    label: str
    """The key part: ``all``, ``d2026-12-07``, ``w2026-W50``, ``m2026-12``."""
    first: date | None
    last: date | None
    """The period's local days (None for all time)."""

    def expire_at(self, tz: ZoneInfo, keep_days: int) -> int:
        """The Unix time its board is dropped (0: never): ``keep_days`` after its end."""
        if self.last is None:
            return 0
        end = datetime.combine(self.last + timedelta(days=1 + keep_days), time(), tz)
        return int(end.timestamp())

    def kept(self, tz: ZoneInfo, keep_days: int, now: datetime) -> bool:
        expire = self.expire_at(tz, keep_days)
        return expire == 0 or expire > now.timestamp()


def period_of(name: str, day: date) -> Period:
    """The period called ``name`` holding the local date ``day``."""
    if name == "day":
        return Period(name, f"d{day.isoformat()}", day, day)
    if name == "week":
        year, week, weekday = day.isocalendar()
        monday = day - timedelta(days=weekday - 1)
        return Period(name, f"w{year:04d}-W{week:02d}", monday, monday + timedelta(days=6))
    if name == "month":
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return Period(name, f"m{day.year:04d}-{day.month:02d}", first,
                      following - timedelta(days=1))
    if name == "all":
        return Period(name, "all", None, None)
    raise ValueError(f"unknown period {name!r}")


def periods_of(day: date) -> tuple[Period, ...]:
    """Every board period an event of local date ``day`` counts in."""
    return tuple(period_of(name, day) for name in PERIODS)


def kept_periods(tz: ZoneInfo, keep_days: int, now: datetime) -> list[Period]:
    """Every period whose board may exist at ``now`` (not yet dropped), newest first per
    kind: what moving a user's scores into a team's boards walks (``teams``)."""
    today = now.astimezone(tz).date()
    found: dict[str, Period] = {}
    day = today
    # A period is kept until keep_days after its end; a month is at most 31 days long.
    while True:
        periods = [period_of(name, day) for name in ("day", "week", "month")]
        alive = [p for p in periods if p.kept(tz, keep_days, now)]
        if not alive:
            break
        for p in alive:
            found.setdefault(p.label, p)
        day -= timedelta(days=1)
    found["all"] = period_of("all", today)
    return list(found.values())
