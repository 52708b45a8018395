"""Campaign decisions (campaigns/rules.py), pure: what counts, when the bonus is due, when
a reversal takes it back; and verify-ledger's rule for 'bonus' entries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from carbon_credits.campaigns import rules
from carbon_credits.ledger.verification import BonusFacts, _kind_problem
from carbon_credits.storage.models import Event, LedgerEntry

NOV = rules.Campaign("metro-nov", "shenzhen", "metro", date(2026, 11, 1), date(2026, 11, 30),
                     goal_events=3, bonus_points=50)
NOW = datetime(2026, 11, 15, tzinfo=UTC)


def trip(**overrides: object) -> rules.Candidate:
    values: dict[str, object] = {"user_id": "u", "city": "shenzhen", "mode": "metro",
                                 "local_date": date(2026, 11, 15), "credited_ug": 376_000_000}
    values.update(overrides)
    return rules.Candidate(**values)  # type: ignore[arg-type]


def test_an_event_counts_only_credited_in_the_city_mode_and_local_window() -> None:
    assert rules.counts(NOV, trip(), NOW)
    assert rules.counts(NOV, trip(local_date=date(2026, 11, 30)), NOW)  # inclusive
    assert not rules.counts(NOV, trip(local_date=date(2026, 12, 1)), NOW)
    assert not rules.counts(NOV, trip(local_date=date(2026, 10, 31)), NOW)
    assert not rules.counts(NOV, trip(mode="bus"), NOW)
    assert not rules.counts(NOV, trip(city="wuhan"), NOW)
    assert not rules.counts(NOV, trip(credited_ug=0), NOW)  # capped to nothing
    any_mode = rules.Campaign(**{**NOV.__dict__, "mode": None})
    assert rules.counts(any_mode, trip(mode="steps"), NOW)
    ended = rules.Campaign(**{**NOV.__dict__, "ended_at": NOW - timedelta(seconds=1)})
    assert not rules.counts(ended, trip(), NOW)


def test_an_eligibility_rule_can_refuse_an_event() -> None:
    def only_team_a(campaign: rules.Campaign, event: rules.Candidate) -> bool:
        return event.user_id.startswith("team-a")

    rules.ELIGIBILITY.append(only_team_a)
    try:
        assert not rules.counts(NOV, trip(), NOW)
        assert rules.counts(NOV, trip(user_id="team-a-1"), NOW)
    finally:
        rules.ELIGIBILITY.remove(only_team_a)


def test_the_goal_pays_once_and_a_reversal_below_it_takes_the_bonus_back() -> None:
    p = rules.Progress("metro-nov", "u")
    assert [rules.count(p, NOV) for _ in range(2)] == [False, False]
    assert rules.count(p, NOV)
    rules.paid(p, NOV)
    assert rules.count(p, NOV) is False  # the fourth trip: no second bonus
    assert rules.uncount(p, NOV) == 0  # still 3 >= goal
    assert rules.uncount(p, NOV) == 50 and (p.state, p.bonus_points) == ("open", 0)


def test_a_goal_met_without_budget_is_unfunded_and_never_paid_later() -> None:
    p = rules.Progress("metro-nov", "u", events=2)
    assert rules.count(p, NOV)
    rules.unfunded(p)
    assert rules.count(p, NOV) is False
    assert rules.uncount(p, NOV) == 0 and rules.uncount(p, NOV) == 0
    assert p.state == "unfunded"


@given(st.lists(st.booleans(), max_size=40), st.integers(1, 5), st.booleans())
def test_the_bonus_held_is_the_bonus_iff_completed_and_never_below_the_goal(
        steps: list[bool], goal: int, budget: bool) -> None:
    campaign = rules.Campaign(**{**NOV.__dict__, "goal_events": goal})
    p = rules.Progress(campaign.id, "u")
    held = 0  # what the bonus entries add up to
    for add in steps:
        if add:
            if rules.count(p, campaign):
                if budget:
                    rules.paid(p, campaign)
                    held += campaign.bonus_points
                else:
                    rules.unfunded(p)
        elif p.events > 0:  # only a counted event can be reversed
            held -= rules.uncount(p, campaign)
        assert held == p.bonus_points
        assert held in (0, campaign.bonus_points)
        assert (p.state == "completed") == (held > 0)
        if p.state == "completed":
            assert p.events >= goal


def _bonus(points: int, **more: object) -> LedgerEntry:
    return LedgerEntry(user_id="u", seq=4, kind="bonus", points=points,
                       ug=more.pop("ug", 0), balance_after=points, **more)


def test_verify_accepts_a_bonus_entry_only_as_its_campaign_bonus_wrote_it() -> None:
    assert _kind_problem(_bonus(50), None, None, None, BonusFacts(50)) is None
    assert _kind_problem(_bonus(-50), None, None, None, BonusFacts(-50)) is None
    assert "forged" in str(_kind_problem(_bonus(50), None, None, None, None))
    assert "forged" in str(_kind_problem(_bonus(60), None, None, None, BonusFacts(50)))
    assert "grams" in str(_kind_problem(_bonus(50, ug=1), None, None, None, BonusFacts(50)))
    event = Event(id=7, user_id="u", event_id="e", status="credited", points=3,
                  credited_ug=3_000_000)
    assert "grams" in str(_kind_problem(_bonus(50), event, None, None, BonusFacts(50)))
