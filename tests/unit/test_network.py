from __future__ import annotations

import pytest

from carbon_credits.networks import demo_network
from methodology.geo import haversine_m
from methodology.network import Line, Station, TransitNetwork, UnknownStation
from tests.unit import nets


@pytest.fixture(scope="module")
def net() -> TransitNetwork:
    return nets.network()


# --- metro shortest paths -------------------------------------------------------------------

def test_shortest_path_takes_the_transfer_when_it_is_shorter(net: TransitNetwork) -> None:
    # Along M1 A -> C is 6000 m; via X onto M2 it is 1000 + (2500 - 500) = 3000 m.
    assert net.metro_distance_m("A", "C") == 3000


def test_shortest_path_stays_on_the_line_when_that_is_shorter(net: TransitNetwork) -> None:
    assert net.metro_distance_m("A", "X1") == 1000
    assert net.metro_distance_m("D", "E") == 1500


def test_transfer_costs_no_distance(net: TransitNetwork) -> None:
    # A -> X (1000) then X -> D on M2 (500): nothing is added for changing lines.
    assert net.metro_distance_m("A", "D") == 1500
    assert net.metro_distance_m("X1", "X2") == 0


def test_shortest_path_between_lines_through_either_interchange(net: TransitNetwork) -> None:
    # B -> E: via X (2000 + 1000 = 3000) beats via C (3000 + 1000 = 4000).
    assert net.metro_distance_m("B", "E") == 3000


def test_metro_distance_is_symmetric_and_zero_on_the_diagonal(net: TransitNetwork) -> None:
    for a in net.metro_stations:
        assert net.metro_distance_m(a, a) == 0
        for b in net.metro_stations:
            assert net.metro_distance_m(a, b) == net.metro_distance_m(b, a)


def test_platforms_resolve_to_their_parent_station(net: TransitNetwork) -> None:
    assert net.station_key("X1") == "X"
    assert net.station_key("X2") == "X"
    assert net.station_key("A") == "A"
    assert net.metro_distance_m("X", "C") == net.metro_distance_m("X1", "C") == 2000
    assert net.metro_distance_m("A", "X2") == net.metro_distance_m("A", "X") == 1000


def test_metro_stations_are_parent_nodes_not_platforms(net: TransitNetwork) -> None:
    assert list(net.metro_stations) == ["A", "B", "C", "D", "E", "X"]


def test_parent_station_id_resolves_even_when_the_feed_lists_only_platforms() -> None:
    stations = [Station("P1", "p1", 0, 0, parent="P"), Station("Q", "q", 0, 0)]
    n = TransitNetwork("c", "v", stations, [Line("m", "metro", "m", ("P1", "Q"), (0, 100))])
    assert "P" in n.metro_stations
    assert n.metro_distance_m("P", "Q") == 100


def test_unknown_station_raises(net: TransitNetwork) -> None:
    with pytest.raises(UnknownStation):
        net.station_key("nowhere")
    with pytest.raises(UnknownStation) as exc:
        net.metro_distance_m("A", "nowhere")
    assert exc.value.args[0] == "nowhere"
    with pytest.raises(UnknownStation) as exc:
        net.metro_distance_m("nowhere", "A")
    assert exc.value.args[0] == "nowhere"


def test_bus_stop_is_not_a_metro_station(net: TransitNetwork) -> None:
    with pytest.raises(UnknownStation) as exc:
        net.metro_distance_m("s1", "A")
    assert exc.value.args[0] == "s1"


def test_unreachable_metro_station_raises_for_the_exit() -> None:
    stations = [Station(s, s, 0, 0) for s in "abcd"]
    lines = [Line("m1", "metro", "1", ("a", "b"), (0, 100)),
             Line("m2", "metro", "2", ("c", "d"), (0, 100))]
    n = TransitNetwork("c", "v", stations, lines)
    with pytest.raises(UnknownStation) as exc:
        n.metro_distance_m("a", "d")
    assert exc.value.args[0] == "d"


def test_parallel_lines_between_the_same_stations_use_the_shorter_edge() -> None:
    stations = [Station(s, s, 0, 0) for s in "ab"]
    lines = [Line("slow", "metro", "slow", ("a", "b"), (0, 900)),
             Line("fast", "metro", "fast", ("b", "a"), (0, 400))]
    assert TransitNetwork("c", "v", stations, lines).metro_distance_m("a", "b") == 400


def test_bus_lines_do_not_join_the_metro_graph() -> None:
    stations = [Station(s, s, 0, 0) for s in "abc"]
    lines = [Line("m", "metro", "m", ("a", "b", "c"), (0, 5000, 10000)),
             Line("bus", "bus", "bus", ("a", "c"), (0, 100))]
    assert TransitNetwork("c", "v", stations, lines).metro_distance_m("a", "c") == 10000


def test_network_refuses_a_line_over_an_unknown_stop() -> None:
    with pytest.raises(ValueError, match="unknown stop"):
        TransitNetwork("c", "v", [Station("a", "a", 0, 0)],
                       [Line("m", "metro", "m", ("a", "zz"), (0, 10))])


# --- along a line ---------------------------------------------------------------------------

def test_along_line_distance_in_either_direction(net: TransitNetwork) -> None:
    assert net.along_line_m("B1", "s2", "s4") == 1400
    assert net.along_line_m("B1", "s4", "s2") == 1400
    assert net.along_line_m("B1", "s1", "s5") == 3000
    assert net.along_line_m("B1", "s3", "s3") == 0


def test_along_a_loop_line_takes_the_shorter_reading_of_the_terminus(
    net: TransitNetwork,
) -> None:
    # w1 is listed at both ends; w3 -> w1 rides the last 1000 m, not back 2000 m.
    assert net.along_line_m("LOOP", "w3", "w1") == 1000
    assert net.along_line_m("LOOP", "w1", "w2") == 1000


def test_along_line_accepts_the_parent_station_of_a_listed_platform(
    net: TransitNetwork,
) -> None:
    assert net.along_line_m("HUBLINE", "hub", "s1") == 700
    # A sibling platform of the same station is the same place on the line.
    assert net.along_line_m("HUBLINE", "hub-s", "s1") == 700


def test_along_line_refuses_a_stop_not_on_the_line(net: TransitNetwork) -> None:
    with pytest.raises(UnknownStation) as exc:
        net.along_line_m("B1", "s1", "t2")
    assert exc.value.args[0] == "t2"
    with pytest.raises(UnknownStation) as exc:
        net.along_line_m("B1", "nowhere", "s2")
    assert exc.value.args[0] == "nowhere"


def test_unknown_line_raises_key_error(net: TransitNetwork) -> None:
    with pytest.raises(KeyError):
        net.line("nope")
    with pytest.raises(KeyError):
        net.along_line_m("nope", "s1", "s2")


def test_farthest_ride_from_a_stop_is_the_longer_end(net: TransitNetwork) -> None:
    assert net.farthest_from_m("B1", "s1") == 3000
    assert net.farthest_from_m("B1", "s4") == 1800
    assert net.farthest_from_m("B1", "s5") == 3000
    assert net.farthest_from_m("B2", "t3") == 5000


# --- Line validation ------------------------------------------------------------------------

def test_line_length_and_positions() -> None:
    line = Line("l", "bus", "l", ("a", "b", "c"), (100, 400, 1100))
    assert line.length_m == 1000
    assert line.position("b") == 1
    assert line.position("z") is None


@pytest.mark.parametrize(("stops", "cumulative"), [
    (("a",), (0,)),
    ((), ()),
    (("a", "b"), (0,)),
    (("a", "b"), (0, 1, 2)),
])
def test_line_needs_two_stops_and_one_distance_per_stop(
    stops: tuple[str, ...], cumulative: tuple[int, ...],
) -> None:
    with pytest.raises(ValueError, match=">= 2 stops"):
        Line("l", "bus", "l", stops, cumulative)


def test_line_cumulative_distances_must_not_decrease() -> None:
    with pytest.raises(ValueError, match="must not decrease"):
        Line("l", "bus", "l", ("a", "b", "c"), (0, 500, 499))
    Line("l", "bus", "l", ("a", "b", "c"), (0, 500, 500))  # equal is allowed


def test_line_average_trip_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="average trip"):
        Line("l", "bus", "l", ("a", "b"), (0, 500), avg_trip_m=-1)
    assert Line("l", "bus", "l", ("a", "b"), (0, 500), avg_trip_m=0).avg_trip_m == 0


# --- great-circle distance and the demo network ---------------------------------------------

def test_haversine_of_one_degree_of_latitude_is_about_111_km() -> None:
    assert haversine_m(0, 0, 0, 0) == 0
    assert haversine_m(22.0, 114.0, 23.0, 114.0) == pytest.approx(111_195, abs=1)
    assert haversine_m(22.5, 114.0, 22.6, 114.1) == pytest.approx(
        haversine_m(22.6, 114.1, 22.5, 114.0))


def test_demo_network_builds_and_the_loop_makes_shortest_paths_matter() -> None:
    n = TransitNetwork("shenzhen", "v", demo_network.stations(), demo_network.lines())
    m1 = n.line("metro-1")
    along_1 = abs(m1.cumulative_m[m1.stops.index("laojie")]
                  - m1.cumulative_m[m1.stops.index("huizhanzhongxin")])
    shortest = n.metro_distance_m("laojie", "huizhanzhongxin")
    assert 0 < shortest <= along_1
    assert n.metro_distance_m("huizhanzhongxin", "laojie") == shortest
    # Every metro station of the demo is reachable from every other.
    for a in n.metro_stations:
        assert n.metro_distance_m("luohu", a) >= 0
