"""The plausibility rules as pure functions: each trips, and honest facts pass."""

from __future__ import annotations

import pytest

from carbon_credits.antifraud.plausibility import Facts, Policy, judge
from carbon_credits.config import Config, ConfigError

P = Policy()


@pytest.mark.parametrize("facts, code", [
    (Facts("metro", distance_m=8000, duration_s=120), "speed_out_of_bounds"),   # 240 km/h
    (Facts("metro", distance_m=8000, duration_s=3 * 3600), "speed_out_of_bounds"),  # 2.7
    (Facts("metro", distance_m=8000, duration_s=0), "speed_out_of_bounds"),
    (Facts("bus", distance_m=10_000, duration_s=300), "speed_out_of_bounds"),   # 120 km/h
    (Facts("metro", overlapping_event_ids=("a",)), "overlapping_trip"),
    (Facts("bus", trips_today=16), "too_many_trips"),
    (Facts("steps", steps=9000, steps_increase=4000, minutes_since_last_post=2),
     "steps_too_fast"),
    (Facts("steps", steps=70_000, steps_increase=100, minutes_since_last_post=600),
     "steps_over_daily_ceiling"),
    (Facts("metro", accounts_on_device=4), "device_on_many_accounts"),
    (Facts("steps", user_frozen=True), "user_frozen"),
])
def test_each_rule_trips_on_implausible_facts(facts: Facts, code: str) -> None:
    verdict = judge(P, facts)
    assert [h.code for h in verdict.hits] == [code]
    assert verdict.outcome == P.outcomes[code] and verdict.reason == code


@pytest.mark.parametrize("facts", [
    Facts("metro", distance_m=8000, duration_s=25 * 60, trips_today=3),
    Facts("bus", distance_m=6000, duration_s=30 * 60, trips_today=15),
    Facts("bus", distance_m=6000, duration_s=None),  # tap-on only: no duration to judge
    Facts("steps", steps=12_000, steps_increase=6000, minutes_since_last_post=60),
    Facts("steps", steps=60_000, steps_increase=0, minutes_since_last_post=0),
    Facts("metro", accounts_on_device=3),
    Facts("bikeshare", distance_m=3000, duration_s=60),  # bounded by its own methodology
])
def test_honest_facts_pass(facts: Facts) -> None:
    verdict = judge(P, facts)
    assert verdict.hits == () and verdict.outcome == "credit" and verdict.reason is None


def test_on_a_closed_day_a_late_higher_count_is_judged_by_the_ceiling_only() -> None:
    """Yesterday's 8,000 steps synced a minute after its 5,000: a late sync, not a sprint."""
    late = Facts("steps", steps=8000, steps_increase=3000, minutes_since_last_post=1)
    assert [h.code for h in judge(P, late).hits] == ["steps_too_fast"]  # the day still open
    closed = Facts("steps", steps=8000, steps_increase=3000, minutes_since_last_post=1,
                   day_closed=True)
    assert judge(P, closed).hits == () and judge(P, closed).outcome == "credit"
    over = Facts("steps", steps=70_000, steps_increase=62_000, minutes_since_last_post=1,
                 day_closed=True)
    assert [h.code for h in judge(P, over).hits] == ["steps_over_daily_ceiling"]


def test_the_strongest_outcome_decides_and_names_its_rule() -> None:
    verdict = judge(P, Facts("metro", distance_m=8000, duration_s=60,
                             overlapping_event_ids=("x",)))
    assert verdict.outcome == "reject" and verdict.reason == "overlapping_trip"
    assert {h.code for h in verdict.hits} == {"speed_out_of_bounds", "overlapping_trip"}


def test_thresholds_and_outcomes_are_configurable_from_the_environment(tmp_path: object
                                                                       ) -> None:
    from pathlib import Path
    cfg = Config.from_env(Path(str(tmp_path)), {
        "PLAUSIBILITY_LIMITS": "metro_max_kmh=300,max_trips_per_day=40",
        "PLAUSIBILITY_OUTCOMES": "overlapping_trip=hold,speed_out_of_bounds=credit"})
    policy = cfg.plausibility
    assert (policy.metro_max_kmh, policy.max_trips_per_day) == (300.0, 40)
    assert policy.outcomes["overlapping_trip"] == "hold"
    verdict = judge(policy, Facts("metro", distance_m=8000, duration_s=30))  # 960 km/h
    assert verdict.outcome == "credit" and verdict.hits[0].code == "speed_out_of_bounds"


@pytest.mark.parametrize("env", [
    {"PLAUSIBILITY_LIMITS": "no_such_limit=1"},
    {"PLAUSIBILITY_LIMITS": "metro_max_kmh=fast"},
    {"PLAUSIBILITY_OUTCOMES": "overlapping_trip=ban"},
    {"PLAUSIBILITY_OUTCOMES": "no_such_rule=hold"},
])
def test_bad_plausibility_settings_fail_at_start_up(env: dict[str, str], tmp_path: object
                                                    ) -> None:
    from pathlib import Path
    with pytest.raises(ConfigError):
        Config.from_env(Path(str(tmp_path)), env)
