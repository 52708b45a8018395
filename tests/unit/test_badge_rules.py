"""The badge rule language, pure: validation names where a rule is wrong; evaluation over
a user's history as of one event; which event earns a badge."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbon_credits.account.earning import Ledger, earned
from carbon_credits.badges import rules
from carbon_credits.badges.awards import ActiveBadge
from carbon_credits.badges.catalogue import DEMO_BADGES

MONDAY = date(2026, 11, 30)


class Trip:
    def __init__(self, day: date, mode: str, activity: int = 5000) -> None:
        self.local_date, self.mode, self.activity = day, mode, activity


def _badge(rule: dict[str, Any], badge_id: int = 1) -> ActiveBadge:
    return ActiveBadge(badge_id, 1, rules.validate(rule))


def _first_earner(rule: dict[str, Any], trips: list[Trip]) -> int | None:
    won = list(earned(Ledger(), trips, [_badge(rule)]))
    return trips.index(won[0][0]) if won else None


def test_the_demo_badges_are_ten_valid_rules_with_both_names() -> None:
    assert len(DEMO_BADGES) == 10
    for badge in DEMO_BADGES:
        rules.validate(badge["rule"])
        assert badge["name"]["zh"] and badge["name"]["en"]


@pytest.mark.parametrize(("rule", "path"), [
    ([], "rule"),
    ({"kind": "distance", "km": 0}, "rule.km"),
    ({"kind": "distance", "km": 10, "modes": ["steps"]}, "rule.modes"),
    ({"kind": "streak", "days": True}, "rule.days"),
    ({"kind": "trips", "count": 3, "period": "week", "colour": "red"}, "rule.colour"),
    ({"any": []}, "rule.any"),
    ({"all": [{"kind": "streak", "days": 2}], "kind": "streak"}, "rule"),
])
def test_validation_names_the_wrong_part(rule: Any, path: str) -> None:
    with pytest.raises(rules.RuleError) as caught:
        rules.validate(rule)
    assert caught.value.path == path


def test_first_trip_is_earned_by_the_first_trip_of_its_mode() -> None:
    trips = [Trip(MONDAY, "bus"), Trip(MONDAY, "metro"), Trip(MONDAY, "metro")]
    assert _first_earner({"kind": "first_trip", "mode": "metro"}, trips) == 1


def test_distance_counts_trip_modes_only() -> None:
    trips = [Trip(MONDAY, "steps", 90_000), Trip(MONDAY, "metro", 60_000),
             Trip(MONDAY, "bus", 40_000)]
    assert _first_earner({"kind": "distance", "km": 100}, trips) == 2


def test_modes_in_week_resets_on_monday() -> None:
    trips = [Trip(MONDAY - timedelta(days=1), "bus"), Trip(MONDAY, "metro"),
             Trip(MONDAY, "steps"), Trip(MONDAY + timedelta(days=6), "bus")]
    assert _first_earner({"kind": "modes_in_week", "count": 3}, trips) == 3


def test_trips_in_a_period() -> None:
    trips = [Trip(MONDAY + timedelta(days=n), "metro") for n in range(5)]
    assert _first_earner({"kind": "trips", "mode": "metro", "count": 3, "period": "week"},
                         trips) == 2
    assert _first_earner({"kind": "trips", "count": 2, "period": "day"}, trips) is None


def test_a_streak_closed_by_a_late_posted_day_is_earned_by_that_day() -> None:
    trips = [Trip(MONDAY + timedelta(days=n), "metro") for n in (0, 1, 3, 4, 2)]
    assert _first_earner({"kind": "streak", "days": 5}, trips) == 4


@given(st.lists(st.tuples(st.integers(0, 20), st.sampled_from(["bus", "metro", "steps"]),
                          st.integers(0, 30_000)), max_size=40),
       st.sampled_from([b["rule"] for b in DEMO_BADGES]
                       + [{"kind": "trips", "count": 4, "period": "all"},
                          {"any": [{"kind": "streak", "days": 3},
                                   {"kind": "distance", "km": 50}]}]))
def test_a_badge_is_earned_once_by_the_first_event_after_which_its_rule_holds(
        raw: list[tuple[int, str, int]], rule: dict[str, Any]) -> None:
    """In any order of posting (days out of order included): at most one award, by the
    first event as of which the rule holds, and none if it never does."""
    trips = [Trip(MONDAY + timedelta(days=d), mode, act) for d, mode, act in raw]
    won = list(earned(Ledger(), trips, [_badge(rule)]))
    assert len(won) <= 1
    ledger = Ledger()
    holding = []
    for trip in trips:
        ledger.add(trip)
        holding.append(rules.holds(rule, ledger.facts(trip.local_date)))
    if won:
        at = trips.index(won[0][0])
        assert holding[at] and not any(holding[:at])
    else:
        assert not any(holding)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5000) | st.floats(allow_nan=False)
    | st.sampled_from(["metro", "bus", "steps", "day", "week", "all", "any", "streak",
                       "trips", "distance", "kind", "x"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["kind", "mode", "modes", "km", "days", "count", "period", "all",
                         "any", "x"]), inner, max_size=4),
    max_leaves=20)


@given(JSON)
def test_any_json_is_a_rule_or_a_rule_error(value: Any) -> None:
    """What an admin may send never breaks validation with anything but a RuleError, and
    a rule that passes evaluates."""
    try:
        rule = rules.validate(value)
    except rules.RuleError as exc:
        assert exc.path.startswith("rule")
        return
    assert isinstance(rules.holds(rule, rules.Facts()), bool)
    assert rules.streak_reach(rule) >= 0
