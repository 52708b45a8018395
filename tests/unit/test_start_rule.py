"""When a new factor version may start (tuning/factor_versions.py, ``start_rule``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carbon_credits.errors import InvalidInput
from carbon_credits.tuning.factor_versions import FIRST_VERSION, LATER_VERSION, start_rule

NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)  # 12:00 on the 1st in Shenzhen
LEAD = 360  # clock skew 300 s + margin 60 s
LATEST = ("v1", NOW + timedelta(days=2))


@pytest.mark.parametrize("start", [
    NOW - timedelta(hours=12),  # the launch day's midnight: that morning's trips credited
    NOW - timedelta(days=400),
    NOW,
    NOW + timedelta(seconds=1),  # inside the lead: nothing was priced, nothing can change
    NOW + timedelta(days=30),
])
def test_a_first_version_before_any_event_may_start_at_any_time(start: datetime) -> None:
    assert start_rule(start, NOW, LEAD, None, events_exist=False) == FIRST_VERSION


@pytest.mark.parametrize("start, latest, events, code", [
    (NOW - timedelta(hours=12), None, True, "past_effective_date"),
    (NOW + timedelta(seconds=60), None, True, "effective_date_too_soon"),
    (NOW - timedelta(hours=12), LATEST, False, "past_effective_date"),
    (NOW, LATEST, False, "past_effective_date"),
    (NOW + timedelta(seconds=LEAD - 1), LATEST, False, "effective_date_too_soon"),
    (LATEST[1], LATEST, False, "overlapping_effective_date"),
    (LATEST[1] - timedelta(hours=1), LATEST, True, "overlapping_effective_date"),
])
def test_otherwise_a_version_starts_ahead_and_after_the_latest(
        start: datetime, latest: tuple[str, datetime] | None, events: bool, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        start_rule(start, NOW, LEAD, latest, events_exist=events)
    assert refused.value.code == code and "effective_from" in refused.value.fields


@pytest.mark.parametrize("latest, events", [(None, True), (LATEST, False), (LATEST, True)])
def test_a_later_version_far_enough_ahead_is_admitted_by_the_later_rule(
        latest: tuple[str, datetime] | None, events: bool) -> None:
    start = NOW + timedelta(days=3)
    assert start_rule(start, NOW, LEAD, latest, events_exist=events) == LATER_VERSION
    if latest is None:  # the lead's edge: exactly LEAD seconds ahead is enough
        assert start_rule(NOW + timedelta(seconds=LEAD), NOW, LEAD, None, True) == LATER_VERSION
