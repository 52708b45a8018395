from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from carbon_credits.networks import demo_network
from methodology import (
    Line,
    MethodologyInputError,
    QuantifyContext,
    Station,
    TransitNetwork,
    get_methodology,
)
from methodology.factors import PROJECT_FACTOR, Factor, factor_set
from methodology.quantity import whole_grams
from tests.unit import nets

METRO = get_methodology("metro")
SZ = METRO.default_factors("shenzhen")


def _trip(entry: str, exit_: str) -> dict[str, Any]:
    return {"entry_station_id": entry, "exit_station_id": exit_, "started_at": nets.STARTED}


@pytest.fixture(scope="module")
def ctx() -> QuantifyContext:
    return QuantifyContext(network=nets.network())


def test_metro_is_a_per_trip_network_mode_without_own_cap() -> None:
    assert METRO.mode == "metro"
    assert METRO.network_mode == "metro"
    assert METRO.cumulative is False
    assert METRO.daily_cap_ug(SZ) is None


def test_metro_trip_is_factor_times_shortest_distance(ctx: QuantifyContext) -> None:
    q = METRO.quantify(_trip("A", "C"), SZ, ctx)
    # 46.8 g/pkm x 3.000 km (with the transfer at X) = 140.4 g.
    assert q.avoided_ug == 140_400_000
    assert q.quantity == 3000
    assert q.explanation["distance_m"] == 3000
    assert q.explanation["distance_source"] == "network_shortest_path"
    assert q.explanation["avoided_ug"] == 140_400_000
    assert q.explanation["factor_g_per_pkm"] == "46.8"
    assert q.explanation["factor_kind"] == "net"
    assert q.explanation["network"] == {"city": "testcity", "version": "t-1"}
    assert q.explanation["inputs"] == {"entry_station_id": "A", "exit_station_id": "C"}
    assert "140400000 ug = 140 g" in q.explanation["formula"]
    assert q.explanation["factors"] == [f.to_dict() for f in SZ.factors.values()]


def test_metro_trip_of_8038_m_earns_376_g() -> None:
    stations = [Station(s, s, 0, 0) for s in ("p", "q")]
    net = TransitNetwork("c", "v", stations, [Line("m", "metro", "m", ("p", "q"),
                                                        (0, 8038))])
    q = METRO.quantify(_trip("p", "q"), SZ, QuantifyContext(network=net))
    assert q.avoided_ug == 376_178_400
    assert whole_grams(q.avoided_ug) == 376


def test_metro_trip_is_the_same_both_ways(ctx: QuantifyContext) -> None:
    there = METRO.quantify(_trip("B", "D"), SZ, ctx)
    back = METRO.quantify(_trip("D", "B"), SZ, ctx)
    assert there.avoided_ug == back.avoided_ug > 0


def test_metro_trip_may_name_platforms_or_the_parent_station(ctx: QuantifyContext) -> None:
    by_platform = METRO.quantify(_trip("X2", "C"), SZ, ctx)
    by_station = METRO.quantify(_trip("X", "C"), SZ, ctx)
    assert by_platform.quantity == by_station.quantity == 2000


def test_metro_trip_entering_and_leaving_at_one_station_avoids_nothing(
    ctx: QuantifyContext,
) -> None:
    q = METRO.quantify(_trip("X1", "X2"), SZ, ctx)
    assert q.avoided_ug == 0
    assert q.quantity == 0


def test_metro_uses_a_baseline_factor_set_through_its_net_value(ctx: QuantifyContext) -> None:
    fs = factor_set("metro", "c", "b", "baseline",
                    Factor("baseline_car_g_per_pkm", Decimal("100"), "g", "s"),
                    Factor("baseline_car_share", Decimal("1"), "1", "s"),
                    Factor(PROJECT_FACTOR, Decimal("40"), "g", "s"))
    q = METRO.quantify(_trip("A", "C"), fs, ctx)
    assert q.avoided_ug == 60 * 3000 * 1000
    assert q.explanation["factor_kind"] == "baseline"


@pytest.mark.parametrize(("entry", "exit_", "field"), [
    ("nowhere", "C", "entry_station_id"),
    ("A", "nowhere", "exit_station_id"),
    ("s1", "C", "entry_station_id"),  # a bus stop is not a metro station
    ("A", "s1", "exit_station_id"),
])
def test_unknown_or_non_metro_station_names_the_field(
    ctx: QuantifyContext, entry: str, exit_: str, field: str,
) -> None:
    with pytest.raises(MethodologyInputError) as exc:
        METRO.quantify(_trip(entry, exit_), SZ, ctx)
    assert exc.value.field == field


def test_unreachable_exit_names_the_exit_field() -> None:
    stations = [Station(s, s, 0, 0) for s in "abcd"]
    lines = [Line("m1", "metro", "1", ("a", "b"), (0, 100)),
             Line("m2", "metro", "2", ("c", "d"), (0, 100))]
    ctx = QuantifyContext(network=TransitNetwork("c", "v", stations, lines))
    with pytest.raises(MethodologyInputError) as exc:
        METRO.quantify(_trip("a", "d"), SZ, ctx)
    assert exc.value.field == "exit_station_id"


def test_metro_without_a_network_names_the_city() -> None:
    with pytest.raises(MethodologyInputError) as exc:
        METRO.quantify(_trip("A", "C"), SZ, QuantifyContext())
    assert exc.value.field == "city"


def test_metro_trip_occurs_at_its_start_unchanged() -> None:
    started = datetime(2024, 5, 6, 23, 50, tzinfo=timezone(timedelta(hours=8)))
    at = METRO.occurred_at({**_trip("A", "C"), "started_at": started}, ZoneInfo("UTC"))
    assert at == started
    assert at.tzinfo is not None


def test_demo_metro_ride_is_in_the_published_sanity_range() -> None:
    net = TransitNetwork("shenzhen", "v", demo_network.stations(), demo_network.lines())
    q = METRO.quantify(_trip("luohu", "chegongmiao"), SZ, QuantifyContext(network=net))
    # Shenzhen reports about 0.4 kg per ride; a cross-town ride of ~10 km is that order.
    assert 200 <= whole_grams(q.avoided_ug) <= 1000
    assert q.avoided_ug == q.quantity * 46_800
