"""Bike-share: the fourth mode, a plug-in with no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from methodology import QuantifyContext, get_methodology
from methodology.bikeshare import SHENZHEN_DEFAULT
from methodology.factors import FactorError, factor_set

T0 = datetime(2026, 5, 1, 8, tzinfo=UTC)


def _ride(distance_m: int, minutes: float) -> dict[str, object]:
    return {"distance_m": distance_m, "started_at": T0,
            "ended_at": T0 + timedelta(minutes=minutes)}


def _quantify(distance_m: int, minutes: float) -> tuple[int, str, int]:
    q = get_methodology("bikeshare").quantify(_ride(distance_m, minutes), SHENZHEN_DEFAULT,
                                              QuantifyContext())
    return q.avoided_ug, q.explanation["distance_source"], q.explanation["distance_m"]


def test_a_plausible_ride_is_credited_at_93_3_g_per_km() -> None:
    ug, source, distance = _quantify(3000, 15)  # 12 km/h
    assert (source, distance) == ("operator_record", 3000)
    assert ug == 279_900_000  # 93.3 g x 3 km


def test_a_ride_faster_than_the_speed_bound_is_cut_to_it() -> None:
    ug, source, distance = _quantify(10_000, 12)  # 50 km/h claimed
    assert source == "operator_record_capped_at_max_speed"
    assert distance == 5000  # 25 km/h x 12 min
    assert ug == 466_500_000


def test_a_ride_longer_than_the_maximum_is_cut_to_it() -> None:
    _ug, source, distance = _quantify(50_000, 180)
    assert (source, distance) == ("operator_record_capped_at_max_trip", 20_000)


def test_a_set_without_its_bounds_is_refused() -> None:
    bare = factor_set("bikeshare", "x", "v", "net", *[
        f for f in SHENZHEN_DEFAULT.factors.values() if f.name == "net_g_per_pkm"])
    with pytest.raises(FactorError):
        get_methodology("bikeshare").check_factors(bare)
    get_methodology("bikeshare").check_factors(SHENZHEN_DEFAULT)
