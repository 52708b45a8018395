from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from methodology import Factor, QuantifyContext, get_methodology
from methodology.factors import FactorError, factor_set

STEPS = get_methodology("steps")
SZ = STEPS.default_factors("shenzhen")
DAY = date(2024, 5, 6)


def _post(steps: int, day: date = DAY) -> dict[str, Any]:
    return {"date": day, "steps": steps}


def _after(previous: int) -> QuantifyContext:
    return QuantifyContext(previous_quantity=previous)


def test_steps_is_a_cumulative_mode_without_a_network() -> None:
    assert STEPS.mode == "steps"
    assert STEPS.cumulative is True
    assert STEPS.network_mode is None


def test_first_post_of_the_day_credits_every_step() -> None:
    q = STEPS.quantify(_post(10_000), SZ, _after(0))
    assert q.avoided_ug == 200_000_000  # 0.02 g x 10,000 = 200 g
    assert q.quantity == 10_000
    assert q.explanation["increase_steps"] == 10_000
    assert q.explanation["previous_steps"] == 0
    assert q.explanation["inputs"] == {"date": "2024-05-06", "steps": 10_000}
    assert q.explanation["factor_g_per_step"] == "0.02"
    assert "= 200 g" in q.explanation["formula"]


def test_later_post_credits_only_the_increase() -> None:
    q = STEPS.quantify(_post(12_345), SZ, _after(10_000))
    assert q.avoided_ug == 2_345 * 20_000
    assert q.explanation["increase_steps"] == 2_345
    assert q.explanation["previous_steps"] == 10_000
    assert q.quantity == 12_345


def test_repeating_the_same_count_credits_nothing() -> None:
    assert STEPS.quantify(_post(8_000), SZ, _after(8_000)).avoided_ug == 0


def test_lower_count_credits_zero_never_negative() -> None:
    q = STEPS.quantify(_post(3_000), SZ, _after(8_000))
    assert q.avoided_ug == 0
    assert q.explanation["increase_steps"] == 0


def test_step_factor_comes_from_the_factor_set() -> None:
    fs = factor_set("steps", "c", "v", "net",
                    Factor("g_per_step", Decimal("0.0627"), "g CO2/step", "Carbonstop 2020"))
    assert STEPS.quantify(_post(1_000), fs, _after(0)).avoided_ug == 62_700_000


def test_step_factor_missing_from_the_set_is_a_factor_error() -> None:
    fs = factor_set("steps", "c", "v", "net")
    with pytest.raises(FactorError, match="g_per_step"):
        STEPS.quantify(_post(1_000), fs, _after(0))


def test_daily_cap_is_296_g_in_micrograms() -> None:
    assert STEPS.daily_cap_ug(SZ) == 296_000_000


def test_daily_cap_follows_the_factor_set_and_may_be_absent() -> None:
    per_step = Factor("g_per_step", Decimal("0.02"), "g CO2/step", "policy", policy=True)
    cap = Factor("daily_cap_g", Decimal("150.5"), "g CO2/day", "policy", policy=True)
    assert STEPS.daily_cap_ug(factor_set("steps", "c", "v", "net", per_step, cap)) == 150_500_000
    assert STEPS.daily_cap_ug(factor_set("steps", "c", "v", "net", per_step)) is None


def test_the_methodology_itself_does_not_apply_the_cap() -> None:
    # 20,000 steps = 400 g > 296 g: the service caps, the quantification stays exact.
    assert STEPS.quantify(_post(20_000), SZ, _after(0)).avoided_ug == 400_000_000


def test_occurred_at_is_local_midnight_of_the_date() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    at = STEPS.occurred_at(_post(100), tz)
    assert at == datetime(2024, 5, 6, 0, 0, tzinfo=tz)
    assert at.astimezone(UTC) == datetime(2024, 5, 5, 16, 0, tzinfo=UTC)
    assert at.utcoffset() is not None
    assert at.astimezone(tz).date() == DAY
    assert at.astimezone(tz).time() == time(0)


def test_occurred_at_uses_the_days_own_offset_across_daylight_saving() -> None:
    tz = ZoneInfo("America/New_York")
    winter = STEPS.occurred_at(_post(1, date(2024, 1, 15)), tz)
    summer = STEPS.occurred_at(_post(1, date(2024, 7, 15)), tz)
    assert winter.astimezone(UTC).hour == 5
    assert summer.astimezone(UTC).hour == 4


def test_occurred_at_stays_on_the_date_where_midnight_is_skipped() -> None:
    # Chile springs forward at 00:00 on 2024-09-08: that day has no 00:00.
    tz = ZoneInfo("America/Santiago")
    day = date(2024, 9, 8)
    assert STEPS.occurred_at(_post(1, day), tz).astimezone(tz).date() == day
