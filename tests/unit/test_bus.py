from __future__ import annotations

from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from methodology import Factor, MethodologyInputError, QuantifyContext, get_methodology
from methodology.factors import FactorError
from tests.unit import nets

BUS = get_methodology("bus")
SZ = BUS.default_factors("shenzhen")
UG_PER_M = 26_900  # 26.9 g/pkm = 26.9 mg per metre


def _ride(line: str, board: str, alight: str | None = None,
          distance_m: int | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"line_id": line, "board_stop_id": board, "started_at": nets.STARTED}
    if alight is not None:
        event["alight_stop_id"] = alight
    if distance_m is not None:
        event["distance_m"] = distance_m
    return event


@pytest.fixture(scope="module")
def ctx() -> QuantifyContext:
    return QuantifyContext(network=nets.network())


def test_bus_is_a_per_trip_network_mode_without_own_cap() -> None:
    assert BUS.mode == "bus"
    assert BUS.network_mode == "bus"
    assert BUS.cumulative is False
    assert BUS.daily_cap_ug(SZ) is None


def test_both_stops_known_uses_the_distance_along_the_line(ctx: QuantifyContext) -> None:
    q = BUS.quantify(_ride("B1", "s2", "s4"), SZ, ctx)
    assert q.quantity == 1400
    assert q.avoided_ug == 1400 * UG_PER_M == 37_660_000
    assert q.explanation["distance_source"] == "line_between_stops"
    assert q.explanation["line_length_m"] == 3000
    assert q.explanation["inputs"] == {"line_id": "B1", "board_stop_id": "s2",
                                       "alight_stop_id": "s4", "distance_m": None}
    assert "network_limit_m" not in q.explanation


def test_riding_against_the_pattern_direction_counts_the_same(ctx: QuantifyContext) -> None:
    assert BUS.quantify(_ride("B1", "s4", "s2"), SZ, ctx).quantity == 1400


def test_alighting_where_one_boarded_avoids_nothing(ctx: QuantifyContext) -> None:
    q = BUS.quantify(_ride("B1", "s3", "s3"), SZ, ctx)
    assert (q.quantity, q.avoided_ug) == (0, 0)


def test_loop_line_credits_the_ride_to_the_terminus_not_back_around(
    ctx: QuantifyContext,
) -> None:
    q = BUS.quantify(_ride("LOOP", "w3", "w1"), SZ, ctx)
    assert q.quantity == 1000


def test_boarding_may_name_the_parent_station_of_the_listed_platform(
    ctx: QuantifyContext,
) -> None:
    q = BUS.quantify(_ride("HUBLINE", "hub", "s1"), SZ, ctx)
    assert q.quantity == 700


def test_reported_distance_below_the_stops_distance_is_used(ctx: QuantifyContext) -> None:
    q = BUS.quantify(_ride("B1", "s1", "s5", distance_m=2500), SZ, ctx)
    assert q.quantity == 2500
    assert q.avoided_ug == 2500 * UG_PER_M
    assert q.explanation["distance_source"] == "reported"
    assert q.explanation["network_limit_m"] == 3000


def test_reported_distance_equal_to_the_limit_is_used_as_reported(
    ctx: QuantifyContext,
) -> None:
    q = BUS.quantify(_ride("B1", "s1", "s5", distance_m=3000), SZ, ctx)
    assert q.quantity == 3000
    assert q.explanation["distance_source"] == "reported"


def test_reported_distance_above_the_stops_distance_is_capped(ctx: QuantifyContext) -> None:
    q = BUS.quantify(_ride("B1", "s2", "s4", distance_m=5000), SZ, ctx)
    assert q.quantity == 1400
    assert q.explanation["distance_source"] == "reported_capped_at_line_between_stops"
    assert q.explanation["network_limit_m"] == 1400


def test_tap_on_reported_distance_below_the_farthest_ride_is_used(
    ctx: QuantifyContext,
) -> None:
    # From s4 the longest possible ride is back to s1: 1800 m.
    q = BUS.quantify(_ride("B1", "s4", distance_m=1000), SZ, ctx)
    assert q.quantity == 1000
    assert q.explanation["distance_source"] == "reported"
    assert q.explanation["network_limit_m"] == 1800


def test_tap_on_reported_distance_above_the_farthest_ride_is_capped(
    ctx: QuantifyContext,
) -> None:
    q = BUS.quantify(_ride("B1", "s4", distance_m=2500), SZ, ctx)
    assert q.quantity == 1800
    assert q.explanation["distance_source"] == "reported_capped_at_line_farthest_from_board"


def test_tap_on_reported_distance_wins_over_the_line_average(ctx: QuantifyContext) -> None:
    q = BUS.quantify(_ride("B1", "s1", distance_m=300), SZ, ctx)
    assert q.quantity == 300
    assert q.explanation["distance_source"] == "reported"


def test_reported_zero_distance_avoids_nothing(ctx: QuantifyContext) -> None:
    q = BUS.quantify(_ride("B1", "s1", "s5", distance_m=0), SZ, ctx)
    assert (q.quantity, q.avoided_ug) == (0, 0)
    assert q.explanation["distance_source"] == "reported"


def test_tap_on_only_uses_the_line_average_trip(ctx: QuantifyContext) -> None:
    q = BUS.quantify(_ride("B1", "s1"), SZ, ctx)
    assert q.quantity == 1200
    assert q.avoided_ug == 1200 * UG_PER_M
    assert q.explanation["distance_source"] == "line_average_trip"


def test_line_average_is_capped_by_the_farthest_ride_from_the_stop(
    ctx: QuantifyContext,
) -> None:
    # B4's average (5000) exceeds anything possible from v2 (1000 either way).
    q = BUS.quantify(_ride("B4", "v2"), SZ, ctx)
    assert q.quantity == 1000
    assert q.explanation["distance_source"] == "line_average_trip"


def test_tap_on_without_line_average_uses_the_city_default(ctx: QuantifyContext) -> None:
    q = BUS.quantify(_ride("B2", "t1"), SZ, ctx)
    assert q.quantity == 3000
    assert q.avoided_ug == 3000 * UG_PER_M == 80_700_000
    assert q.explanation["distance_source"] == "city_default_trip"


def test_city_default_is_capped_by_the_farthest_ride_from_the_stop(
    ctx: QuantifyContext,
) -> None:
    # B3 from u2: at most 800 m (to u1), less than the 3000 m default.
    q = BUS.quantify(_ride("B3", "u2"), SZ, ctx)
    assert q.quantity == 800
    assert q.explanation["distance_source"] == "city_default_trip"


def test_city_default_comes_from_the_factor_set(ctx: QuantifyContext) -> None:
    fs = nets.net_factors("bus", "26.9",
                          Factor("default_trip_m", Decimal("2000"), "m", "policy", policy=True))
    assert BUS.quantify(_ride("B2", "t1"), fs, ctx).quantity == 2000


def test_city_default_missing_from_the_factor_set_is_a_factor_error(
    ctx: QuantifyContext,
) -> None:
    fs = nets.net_factors("bus", "26.9")
    with pytest.raises(FactorError, match="default_trip_m"):
        BUS.quantify(_ride("B2", "t1"), fs, ctx)
    # ... but rides that do not need the default are still quantified.
    assert BUS.quantify(_ride("B2", "t1", "t3"), fs, ctx).quantity == 5000


def test_bus_factor_comes_from_the_factor_set(ctx: QuantifyContext) -> None:
    fs = nets.net_factors("bus", "10", *[f for f in SZ.factors.values()
                                         if f.name == "default_trip_m"])
    q = BUS.quantify(_ride("B1", "s2", "s4"), fs, ctx)
    assert q.avoided_ug == 1400 * 10_000
    assert q.explanation["factor_g_per_pkm"] == "10"


@pytest.mark.parametrize(("event", "field"), [
    (_ride("nope", "s1", "s2"), "line_id"),
    (_ride("M1", "A", "C"), "line_id"),  # a metro line is not a bus line
    (_ride("B1", "t1", "s2"), "board_stop_id"),  # a real stop, on another line
    (_ride("B1", "nowhere", "s2"), "board_stop_id"),
    (_ride("B1", "s1", "t2"), "alight_stop_id"),
    (_ride("B1", "s1", "nowhere"), "alight_stop_id"),
    (_ride("B1", "t1"), "board_stop_id"),  # tap-on only, stop not on the line
    (_ride("B1", "t1", distance_m=100), "board_stop_id"),
])
def test_unknown_line_or_stop_names_the_field(
    ctx: QuantifyContext, event: dict[str, Any], field: str,
) -> None:
    with pytest.raises(MethodologyInputError) as exc:
        BUS.quantify(event, SZ, ctx)
    assert exc.value.field == field
    assert exc.value.message


def test_bus_without_a_network_names_the_city() -> None:
    with pytest.raises(MethodologyInputError) as exc:
        BUS.quantify(_ride("B1", "s1", "s2"), SZ, QuantifyContext())
    assert exc.value.field == "city"


def test_bus_ride_occurs_at_its_start() -> None:
    assert BUS.occurred_at(_ride("B1", "s1"), ZoneInfo("Asia/Shanghai")) == nets.STARTED
