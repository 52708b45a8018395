"""Routes with several stop patterns (directions, short turns), as GTFS feeds have them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from methodology import Line, QuantifyContext, Station, TransitNetwork, get_methodology
from methodology.bus import SHENZHEN_2021
from methodology.network import UnknownStation


def _net() -> TransitNetwork:
    stops = [Station(s, s, 22.5, 114.0) for s in ("a", "b", "c", "d")]
    return TransitNetwork("t", "v", stops, [
        # Outbound a -> d, inbound d -> a on a slightly different road, and a short turn.
        Line("r1-out", "bus", "R1 out", ("a", "b", "c", "d"), (0, 1000, 2500, 4000),
             route_id="r1"),
        Line("r1-in", "bus", "R1 in", ("d", "c", "b", "a"), (0, 1600, 3100, 4200),
             route_id="r1"),
        Line("r1-short", "bus", "R1 short", ("a", "b"), (0, 1000), route_id="r1"),
    ])


def test_a_ride_is_measured_on_the_pattern_that_runs_in_its_direction() -> None:
    net = _net()
    assert net.route_distance_m("r1", "a", "c") == 2500  # outbound pattern
    assert net.route_distance_m("r1", "c", "a") == 2600  # inbound pattern, not 2500


def test_patterns_group_under_their_route_and_the_route_length_is_the_longest() -> None:
    net = _net()
    assert {ln.line_id for ln in net.routes["r1"]} == {"r1-out", "r1-in", "r1-short"}
    assert net.route_length_m("r1") == 4200
    assert net.route_farthest_from_m("r1", "b") == 3100


def test_a_stop_on_no_pattern_of_the_route_is_unknown() -> None:
    net = TransitNetwork("t", "v", [Station(s, s, 0, 0) for s in ("a", "b", "x")],
                         [Line("p", "bus", "P", ("a", "b"), (0, 10), route_id="r")])
    with pytest.raises(UnknownStation):
        net.route_distance_m("r", "a", "x")
    with pytest.raises(UnknownStation):
        net.route_farthest_from_m("r", "x")


def test_the_bus_methodology_uses_the_route_id_riders_post() -> None:
    result = get_methodology("bus").quantify(
        {"line_id": "r1", "board_stop_id": "d", "alight_stop_id": "b",
         "started_at": datetime(2026, 1, 1, tzinfo=UTC)},
        SHENZHEN_2021, QuantifyContext(network=_net()))
    assert result.explanation["distance_m"] == 3100
    assert result.avoided_ug == int(Decimal("26.9") * 3100 * 1000)
