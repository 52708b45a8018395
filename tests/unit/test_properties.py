"""Properties of the methodology over generated factors, networks and posts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from methodology import (
    Factor,
    Line,
    QuantifyContext,
    Station,
    TransitNetwork,
    get_methodology,
)
from methodology.factors import FactorSet
from methodology.quantity import ug_for_count, ug_for_distance, whole_grams
from tests.unit import nets

BUS = get_methodology("bus")
METRO = get_methodology("metro")
STEPS = get_methodology("steps")

distances = st.integers(min_value=0, max_value=200_000)
factors_3dp = st.decimals(min_value=0, max_value=1000, places=3,
                          allow_nan=False, allow_infinity=False)
factors_any = st.decimals(min_value=0, max_value=1000, places=9,
                          allow_nan=False, allow_infinity=False)
gaps = st.integers(min_value=0, max_value=5000)


# --- exact integer quantities ---------------------------------------------------------------

@given(factors_any, distances)
def test_grams_are_never_negative(g: Decimal, m: int) -> None:
    ug = ug_for_distance(g, m)
    assert ug >= 0
    assert whole_grams(ug) >= 0


@given(factors_any, distances, distances)
def test_quantity_is_monotone_in_distance(g: Decimal, m1: int, m2: int) -> None:
    lo, hi = sorted((m1, m2))
    assert ug_for_distance(g, lo) <= ug_for_distance(g, hi)
    assert whole_grams(ug_for_distance(g, lo)) <= whole_grams(ug_for_distance(g, hi))


@given(factors_3dp, distances)
def test_quantity_is_exact_for_factors_of_three_decimals(g: Decimal, m: int) -> None:
    ug = ug_for_distance(g, m)
    assert ug * 1000 == math.floor(Fraction(g) * 10**6 * m)
    assert ug == Fraction(g) * 1000 * m  # nothing was rounded at all


@given(factors_any, distances)
def test_quantity_floors_never_overstates(g: Decimal, m: int) -> None:
    exact = Fraction(g) * 10**6 * m / 1000
    ug = ug_for_distance(g, m)
    assert ug <= exact < ug + 1


@given(st.decimals(min_value=0, max_value=10, places=6, allow_nan=False,
                   allow_infinity=False), st.integers(min_value=0, max_value=10**6))
def test_step_quantity_is_exact_for_factors_of_six_decimals(g: Decimal, n: int) -> None:
    assert ug_for_count(g, n) == Fraction(g) * 10**6 * n


# --- metro over random connected networks ---------------------------------------------------

@dataclass(frozen=True)
class Generated:
    network: TransitNetwork
    edges: tuple[tuple[str, str, int], ...]


@st.composite
def metro_networks(draw: st.DrawFn) -> Generated:
    """A few metro lines over a shared station pool, connected by construction."""
    n = draw(st.integers(min_value=2, max_value=8))
    pool = [f"st{i}" for i in range(n)]
    covered: list[str] = []
    lines: list[Line] = []
    edges: list[tuple[str, str, int]] = []
    for k in range(draw(st.integers(min_value=1, max_value=4))):
        order = draw(st.permutations(pool))
        stops = list(order[: draw(st.integers(min_value=2, max_value=n))])
        if covered and not set(stops) & set(covered):
            stops.append(draw(st.sampled_from(covered)))  # join the network built so far
        cumulative = [draw(st.integers(min_value=0, max_value=1000))]
        for _ in stops[1:]:
            cumulative.append(cumulative[-1] + draw(gaps))
        lines.append(Line(f"m{k}", "metro", f"M{k}", tuple(stops), tuple(cumulative)))
        edges += [(a, b, cumulative[i + 1] - cumulative[i])
                  for i, (a, b) in enumerate(zip(stops, stops[1:], strict=False))]
        covered += [s for s in stops if s not in covered]
    stations = [Station(s, s, 22.5, 114.0) for s in covered]
    return Generated(TransitNetwork("rand", "v", stations, lines), tuple(edges))


def _floyd_warshall(g: Generated) -> dict[tuple[str, str], float]:
    nodes = list(g.network.metro_stations)
    d: dict[tuple[str, str], float] = {(a, b): (0 if a == b else math.inf)
                                       for a in nodes for b in nodes}
    for a, b, w in g.edges:
        d[a, b] = d[b, a] = min(d[a, b], w)
    for k in nodes:
        for i in nodes:
            for j in nodes:
                d[i, j] = min(d[i, j], d[i, k] + d[k, j])
    return d


@st.composite
def network_and_triple(draw: st.DrawFn) -> tuple[Generated, str, str, str]:
    g = draw(metro_networks())
    station = st.sampled_from(list(g.network.metro_stations))
    return g, draw(station), draw(station), draw(station)


@settings(deadline=None)
@given(network_and_triple())
def test_metro_distance_is_symmetric(case: tuple[Generated, str, str, str]) -> None:
    g, a, b, _ = case
    assert g.network.metro_distance_m(a, b) == g.network.metro_distance_m(b, a)
    assert g.network.metro_distance_m(a, a) == 0


@settings(deadline=None)
@given(network_and_triple())
def test_metro_distance_obeys_the_triangle_inequality(
    case: tuple[Generated, str, str, str],
) -> None:
    g, a, b, c = case
    d = g.network.metro_distance_m
    assert d(a, c) <= d(a, b) + d(b, c)


@settings(deadline=None)
@given(metro_networks())
def test_metro_distance_is_the_true_shortest_path(g: Generated) -> None:
    reference = _floyd_warshall(g)
    for a in g.network.metro_stations:
        for b in g.network.metro_stations:
            assert g.network.metro_distance_m(a, b) == reference[a, b]


@settings(deadline=None)
@given(network_and_triple(), factors_any)
def test_metro_credit_is_never_negative_and_grows_with_distance(
    case: tuple[Generated, str, str, str], g_per_pkm: Decimal,
) -> None:
    g, a, b, c = case
    fs = nets.net_factors("metro", str(g_per_pkm))
    ctx = QuantifyContext(network=g.network)

    def trip(x: str, y: str) -> Any:
        return METRO.quantify({"entry_station_id": x, "exit_station_id": y,
                               "started_at": nets.STARTED}, fs, ctx)

    ab, ac = trip(a, b), trip(a, c)
    assert ab.avoided_ug >= 0
    assert ab.avoided_ug == ug_for_distance(g_per_pkm, g.network.metro_distance_m(a, b))
    if ab.quantity <= ac.quantity:
        assert ab.avoided_ug <= ac.avoided_ug


# --- bus over random lines ------------------------------------------------------------------

@st.composite
def bus_rides(draw: st.DrawFn) -> tuple[TransitNetwork, Line, dict[str, Any], FactorSet]:
    n = draw(st.integers(min_value=2, max_value=8))
    stops = tuple(f"b{i}" for i in range(n))
    cumulative = [draw(st.integers(min_value=0, max_value=1000))]
    for _ in stops[1:]:
        cumulative.append(cumulative[-1] + draw(gaps))
    avg = draw(st.none() | st.integers(min_value=0, max_value=40_000))
    line = Line("bus", "bus", "Bus", stops, tuple(cumulative), avg_trip_m=avg)
    network = TransitNetwork("rand", "v", [Station(s, s, 0, 0) for s in stops], [line])
    event: dict[str, Any] = {"line_id": "bus", "board_stop_id": draw(st.sampled_from(stops)),
                             "started_at": nets.STARTED}
    alight = draw(st.none() | st.sampled_from(stops))
    if alight is not None:
        event["alight_stop_id"] = alight
    reported = draw(st.none() | st.integers(min_value=0, max_value=100_000))
    if reported is not None:
        event["distance_m"] = reported
    default = draw(st.integers(min_value=0, max_value=40_000))
    fs = nets.net_factors("bus", "26.9",
                          Factor("default_trip_m", Decimal(default), "m", "policy", policy=True))
    return network, line, event, fs


@settings(deadline=None)
@given(bus_rides())
def test_bus_distance_never_exceeds_the_line_or_the_evidence(
    case: tuple[TransitNetwork, Line, dict[str, Any], FactorSet],
) -> None:
    network, line, event, fs = case
    q = BUS.quantify(event, fs, QuantifyContext(network=network))
    assert 0 <= q.quantity <= line.length_m
    assert q.quantity <= network.farthest_from_m("bus", event["board_stop_id"])
    if "alight_stop_id" in event:
        assert q.quantity <= network.along_line_m("bus", event["board_stop_id"],
                                                  event["alight_stop_id"])
    if "distance_m" in event:
        assert q.quantity <= event["distance_m"]
    assert q.avoided_ug == q.quantity * 26_900 >= 0


# --- steps ----------------------------------------------------------------------------------

@given(st.integers(min_value=0, max_value=200_000), st.integers(min_value=0, max_value=200_000))
def test_steps_credit_exactly_the_increase_never_negative(steps: int, previous: int) -> None:
    fs = STEPS.default_factors("shenzhen")
    q = STEPS.quantify({"date": nets.STARTED.date(), "steps": steps}, fs,
                       QuantifyContext(previous_quantity=previous))
    assert q.avoided_ug >= 0
    assert q.avoided_ug == max(0, steps - previous) * 20_000
    assert q.explanation["increase_steps"] == max(0, steps - previous)


@given(st.lists(st.integers(min_value=0, max_value=50_000), min_size=1, max_size=10))
def test_steps_posted_through_a_day_credit_the_days_highest_count(posts: list[int]) -> None:
    fs = STEPS.default_factors("shenzhen")
    highest, total = 0, 0
    for steps in posts:
        q = STEPS.quantify({"date": nets.STARTED.date(), "steps": steps}, fs,
                           QuantifyContext(previous_quantity=highest))
        total += q.avoided_ug
        highest = max(highest, steps)
    assert total == max(posts) * 20_000
