"""Points expiry, decided without a database: when points earned on a day expire (a city's
policy), and which points each ledger entry takes (oldest first).

**Policy** (per city, ``expiry_policies``; no policy: points never expire):
``days`` N (expire N local days after the day they were earned), ``months`` N (the same
day N months later, the month's last day when it has fewer days), ``year_end`` (at the end
of the year after the one they were earned in: points of 2026 expire when 2028 begins). Never
later than 10 years after they were earned: Shenzhen's 《深圳市碳普惠管理办法》 (2021)
gives carbon-inclusion points a validity of at most ten years, so a longer policy is refused
and every date is capped. A policy applies to points earned while it is in force; a later
policy never moves the date of points already earned.

**Lots.** Points earned (an entry with points > 0 of an earning kind: ``earn``, and any
future crediting kind, e.g. a campaign's ``bonus``) go into the user's lot of their expiry
date: one lot per (user, expiry date), however many entries fill it, so the state stays
one small row per user whatever the length of the ledger.

**Rules of each entry** (the README's "Points expiry" repeats them):

- a credit fills the lot of its expiry date, after repaying any debt first;
- a redemption takes the oldest lots first (FIFO by expiry date) and remembers which;
- a **hold** (points reserved for a redemption fulfilled later: a physical good) takes
  them from the oldest lots as a redemption does, into ``reserved``: the balance stays
  (live + reserved - debt), and reserved points are **never expired** while held (they
  are in no lot). Its fulfilment (the 'redeem' entry naming it) spends the reserved
  points and nothing else; its **release** (a cancellation) gives them back to the very
  lots the hold took them from, with their dates, as a refund does: a lot whose date
  passed while held is expired at the next run (holding never makes points live longer);
- a refund (the ``adjustment`` of a cancelled reward redemption) gives the points back to
  the very lots the redemption took them from, with their dates (a lot whose date has
  passed is expired at the next run): cancelling never makes points live longer;
- an expiry takes exactly what remained of the lots due on its local day, nothing more;
- a reversal takes what remains of the reversed event's own lot first (those are the very
  points), then the oldest other lots; what they cannot cover (the event's points were
  already spent or expired) is a **debt**, and the balance goes negative (the existing
  reversal policy). A debt is repaid by the next credits and refunds before they fill any
  lot, so while there is a debt every lot is empty, and balance == live lots - debt;
- a lapse (points left unclaimed, ``ledger.settlement``) takes its event's points as a
  reversal does;
- any other debit (a kind added later) takes the oldest lots first, as a redemption.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MAX_YEARS = 10
"""Shenzhen's 《深圳市碳普惠管理办法》: points are valid for at most ten years."""
MAX_DAYS = 3652
MAX_MONTHS = 12 * MAX_YEARS
RULES = ("never", "days", "months", "year_end")
NOT_CREDITS = frozenset({"adjustment"})
OWN_LOT_FIRST = ("reversal", "lapse")
"""Debits of one event's points: they take from that event's own lot first."""
"""Positive entries that are not new points (a refund restores what a redemption took)."""
HOLD_KINDS = ("hold", "release")
"""0-point entries whose amount is their redemption's points (``Entry.held``)."""


@dataclass(frozen=True)
class Policy:
    """A city's expiry rule from ``effective_from`` on (``rule``: one of ``RULES``)."""

    rule: str
    amount: int = 0
    effective_from: datetime | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown expiry rule {self.rule!r}")
        limit = {"days": MAX_DAYS, "months": MAX_MONTHS}.get(self.rule)
        if limit is not None and not 1 <= self.amount <= limit:
            raise ValueError(f"{self.rule} must be 1 to {limit} (at most {MAX_YEARS} years)")

    def expires_on(self, earned_on: date) -> date | None:
        """The local day on which points earned on ``earned_on`` are expired (they are
        valid up to the day before), or None: never."""
        if self.rule == "never":
            return None
        if self.rule == "days":
            due = earned_on + timedelta(days=self.amount)
        elif self.rule == "months":
            due = add_months(earned_on, self.amount)
        else:
            due = date(earned_on.year + 2, 1, 1)
        return min(due, add_months(earned_on, MAX_MONTHS))


NEVER = Policy("never")


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, or that month's last day."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def policy_at(history: Sequence[Policy], at: datetime) -> Policy:
    """The policy in force at ``at`` among a city's policies (sorted by effective_from)."""
    found = NEVER
    for policy in history:
        if policy.effective_from is not None and policy.effective_from <= at:
            found = policy
        else:
            break
    return found


@dataclass(frozen=True, slots=True)
class Entry:
    """What the fold reads of a ledger entry."""

    seq: int
    kind: str
    points: int
    created_at: datetime
    event_pk: int | None = None
    redemption_pk: int | None = None
    earned_at: datetime | None = None
    """Reversals: when the reversed event's earn entry was written (its lot's day)."""
    held: int = 0
    """Holds and releases (0-point entries): the points of their redemption."""


NEVER_KEY = "never"
"""The lot key of points that never expire (sorted after every date)."""


def _order(key: str) -> tuple[int, str]:
    return (1, key) if key == NEVER_KEY else (0, key)


@dataclass
class Lots:
    """A user's points by expiry date (ISO date keys, or ``NEVER_KEY``), the debt, which
    lots each redemption took from, and the last entry folded. Plain JSON-able values: the
    state stored per user (``expiry_states``)."""

    seq: int = 0
    debt: int = 0
    lots: dict[str, int] = field(default_factory=dict)
    taken: dict[str, list[list[Any]]] = field(default_factory=dict)
    """redemption_pk -> [[lot key, points], ...] (for its refund)."""
    expired_total: int = 0
    held: dict[str, int] = field(default_factory=dict)
    """redemption_pk -> points of each open hold (in no lot: never expired)."""

    @property
    def live(self) -> int:
        return sum(self.lots.values())

    @property
    def reserved(self) -> int:
        return sum(self.held.values())

    @property
    def balance(self) -> int:
        return self.live + self.reserved - self.debt

    def next_due(self) -> date | None:
        dated = [k for k, v in self.lots.items() if v > 0 and k != NEVER_KEY]
        return date.fromisoformat(min(dated)) if dated else None

    def due(self, today: date) -> dict[str, int]:
        """The lots expired on ``today``: their dates and what remains in them."""
        return {k: v for k, v in sorted(self.lots.items())
                if v > 0 and k != NEVER_KEY and date.fromisoformat(k) <= today}

    def upcoming(self, until: date) -> list[tuple[date, int]]:
        """Live lots expiring by ``until`` (inclusive), oldest first."""
        return [(date.fromisoformat(k), v) for k, v in sorted(self.lots.items(),
                                                               key=lambda kv: _order(kv[0]))
                if v > 0 and k != NEVER_KEY and date.fromisoformat(k) <= until]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "debt": self.debt, "lots": dict(sorted(self.lots.items())),
                "taken": self.taken, "expired_total": self.expired_total,
                "held": dict(sorted(self.held.items()))}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Lots:
        if not data:
            return cls()
        return cls(seq=int(data["seq"]), debt=int(data["debt"]),
                   lots={str(k): int(v) for k, v in data["lots"].items()},
                   taken={str(k): [[str(a), int(b)] for a, b in v]
                          for k, v in data["taken"].items()},
                   expired_total=int(data.get("expired_total", 0)),
                   held={str(k): int(v) for k, v in data.get("held", {}).items()})

    # -- the rules of each entry ------------------------------------------------------

    def _credit(self, key: str, points: int) -> None:
        repaid = min(points, self.debt)
        self.debt -= repaid
        if points > repaid:
            self.lots[key] = self.lots.get(key, 0) + points - repaid

    def _take(self, points: int, first: str | None = None) -> tuple[list[list[Any]], int]:
        """Take ``points`` from lot ``first`` then the oldest; returns what was taken from
        which lot, and the shortfall."""
        taken: list[list[Any]] = []
        order = sorted(self.lots, key=_order)
        if first is not None and first in self.lots:
            order.remove(first)
            order.insert(0, first)
        left = points
        for key in order:
            if left == 0:
                break
            n = min(left, self.lots[key])
            if n > 0:
                self.lots[key] -= n
                taken.append([key, n])
                left -= n
        self.lots = {k: v for k, v in self.lots.items() if v > 0}
        return taken, left


def lot_key(policy: Policy, earned_at: datetime, tz: ZoneInfo) -> str:
    due = policy.expires_on(earned_at.astimezone(tz).date())
    return NEVER_KEY if due is None else due.isoformat()


def fold(state: Lots, entries: Iterable[Entry], history: Sequence[Policy], tz: ZoneInfo,
         problems: list[str] | None = None) -> Lots:
    """Apply ``entries`` (in seq order, after ``state.seq``) to ``state``, in place.

    ``problems`` (verify-ledger): where to say that an expiry entry does not take exactly
    the lots due on its local day, or that a redemption took more than was live. The entry
    is applied as written all the same (a running job never refuses the ledger as it is).
    """
    for e in entries:
        if e.seq <= state.seq:
            continue
        pk = str(e.redemption_pk)
        if e.kind == "hold":
            taken, short = state._take(e.held)
            state.taken[pk], state.held[pk] = taken, e.held
            if short:
                if problems is not None:
                    problems.append(f"hold of {e.held} points but only {e.held - short} "
                                    "were live")
                state.debt += short
        elif e.kind == "release":
            if problems is not None and state.held.get(pk) != e.held:
                problems.append(f"release of {e.held} points of redemption "
                                f"{e.redemption_pk}, which holds {state.held.get(pk, 0)}")
            state.held.pop(pk, None)
            left = e.held
            for key, n in state.taken.pop(pk, None) or []:
                give = min(n, left)
                state._credit(key, give)
                left -= give
            if left:
                state._credit(NEVER_KEY, left)
        elif e.kind == "redeem" and pk in state.held:
            # A hold's fulfilment: the reserved points are spent, no lot is touched.
            reserved = state.held.pop(pk)
            state.taken.pop(pk, None)
            if problems is not None and -e.points != reserved:
                problems.append(f"redeem of {-e.points} points fulfils a hold of {reserved}")
            _, short = state._take(max(0, -e.points - reserved))
            state.debt += short
        elif e.kind == "expiry":
            due = state.due(e.created_at.astimezone(tz).date())
            if problems is not None and (not due or sum(due.values()) != -e.points):
                problems.append(f"expiry of {-e.points} points but {sum(due.values())} were "
                                f"due on {e.created_at.astimezone(tz).date()} by the "
                                "city's policy")
            left = -e.points
            for key in due:
                n = min(left, state.lots[key])
                state.lots[key] -= n
                left -= n
            state.lots = {k: v for k, v in state.lots.items() if v > 0}
            state.expired_total += -e.points - left
            if left:
                state.debt += left
        elif e.points > 0 and e.kind in NOT_CREDITS:
            back = state.taken.pop(str(e.redemption_pk), None) or []
            left = e.points
            for key, n in back:
                give = min(n, left)
                state._credit(key, give)
                left -= give
            if left:  # nothing recorded of that redemption: fresh points, never expiring
                state._credit(NEVER_KEY, left)
        elif e.points > 0:
            state._credit(lot_key(policy_at(history, e.created_at), e.created_at, tz),
                          e.points)
        elif e.points < 0:
            first = None
            if e.kind in OWN_LOT_FIRST and e.earned_at is not None:
                first = lot_key(policy_at(history, e.earned_at), e.earned_at, tz)
            taken, short = state._take(-e.points, first)
            if e.kind == "redeem" and e.redemption_pk is not None:
                state.taken[str(e.redemption_pk)] = taken
            if short:
                if problems is not None and e.kind == "redeem":
                    problems.append(f"redeem of {-e.points} points but only "
                                    f"{-e.points - short} were live")
                state.debt += short
        state.seq = e.seq
    return state


def expiry_amount(state: Lots, today: date) -> int:
    """What an expiry entry written on ``today`` takes: every point left in the lots due."""
    return sum(state.due(today).values())
