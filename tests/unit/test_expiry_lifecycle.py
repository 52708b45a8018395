"""Hypothesis state machine of the points lifecycle: earn, time passing (settling),
expire, redeem, cancel, reverse and lapse, and hold (reserve), fulfil and release a
physical good's points, in any order and at any times. Points are never spent twice and
never expire twice (held points not at all), the oldest go first, available + pending +
reserved == balance, and the lots folded step by step (as the job does, the state stored
as JSON in between) equal the lots folded from the first entry (as verify-ledger does) and
a plain model of the rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from carbon_credits.ledger.expiry import Entry, Lots, Policy, expiry_amount, fold
from carbon_credits.ledger.settlement import split
from carbon_credits.rewards import rules

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 1, 2, tzinfo=UTC)
SETTLEMENT = timedelta(days=2)
"""The city's settlement delay: earned points are pending (not spendable) this long."""


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.history = [Policy("days", 30, START - timedelta(days=1)),
                        Policy("months", 2, START + timedelta(days=45))]
        self.entries: list[Entry] = []
        self.balance = 0
        self.stored = Lots().to_json()
        # The plain model: the points of each expiry date, a debt, what each redemption
        # took, and each event's lot.
        self.model: dict[date, int] = {}
        self.debt = 0
        self.redemptions: dict[int, tuple[int, list[tuple[date, int]]]] = {}
        self.events: dict[int, tuple[int, date]] = {}
        self.expired_per_day: dict[date, int] = {}
        # Holds: open ones (points, lots taken), and how each resolved one ended.
        self.holds: dict[int, tuple[int, list[tuple[date, int]]]] = {}
        self.resolved: dict[int, tuple[int, str]] = {}

    # -- helpers -----------------------------------------------------------------------

    def write(self, kind: str, points: int, **facts: object) -> Entry:
        entry = Entry(len(self.entries) + 1, kind, points, self.now, **facts)  # type: ignore[arg-type]
        self.entries.append(entry)
        self.balance += points
        # The job folds what is new since its last run, from the stored state.
        lots = fold(Lots.from_json(self.stored), self.entries, self.history, TZ)
        self.stored = lots.to_json()
        return entry

    def lots(self) -> Lots:
        return Lots.from_json(self.stored)

    def due_of(self, earned_at: datetime) -> date:
        policy = next(p for p in reversed(self.history)
                      if p.effective_from is not None and p.effective_from <= earned_at)
        due = policy.expires_on(earned_at.astimezone(TZ).date())
        assert due is not None
        return due

    def pending(self) -> int:
        return sum(points for seq, (points, _) in self.events.items()
                   if self.entries[seq - 1].created_at > self.now - SETTLEMENT)

    def reserved(self) -> int:
        return sum(points for points, _ in self.holds.values())

    def available(self) -> int:
        return split(self.balance, self.pending(), 0, self.reserved())["available"]

    def model_credit(self, day: date, points: int) -> None:
        repaid = min(points, self.debt)
        self.debt -= repaid
        if points > repaid:
            self.model[day] = self.model.get(day, 0) + points - repaid

    def model_take(self, points: int, first: date | None = None) -> tuple[list[tuple[date, int]],
                                                                           int]:
        order = sorted(self.model)
        if first in self.model:
            order.remove(first)
            order.insert(0, first)
        taken = []
        for day in order:
            n = min(points, self.model[day])
            if n:
                self.model[day] -= n
                points -= n
                taken.append((day, n))
        self.model = {d: n for d, n in self.model.items() if n}
        return taken, points

    # -- the rules ---------------------------------------------------------------------

    @rule(days=st.integers(0, 40), hours=st.integers(0, 23))
    def time_passes(self, days: int, hours: int) -> None:
        self.now += timedelta(days=days, hours=hours)

    @rule(points=st.integers(0, 60))
    def earn(self, points: int) -> None:
        entry = self.write("earn", points, event_pk=len(self.entries) + 1)
        self.events[entry.seq] = (points, self.due_of(self.now))
        self.model_credit(self.due_of(self.now), points)

    @rule(points=st.integers(1, 80))
    def redeem(self, points: int) -> None:
        if self.available() < points:
            return  # refused (409): no entry
        before = dict(self.model)
        entry = self.write("redeem", -points, redemption_pk=len(self.entries) + 1)
        taken, short = self.model_take(points)
        assert short == 0
        self.redemptions[entry.seq] = (points, taken)
        # Oldest first: nothing older than the newest lot taken from is left.
        newest = max(day for day, _ in taken)
        assert all(n == 0 for day, n in self.model.items() if day < newest)
        assert sum(before.values()) - sum(self.model.values()) == points

    @precondition(lambda self: self.redemptions)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        pk = data.draw(st.sampled_from(sorted(self.redemptions)))
        points, taken = self.redemptions.pop(pk)
        self.write("adjustment", points, redemption_pk=pk)
        for day, n in taken:
            self.model_credit(day, n)

    @rule(points=st.integers(1, 80))
    def hold(self, points: int) -> None:
        """A physical good redeemed: its points reserved, the balance unchanged."""
        if self.available() < points:
            return  # refused (409): no entry
        entry = self.write("hold", 0, redemption_pk=len(self.entries) + 1, held=points)
        taken, short = self.model_take(points)
        assert short == 0
        self.holds[entry.seq] = (points, taken)

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def fulfil(self, data: st.DataObject) -> None:
        """The good shipped: its held points spent, unless a reversal left them uncovered."""
        pk = data.draw(st.sampled_from(sorted(self.holds)))
        points, _ = self.holds[pk]
        refusal = rules.fulfil_refusal("physical", "pending", "shipped", hold=True,
                                       points=points, balance=self.balance)
        if refusal is not None:
            assert refusal.code == "hold_not_covered" and self.balance < points
            return
        self.holds.pop(pk)
        self.write("redeem", -points, redemption_pk=pk)
        self.resolved[pk] = (points, "shipped")

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        """The good cancelled before shipping: its points back to their own lots."""
        pk = data.draw(st.sampled_from(sorted(self.holds)))
        points, taken = self.holds.pop(pk)
        self.write("release", 0, redemption_pk=pk, held=points)
        for day, n in taken:
            self.model_credit(day, n)
        self.resolved[pk] = (points, "cancelled")

    @precondition(lambda self: self.resolved)
    @rule(data=st.data())
    def resolve_again(self, data: st.DataObject) -> None:
        """A shipped or cancelled good is never shipped (spent) again."""
        pk = data.draw(st.sampled_from(sorted(self.resolved)))
        points, state = self.resolved[pk]
        assert rules.fulfil_refusal("physical", state, "shipped", hold=True, points=points,
                                    balance=10**9) is not None

    @precondition(lambda self: self.events)
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        seq = data.draw(st.sampled_from(sorted(self.events)))
        points, day = self.events.pop(seq)
        earned_at = self.entries[seq - 1].created_at
        self.write("reversal", -points, event_pk=seq, earned_at=earned_at)
        _, short = self.model_take(points, day)
        self.debt += short

    @precondition(lambda self: self.events)
    @rule(data=st.data())
    def lapse(self, data: st.DataObject) -> None:
        """Points left unclaimed: taken as a reversal takes them (once per event)."""
        seq = data.draw(st.sampled_from(sorted(self.events)))
        points, day = self.events.pop(seq)
        self.write("lapse", -points, event_pk=seq, earned_at=self.entries[seq - 1].created_at)
        _, short = self.model_take(points, day)
        self.debt += short

    @rule()
    def expiry_job(self) -> None:
        today = self.now.astimezone(TZ).date()
        due = expiry_amount(self.lots(), today)
        assert due == sum(n for day, n in self.model.items() if day <= today)
        if due:
            problems: list[str] = []
            self.write("expiry", -due)
            fold(Lots(), self.entries, self.history, TZ, problems)
            assert problems == []
            self.model = {d: n for d, n in self.model.items() if d > today}
            self.expired_per_day[today] = self.expired_per_day.get(today, 0) + due
        # The job run again on the same day expires nothing: never twice.
        assert expiry_amount(self.lots(), today) == 0

    # -- the invariants ----------------------------------------------------------------

    @invariant()
    def lots_are_the_model(self) -> None:
        lots = self.lots()
        assert lots.lots == {d.isoformat(): n for d, n in self.model.items()}
        assert lots.debt == self.debt

    @invariant()
    def live_less_debt_is_the_balance(self) -> None:
        lots = self.lots()
        assert lots.balance == self.balance
        assert lots.debt == 0 or lots.live == 0  # a debt is repaid before lots fill

    @invariant()
    def step_by_step_equals_from_the_first_entry(self) -> None:
        problems: list[str] = []
        whole = fold(Lots(), self.entries, self.history, TZ, problems)
        assert problems == []
        assert whole == self.lots()

    @invariant()
    def available_pending_and_reserved_add_up_to_the_balance(self) -> None:
        parts = split(self.balance, self.pending(), 0, self.reserved())
        assert sum(parts.values()) == self.balance
        assert parts["pending"] >= 0 and parts["reserved"] >= 0
        lots = self.lots()
        assert lots.held == {str(pk): points for pk, (points, _) in self.holds.items()}
        assert lots.reserved == self.reserved()

    @invariant()
    def never_spent_twice(self) -> None:
        """Each hold is spent by one 'redeem' entry once shipped, released by one 'release'
        once cancelled, never both; what the ledger spent (less refunds) is what was
        redeemed (not cancelled) and shipped."""
        for pk, (points, state) in self.resolved.items():
            named = [e for e in self.entries if e.redemption_pk == pk]
            assert [(e.kind, e.points) for e in named] == [
                ("hold", 0), ("redeem", -points) if state == "shipped" else ("release", 0)]
        for pk in self.holds:
            assert [e.kind for e in self.entries if e.redemption_pk == pk] == ["hold"]
        spent = -sum(e.points for e in self.entries if e.kind in ("redeem", "adjustment"))
        assert spent == (sum(p for p, _ in self.redemptions.values())
                         + sum(p for p, state in self.resolved.values() if state == "shipped"))

    @invariant()
    def nothing_expired_twice(self) -> None:
        expired = -sum(e.points for e in self.entries if e.kind == "expiry")
        credited = sum(e.points for e in self.entries if e.points > 0)
        assert expired == self.lots().expired_total <= credited


TestLifecycle = Lifecycle.TestCase
TestLifecycle.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
