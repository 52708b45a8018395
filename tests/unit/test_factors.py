from __future__ import annotations

import json
from decimal import Decimal

import pytest

from methodology import METHODOLOGIES, get_methodology
from methodology.factors import (
    NET_FACTOR,
    PROJECT_FACTOR,
    Factor,
    FactorError,
    FactorSet,
    factor_set,
)


def _f(name: str, value: str, unit: str = "g CO2/person-km") -> Factor:
    return Factor(name, Decimal(value), unit, "test source")


def _baseline(*, project: str = "20", car_share: str = "0.6") -> FactorSet:
    return factor_set(
        "bus", "testcity", "b-1", "baseline",
        _f("baseline_car_g_per_pkm", "150"),
        _f("baseline_car_share", car_share, "1"),
        _f("baseline_taxi_g_per_pkm", "180"),
        _f("baseline_taxi_share", "0.3", "1"),
        _f("baseline_ridehail_g_per_pkm", "160"),
        _f("baseline_ridehail_share", "0.1", "1"),
        _f(PROJECT_FACTOR, project),
    )


def test_net_set_returns_its_net_factor() -> None:
    fs = factor_set("metro", "c", "v", "net", _f(NET_FACTOR, "46.8"))
    assert fs.net_g_per_pkm() == Decimal("46.8")


def test_baseline_set_net_is_share_weighted_baseline_minus_project() -> None:
    # 0.6 x 150 + 0.3 x 180 + 0.1 x 160 = 160; minus project 20 = 140.
    assert _baseline().net_g_per_pkm() == Decimal("140")


def test_baseline_set_dirtier_project_avoids_nothing() -> None:
    assert _baseline(project="200").net_g_per_pkm() == Decimal("0")


def test_baseline_shares_must_sum_to_exactly_one() -> None:
    with pytest.raises(FactorError, match="sum to exactly 1"):
        _baseline(car_share="0.59")
    with pytest.raises(FactorError, match="sum to exactly 1"):
        _baseline(car_share="0.61")


def test_baseline_set_without_shares_is_refused() -> None:
    with pytest.raises(FactorError):
        factor_set("bus", "c", "v", "baseline", _f(PROJECT_FACTOR, "20"))


def test_baseline_set_without_project_factor_is_refused() -> None:
    with pytest.raises(FactorError, match=PROJECT_FACTOR):
        factor_set("bus", "c", "v", "baseline",
                   _f("baseline_car_g_per_pkm", "150"), _f("baseline_car_share", "1", "1"))


def test_baseline_share_without_its_emission_factor_is_refused_at_construction() -> None:
    with pytest.raises(FactorError, match="baseline_car_g_per_pkm"):
        factor_set("bus", "c", "v", "baseline",
                   _f("baseline_car_share", "1", "1"), _f(PROJECT_FACTOR, "20"))


def test_negative_factor_is_refused() -> None:
    with pytest.raises(FactorError, match="negative"):
        factor_set("metro", "c", "v", "net", _f(NET_FACTOR, "-0.1"))


@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_non_finite_factor_is_refused(value: str) -> None:
    with pytest.raises(FactorError):
        factor_set("metro", "c", "v", "net", _f(NET_FACTOR, value))


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(FactorError, match="kind"):
        FactorSet("metro", "c", "v", "gross", {})  # type: ignore[arg-type]
    data = factor_set("metro", "c", "v", "net", _f(NET_FACTOR, "1")).to_dict()
    data["kind"] = "gross"
    with pytest.raises(FactorError, match="kind"):
        FactorSet.from_dict(data)


def test_missing_factor_names_the_factor() -> None:
    fs = factor_set("metro", "c", "v", "net", _f(NET_FACTOR, "1"))
    with pytest.raises(FactorError, match="default_trip_m"):
        fs.value("default_trip_m")
    assert fs.optional("default_trip_m") is None
    assert fs.optional(NET_FACTOR) == Decimal("1")


def test_net_set_without_net_factor_has_no_per_km_factor() -> None:
    fs = factor_set("steps", "c", "v", "net", _f("g_per_step", "0.02", "g CO2/step"))
    with pytest.raises(FactorError, match=NET_FACTOR):
        fs.net_g_per_pkm()


@pytest.mark.parametrize("fs", [
    _baseline(),
    factor_set("metro", "c", "v", "net", _f(NET_FACTOR, "46.80")),
    *(m.default_factors("shenzhen") for m in METHODOLOGIES.values()),
], ids=lambda fs: f"{fs.mode}-{fs.kind}")
def test_factor_set_round_trips_through_json(fs: FactorSet) -> None:
    data = json.loads(json.dumps(fs.to_dict(), ensure_ascii=False))
    back = FactorSet.from_dict(data)
    assert back == fs
    assert back.to_dict() == fs.to_dict()
    # Trailing zeros survive: the stored value is the published text.
    assert [str(f.value) for f in back.factors.values()] == [
        str(f.value) for f in fs.factors.values()]


def test_factor_round_trip_keeps_the_policy_flag() -> None:
    f = Factor("default_trip_m", Decimal("3000"), "m", "operator policy", policy=True)
    assert Factor.from_dict(f.to_dict()) == f
    legacy = {"name": "x", "value": "1.5", "unit": "g", "source": "s"}
    assert Factor.from_dict(legacy).policy is False


def test_every_registered_methodology_is_reachable_by_its_mode() -> None:
    assert set(METHODOLOGIES) == {"bus", "metro", "steps", "bikeshare"}
    for mode, method in METHODOLOGIES.items():
        assert get_methodology(mode) is method
        assert method.mode == mode
    with pytest.raises(KeyError):
        get_methodology("teleport")


@pytest.mark.parametrize("mode", sorted(METHODOLOGIES))
def test_every_default_factor_names_a_source_and_unit(mode: str) -> None:
    fs = get_methodology(mode).default_factors("shenzhen")
    assert fs.mode == mode
    assert fs.factors
    for name, f in fs.factors.items():
        assert f.name == name
        assert f.source.strip(), f"{mode}/{name} has no source"
        assert f.unit.strip(), f"{mode}/{name} has no unit"
        # A policy value says so in its source; a published one does not claim to be policy.
        assert f.policy == ("policy" in f.source.lower()), f"{mode}/{name} policy flag"


def test_published_and_policy_defaults_are_the_documented_values() -> None:
    metro = get_methodology("metro").default_factors("shenzhen")
    bus = get_methodology("bus").default_factors("shenzhen")
    steps = get_methodology("steps").default_factors("shenzhen")
    assert (metro.kind, metro.net_g_per_pkm()) == ("net", Decimal("46.8"))
    assert not metro.factors[NET_FACTOR].policy
    assert (bus.kind, bus.net_g_per_pkm()) == ("net", Decimal("26.9"))
    assert not bus.factors[NET_FACTOR].policy
    assert bus.factors["default_trip_m"].value == Decimal("3000")
    assert bus.factors["default_trip_m"].policy
    assert steps.factors["g_per_step"].value == Decimal("0.02")
    assert steps.factors["g_per_step"].policy
    assert steps.factors["daily_cap_g"].value == Decimal("296")
    assert steps.factors["daily_cap_g"].policy


@pytest.mark.parametrize("mode", sorted(METHODOLOGIES))
def test_default_factors_for_an_unknown_city_raise(mode: str) -> None:
    with pytest.raises(KeyError):
        get_methodology(mode).default_factors("atlantis")
