"""The GTFS parser on its own: distances, units, stations, patterns and every refusal."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from carbon_credits.networks.gtfs import GtfsError, ParsedFeed, parse_feed
from methodology.network import Line
from tests import gtfs_feed
from tests.gtfs_feed import Feed, Row, sample_feed


def great_circle_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine written out here, so expectations do not reuse the code under test."""
    r = 6_371_008.8
    (la1, lo1), (la2, lo2) = ((math.radians(x), math.radians(y)) for x, y in (a, b))
    h = (math.sin((la2 - la1) / 2) ** 2
         + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2)
    return 2 * r * math.asin(math.sqrt(h))


def coord(stop_id: str) -> tuple[float, float]:
    _, lat, lon, _, _ = gtfs_feed.STOPS[stop_id]
    return lat, lon


def close(actual: tuple[int, ...], expected: list[float]) -> bool:
    """Every cumulative distance within 1 % (and 1 m for the zeros) of the hand value."""
    return len(actual) == len(expected) and all(
        abs(a - e) <= max(1.0, 0.01 * e) for a, e in zip(actual, expected, strict=True))


def parse(feed: Feed, tmp_path: Path, *, as_zip: bool = True) -> ParsedFeed:
    if as_zip:
        return parse_feed(feed.write_zip(tmp_path / "feed.zip"))
    return parse_feed(feed.write_dir(tmp_path / "feed"))


def refusal(feed: Feed, tmp_path: Path) -> GtfsError:
    with pytest.raises(GtfsError) as info:
        parse(feed, tmp_path)
    return info.value


def lines_of(parsed: ParsedFeed, route_id: str) -> list[Line]:
    return [ln for ln in parsed.lines if ln.route_id == route_id]


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> ParsedFeed:
    return parse(sample_feed(), tmp_path_factory.mktemp("gtfs"))


def trip_is(trip_id: str) -> Callable[[Row], bool]:
    return lambda row: row["trip_id"] == trip_id


def stop_is(stop_id: str) -> Callable[[Row], bool]:
    return lambda row: row["stop_id"] == stop_id


# --- distances ------------------------------------------------------------------------------

def test_shape_dist_traveled_in_kilometres_is_converted_to_metres(parsed: ParsedFeed) -> None:
    east, west = lines_of(parsed, "M1")
    assert east.stops == gtfs_feed.M1_EAST
    assert east.cumulative_m == (0, 1050, 2000, 3100)
    assert west.cumulative_m == (0, 1100, 2050, 3100)
    assert close(east.cumulative_m, [km * 1000 for km in gtfs_feed.M1_KM["0"]])


def test_shape_dist_traveled_in_metres_is_kept(tmp_path: Path) -> None:
    feed = sample_feed()
    for row in feed.files["stop_times.txt"]:
        if row["shape_dist_traveled"] != "":
            row["shape_dist_traveled"] = round(float(str(row["shape_dist_traveled"])) * 1000, 1)
    east, west = lines_of(parse(feed, tmp_path), "M1")
    assert east.cumulative_m == (0, 1050, 2000, 3100)
    assert west.cumulative_m == (0, 1100, 2050, 3100)


@pytest.mark.parametrize(("scale", "unit"), [(3280.84, "feet"), (0.621371, "miles"),
                                             (10.0, "hectometres")])
def test_shape_dist_traveled_in_another_unit_is_refused(
        tmp_path: Path, scale: float, unit: str) -> None:
    feed = sample_feed()
    for row in feed.files["stop_times.txt"]:
        if row["shape_dist_traveled"] != "":
            row["shape_dist_traveled"] = float(str(row["shape_dist_traveled"])) * scale
    error = refusal(feed, tmp_path)
    assert error.file == "stop_times.txt"
    assert "neither metres nor kilometres" in error.message, unit
    first_call = feed.line_of("stop_times.txt", lambda r: r["trip_id"] == "M1-e-0800"
                              and r["stop_sequence"] == 5)
    assert error.line == first_call


def test_shape_distances_follow_the_shape_not_the_straight_line(parsed: ParsedFeed) -> None:
    south, north = lines_of(parsed, "M2")
    shape = gtfs_feed.M2_SHAPE_SOUTH
    along = [0.0]
    for a, b in zip(shape, shape[1:], strict=False):
        along.append(along[-1] + great_circle_m(a, b))
    at = gtfs_feed.M2_STOP_AT_SHAPE_POINT
    assert south.stops == gtfs_feed.M2_SOUTH
    assert close(south.cumulative_m, [along[at[s]] for s in gtfs_feed.M2_SOUTH])
    assert north.stops == tuple(reversed(gtfs_feed.M2_SOUTH))
    assert close(north.cumulative_m, [along[-1] - along[at[s]] for s in north.stops])
    # The dogleg makes the first leg about a fifth longer than the straight line.
    straight = great_circle_m(coord("m2-north"), coord("m2-n1"))
    assert south.cumulative_m[1] > 1.15 * straight


def test_without_shape_or_shape_dist_distances_are_great_circle(parsed: ParsedFeed) -> None:
    out = lines_of(parsed, "B7")[0]
    expected = [0.0]
    for a, b in zip(out.stops, out.stops[1:], strict=False):
        expected.append(expected[-1] + great_circle_m(coord(a), coord(b)))
    assert out.stops == gtfs_feed.B7_OUT
    assert close(out.cumulative_m, expected)


def test_a_loop_shape_matches_stops_in_order(tmp_path: Path) -> None:
    # A square loop that starts and ends at stop q1: nearest-point matching would put q1 at
    # the end of the shape too; matching in order must give one side per leg.
    corners = [(30.05, 120.05), (30.05, 120.06), (30.06, 120.06), (30.06, 120.05)]
    feed = sample_feed().add_row("routes.txt", route_id="L", route_short_name="L",
                                 route_type=3)
    feed = feed.add_row("trips.txt", route_id="L", service_id="WK", trip_id="L-1",
                        shape_id="SQ")
    for k, (lat, lon) in enumerate(corners):
        feed = feed.add_row("stops.txt", stop_id=f"q{k + 1}", stop_name=f"Q{k + 1}",
                            stop_lat=lat, stop_lon=lon)
    for k, stop in enumerate(["q1", "q2", "q3", "q4", "q1"]):
        feed = feed.add_row("stop_times.txt", trip_id="L-1", stop_id=stop,
                            stop_sequence=k + 1)
    for k, (lat, lon) in enumerate([*corners, corners[0]]):
        feed = feed.add_row("shapes.txt", shape_id="SQ", shape_pt_lat=lat, shape_pt_lon=lon,
                            shape_pt_sequence=k + 1)
    (loop,) = lines_of(parse(feed, tmp_path), "L")
    expected = [0.0]
    for a, b in zip(corners, [*corners[1:], corners[0]], strict=True):
        expected.append(expected[-1] + great_circle_m(a, b))
    assert loop.stops == ("q1", "q2", "q3", "q4", "q1")
    assert close(loop.cumulative_m, expected)


def test_a_shape_far_from_the_stops_falls_back_to_straight_lines(tmp_path: Path) -> None:
    feed = sample_feed()
    for row in feed.files["shapes.txt"]:
        if row["shape_id"] == "M2-S":
            row["shape_pt_lon"] = float(str(row["shape_pt_lon"])) + 0.01  # about 960 m east
    parsed = parse(feed, tmp_path)
    south = lines_of(parsed, "M2")[0]
    expected = [0.0]
    for a, b in zip(south.stops, south.stops[1:], strict=False):
        expected.append(expected[-1] + great_circle_m(coord(a), coord(b)))
    assert close(south.cumulative_m, expected)
    assert any("M2:1" in w and "M2-S" in w for w in parsed.warnings)


# --- stations, routes, patterns -------------------------------------------------------------

def test_platforms_keep_their_parent_station(parsed: ParsedFeed) -> None:
    stations = {s.stop_id: s for s in parsed.stations}
    assert stations["hub-m1"].parent == "hub" and stations["hub-m2"].parent == "hub"
    assert stations["b-hub"].parent == "hub"
    assert stations["hub"].parent is None and stations["hub"].name == "Hub, Central"
    assert stations["m1-mid"].name == 'The "Mid" Stop'
    assert (stations["hub"].lat, stations["hub"].lon) == (30.0, 120.02)


def test_only_stops_of_imported_routes_and_their_stations_are_emitted(
        parsed: ParsedFeed) -> None:
    ids = {s.stop_id for s in parsed.stations}
    assert "hub-e1" not in ids  # an entrance (location_type 2)
    assert not {"t1", "t2"} & ids  # only served by the skipped tram
    assert ids == {s for s in gtfs_feed.STOPS if s not in ("hub-e1", "t1", "t2")}


def test_one_pattern_per_distinct_stop_sequence(parsed: ParsedFeed) -> None:
    # M1 runs two trips each way (one written in reverse stop_sequence order): two patterns.
    assert [ln.line_id for ln in parsed.lines] == [
        "M1:1", "M1:2", "M2:1", "M2:2", "B7:1", "B7:2", "B7:3"]
    bus = lines_of(parsed, "B7")
    assert [ln.stops for ln in bus] == [
        gtfs_feed.B7_OUT, gtfs_feed.B7_SHORT, tuple(reversed(gtfs_feed.B7_OUT))]
    assert {ln.mode for ln in bus} == {"bus"}
    assert {ln.mode for ln in lines_of(parsed, "M1") + lines_of(parsed, "M2")} == {"metro"}
    assert lines_of(parsed, "M1")[0].name == "1 East-West Line"
    assert bus[0].name == "7"
    assert parsed.route_modes == {"M1": "metro", "M2": "metro", "B7": "bus"}
    assert parsed.trips == 11


def test_other_route_types_are_skipped_with_a_warning(parsed: ParsedFeed) -> None:
    assert not lines_of(parsed, "T1")
    assert any("route_type 0" in w and "T1" in w for w in parsed.warnings)


@pytest.mark.parametrize(("route_type", "mode"), [(1, "metro"), (12, "metro"), (401, "metro"),
                                                  (3, "bus"), (11, "bus"), (704, "bus"),
                                                  (800, "bus")])
def test_route_types_map_to_modes(tmp_path: Path, route_type: int, mode: str) -> None:
    feed = sample_feed().edit("routes.txt", lambda r: r["route_id"] == "B7",
                              route_type=route_type)
    assert parse(feed, tmp_path).route_modes["B7"] == mode


def test_folder_and_zip_read_the_same(tmp_path: Path, parsed: ParsedFeed) -> None:
    assert parse(sample_feed(), tmp_path, as_zip=False) == parsed


def test_bom_crlf_and_padded_fields_are_accepted(tmp_path: Path, parsed: ParsedFeed) -> None:
    feed = sample_feed()
    feed.bom = feed.crlf = True
    feed = feed.edit("stops.txt", stop_is("m1-mid"), stop_id="  m1-mid ", stop_lat=" 30.0 ")
    assert b"\r\n" in feed.text("stops.txt").encode()
    assert feed.text("stops.txt").startswith("\ufeffstop_id,")
    assert parse(feed, tmp_path) == parsed


# --- refusals -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["stops.txt", "routes.txt", "trips.txt", "stop_times.txt"])
def test_a_missing_required_file_is_refused(tmp_path: Path, name: str) -> None:
    error = refusal(sample_feed().without_file(name), tmp_path)
    assert (error.file, error.line) == (name, None)
    assert str(error).startswith(f"{name}: ")


@pytest.mark.parametrize("how", ["absent", "empty"])
def test_shapes_are_optional_when_no_trip_names_one(tmp_path: Path, how: str) -> None:
    feed = sample_feed().edit("trips.txt", lambda r: True, shape_id="")
    if how == "absent":
        feed = feed.without_file("shapes.txt")
    else:
        feed.files["shapes.txt"] = []
    assert feed.text("shapes.txt" if how == "empty" else "stops.txt")
    assert len(parse(feed, tmp_path).lines) == 7


def test_a_shape_id_without_shapes_is_refused(tmp_path: Path) -> None:
    feed = sample_feed().without_file("shapes.txt")
    error = refusal(feed, tmp_path)
    assert (error.file, error.line) == ("trips.txt", feed.line_of("trips.txt",
                                                                  trip_is("M2-s-0800")))


@pytest.mark.parametrize(("name", "column"), [
    ("stops.txt", "stop_lat"), ("routes.txt", "route_type"), ("trips.txt", "route_id"),
    ("stop_times.txt", "stop_sequence"), ("shapes.txt", "shape_pt_sequence")])
def test_a_missing_required_column_is_refused(tmp_path: Path, name: str, column: str) -> None:
    error = refusal(sample_feed().without_column(name, column), tmp_path)
    assert (error.file, error.line) == (name, 1)
    assert column in error.message
    assert str(error).startswith(f"{name}:1: ")


@pytest.mark.parametrize(("name", "match", "field", "value"), [
    ("stops.txt", stop_is("m1-mid"), "stop_lat", "north"),
    ("stops.txt", stop_is("m1-mid"), "stop_lat", "91"),
    ("stops.txt", stop_is("m1-mid"), "stop_lon", "nan"),
    ("stops.txt", stop_is("m1-mid"), "location_type", "platform"),
    ("routes.txt", lambda r: r["route_id"] == "M2", "route_type", "metro"),
    ("stop_times.txt", trip_is("M2-s-0800"), "stop_sequence", "2.5"),
    ("stop_times.txt", trip_is("M2-s-0800"), "stop_sequence", "-1"),
    ("stop_times.txt", trip_is("M1-w-0800"), "shape_dist_traveled", "1,5"),
    ("shapes.txt", lambda r: r["shape_id"] == "M2-N", "shape_pt_lat", ""),
])
def test_a_bad_number_is_refused_with_its_line(
        tmp_path: Path, name: str, match: Callable[[Row], bool], field: str,
        value: str) -> None:
    feed = sample_feed().edit(name, match, **{field: value})
    error = refusal(feed, tmp_path)
    assert (error.file, error.line) == (name, feed.line_of(name, match))
    assert field in error.message
    assert f"{name}:{error.line}: " in str(error)


def test_an_unknown_stop_in_stop_times_is_refused(tmp_path: Path) -> None:
    match = lambda r: r["trip_id"] == "B7-in-0800" and r["stop_id"] == "b2"  # noqa: E731
    line = sample_feed().line_of("stop_times.txt", match)
    feed = sample_feed().edit("stop_times.txt", match, stop_id="nowhere")
    error = refusal(feed, tmp_path)
    assert (error.file, error.line) == ("stop_times.txt", line)
    assert "unknown stop_id nowhere" in error.message


def test_an_unknown_trip_in_stop_times_is_refused(tmp_path: Path) -> None:
    feed = sample_feed().add_row("stop_times.txt", trip_id="ghost", stop_id="b1",
                                 stop_sequence=1)
    error = refusal(feed, tmp_path)
    assert (error.file, error.line) == ("stop_times.txt", feed.line_of("stop_times.txt",
                                                                       trip_is("ghost")))
    assert "unknown trip_id ghost" in error.message


def test_stop_times_calling_at_a_station_or_entrance_are_refused(tmp_path: Path) -> None:
    match = lambda r: r["trip_id"] == "M1-e-0800" and r["stop_id"] == "hub-m1"  # noqa: E731
    line = sample_feed().line_of("stop_times.txt", match)
    for stop in ("hub", "hub-e1"):
        feed = sample_feed().edit("stop_times.txt", match, stop_id=stop)
        error = refusal(feed, tmp_path)
        assert error.line == line
        assert "location_type" in error.message


def test_an_unknown_route_in_trips_is_refused(tmp_path: Path) -> None:
    feed = sample_feed().edit("trips.txt", trip_is("T1-0800"), route_id="T9")
    error = refusal(feed, tmp_path)
    assert (error.file, error.line) == ("trips.txt", feed.line_of("trips.txt",
                                                                  trip_is("T1-0800")))
    assert "unknown route_id T9" in error.message


def test_an_unknown_parent_station_is_refused(tmp_path: Path) -> None:
    feed = sample_feed().edit("stops.txt", stop_is("hub-m2"), parent_station="hubb")
    error = refusal(feed, tmp_path)
    assert (error.file, error.line) == ("stops.txt", feed.line_of("stops.txt",
                                                                  stop_is("hub-m2")))


def test_a_parent_that_is_not_a_station_is_refused(tmp_path: Path) -> None:
    feed = sample_feed().edit("stops.txt", stop_is("hub-m2"), parent_station="m1-mid")
    assert "not a station" in refusal(feed, tmp_path).message


def test_an_unknown_shape_is_refused(tmp_path: Path) -> None:
    feed = sample_feed().edit("trips.txt", trip_is("M2-n-0810"), shape_id="M2-X")
    error = refusal(feed, tmp_path)
    assert (error.file, error.line) == ("trips.txt", feed.line_of("trips.txt",
                                                                  trip_is("M2-n-0810")))


def test_a_trip_with_one_stop_is_refused(tmp_path: Path) -> None:
    feed = sample_feed().drop_rows(
        "stop_times.txt", lambda r: r["trip_id"] == "B7-short-0805" and r["stop_id"] != "b1")
    error = refusal(feed, tmp_path)
    assert (error.file, error.line) == ("stop_times.txt",
                                        feed.line_of("stop_times.txt", trip_is("B7-short-0805")))
    assert "B7-short-0805 has 1 stop(s)" in error.message


def test_a_trip_without_stops_is_refused(tmp_path: Path) -> None:
    feed = sample_feed().drop_rows("stop_times.txt", trip_is("B7-short-0805"))
    error = refusal(feed, tmp_path)
    assert (error.file, error.line) == ("trips.txt",
                                        feed.line_of("trips.txt", trip_is("B7-short-0805")))


def test_a_repeated_stop_sequence_is_refused(tmp_path: Path) -> None:
    match = lambda r: r["trip_id"] == "B7-in-0800" and r["stop_id"] == "b3"  # noqa: E731
    feed = sample_feed().edit("stop_times.txt", match, stop_sequence=5)
    error = refusal(feed, tmp_path)
    assert error.file == "stop_times.txt" and "stop_sequence 5 repeats" in error.message


def test_a_repeated_stop_sequence_at_the_same_stop_is_refused(tmp_path: Path) -> None:
    feed = sample_feed().add_row("stop_times.txt", trip_id="M1-e-0800", stop_id="m1-west",
                                 stop_sequence=5, shape_dist_traveled="")
    error = refusal(feed, tmp_path)
    assert (error.file, error.line) == ("stop_times.txt", feed.line_of(
        "stop_times.txt", lambda r: r["trip_id"] == "M1-e-0800" and r["shape_dist_traveled"] == ""))
    assert "stop_sequence 5 repeats" in error.message


def test_a_decreasing_shape_dist_traveled_is_refused(tmp_path: Path) -> None:
    match = lambda r: r["trip_id"] == "M1-w-0800" and r["stop_id"] == "m1-mid"  # noqa: E731
    feed = sample_feed().edit("stop_times.txt", match, shape_dist_traveled=0.5)
    error = refusal(feed, tmp_path)
    assert (error.file, error.line) == ("stop_times.txt", feed.line_of("stop_times.txt", match))
    assert "decreases" in error.message


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    feed = sample_feed().add_row("stops.txt", stop_id="b1", stop_name="again", stop_lat=30,
                                 stop_lon=120)
    error = refusal(feed, tmp_path)
    assert error.file == "stops.txt" and "duplicate stop_id b1" in error.message


def test_a_feed_without_metro_or_bus_is_refused(tmp_path: Path) -> None:
    feed = sample_feed().edit("routes.txt", lambda r: True, route_type=2)
    error = refusal(feed, tmp_path)
    assert error.file == "routes.txt" and "no metro or bus route" in error.message


def test_line_numbers_count_physical_lines_after_a_multiline_field(tmp_path: Path) -> None:
    feed = sample_feed().edit("stops.txt", stop_is("hub"), stop_name="Hub\nCentral")
    feed = feed.edit("stops.txt", stop_is("b4"), stop_lon="west")
    error = refusal(feed, tmp_path)
    assert error.line == feed.line_of("stops.txt", stop_is("b4")) + 1


def test_text_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    folder = sample_feed().write_dir(tmp_path / "feed")
    stops = folder / "stops.txt"
    stops.write_bytes(stops.read_bytes().replace(b"Elm Street", "Elm Straße".encode("latin-1")))
    with pytest.raises(GtfsError, match="not UTF-8") as info:
        parse_feed(folder)
    assert info.value.file == "stops.txt"


def test_a_nul_character_is_refused(tmp_path: Path) -> None:
    feed = sample_feed().edit("stops.txt", stop_is("b2"), stop_name="Oak\x00Street")
    error = refusal(feed, tmp_path)
    assert (error.file, error.line) == ("stops.txt", feed.line_of("stops.txt", stop_is("b2")))


def test_a_path_that_is_not_a_feed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GtfsError, match="no such file"):
        parse_feed(tmp_path / "absent.zip")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(GtfsError, match="not a zip"):
        parse_feed(junk)


def test_files_in_a_subfolder_of_the_zip_are_not_found(tmp_path: Path) -> None:
    import zipfile

    feed = sample_feed()
    path = tmp_path / "nested.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in feed.files:
            archive.writestr(f"lakeside/{name}", feed.text(name))
    with pytest.raises(GtfsError, match="required file is missing"):
        parse_feed(path)
