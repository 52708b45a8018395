"""A whole GTFS feed parsed and checked: stops, routes, trips, stop times, patterns and
shapes, into the methodology's stations and lines (gtfs/__init__.py says how)."""

from __future__ import annotations

import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from carbon_credits.networks.gtfs.distances import distances
from carbon_credits.networks.gtfs.files import REQUIRED_FILES, GtfsError, Source, Table, read_file
from carbon_credits.networks.gtfs.pieces import Pattern, Route, Stop, Trip, with_distances
from methodology.network import Line, Station

METRO_ROUTE_TYPES = frozenset({1, 12, *range(400, 406)})
"""Subway/metro, monorail; extended: urban railway 400-404 and monorail 405."""
BUS_ROUTE_TYPES = frozenset({3, 11, *range(700, 717), 800})
"""Bus, trolleybus; extended: bus services 700-716 and trolleybus 800."""

_STOP_OR_PLATFORM, _STATION = 0, 1


@dataclass(frozen=True)
class ParsedFeed:
    """Stations and line patterns ready for ``store_network``, with what was skipped."""

    stations: list[Station]
    lines: list[Line]
    warnings: list[str] = field(default_factory=list)
    route_modes: dict[str, str] = field(default_factory=dict)
    """Each imported route_id and its mode."""
    trips: int = 0
    """Trips read on the imported routes."""


def parse_feed(path: Path) -> ParsedFeed:
    """Read and check a whole GTFS feed (zip or folder); raise GtfsError on the first fault."""
    source = Source(path)
    try:
        return _parse(source)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise GtfsError(path.name, None, f"damaged zip archive: {exc}") from None
    finally:
        source.close()


def _parse(source: Source) -> ParsedFeed:
    for name in REQUIRED_FILES:
        if not source.has(name):
            raise GtfsError(name, None, "required file is missing from the feed")
    warnings: list[str] = []
    stops = _read_stops(source, warnings)
    routes, route_ids, skipped = _read_routes(source)
    for route_type, ids in sorted(skipped.items()):
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        warnings.append(f"skipped {len(ids)} route(s) of route_type {route_type} "
                        f"(neither metro nor bus): {shown}")
    if not routes:
        raise GtfsError("routes.txt", None, "no metro or bus route in the feed")
    trips, trip_ids, shape_refs = _read_trips(source, routes, route_ids)
    _read_stop_times(source, trips, trip_ids, stops)
    for trip in trips.values():
        _order_calls(trip)
    patterns = _patterns(trips, routes, warnings)
    shapes = _read_shapes(source, shape_refs, _shapes_needed(patterns))
    lines: list[Line] = []
    units: set[str] = set()
    for route_id, route_patterns in patterns.items():
        route = routes[route_id]
        for n, (stop_ids, members) in enumerate(route_patterns, start=1):
            line_id = f"{route_id}:{n}"
            cumulative = distances(line_id, stop_ids, members, stops, shapes, warnings, units)
            lines.append(Line(line_id=line_id, mode=route.mode, name=route.name,
                              stops=stop_ids, cumulative_m=cumulative, route_id=route_id))
    if len(units) > 1:
        warnings.append("shape_dist_traveled mixes metres and kilometres between trips; "
                        "each trip was converted by its own detected unit")
    used = {s for line in lines for s in line.stops}
    used |= {p for s in used if (p := stops[s].parent)}
    stations = [Station(stop_id=s.stop_id, name=s.name, lat=s.lat, lon=s.lon, parent=s.parent)
                for s in stops.values() if s.stop_id in used]
    return ParsedFeed(stations=stations, lines=lines, warnings=warnings,
                      route_modes={r: routes[r].mode for r in patterns}, trips=len(trips))


def _read_stops(source: Source, warnings: list[str]) -> dict[str, Stop]:
    stops: dict[str, Stop] = {}
    ignored_station_parents: list[str] = []

    def each(t: Table, row: list[str]) -> None:
        stop_id = t.required(row, "stop_id")
        if stop_id in stops:
            raise t.error(f"duplicate stop_id {stop_id}")
        location_type = t.integer(row, "location_type", default=_STOP_OR_PLATFORM)
        if location_type not in (_STOP_OR_PLATFORM, _STATION):
            # Entrances, generic nodes and boarding areas are never a trip's stop.
            stops[stop_id] = Stop(stop_id, "", 0.0, 0.0, location_type, None, t.line)
            return
        parent = t.optional(row, "parent_station") or None
        if parent and location_type == _STATION:
            ignored_station_parents.append(stop_id)  # GTFS forbids a station's parent
            parent = None
        stops[stop_id] = Stop(
            stop_id=stop_id, name=t.optional(row, "stop_name") or stop_id,
            lat=t.number(row, "stop_lat", -90, 90), lon=t.number(row, "stop_lon", -180, 180),
            location_type=location_type, parent=parent, line=t.line)

    read_file(source, "stops.txt", each)
    for stop in stops.values():
        if stop.parent is None:
            continue
        parent = stops.get(stop.parent)
        if parent is None:
            raise GtfsError("stops.txt", stop.line,
                            f"stop {stop.stop_id}: unknown parent_station {stop.parent}")
        if parent.location_type != _STATION:
            raise GtfsError("stops.txt", stop.line, f"stop {stop.stop_id}: parent_station "
                            f"{stop.parent} is not a station (location_type 1)")
    if ignored_station_parents:
        warnings.append("ignored parent_station of station(s) "
                        + ", ".join(ignored_station_parents[:5]))
    return stops


def _read_routes(source: Source) -> tuple[dict[str, Route], set[str], dict[int, list[str]]]:
    """Routes of the imported modes, every route_id (for references), skipped ids by type."""
    routes: dict[str, Route] = {}
    route_ids: set[str] = set()
    skipped: dict[int, list[str]] = {}

    def each(t: Table, row: list[str]) -> None:
        route_id = t.required(row, "route_id")
        if route_id in route_ids:
            raise t.error(f"duplicate route_id {route_id}")
        route_ids.add(route_id)
        route_type = t.integer(row, "route_type")
        if route_type in METRO_ROUTE_TYPES:
            mode = "metro"
        elif route_type in BUS_ROUTE_TYPES:
            mode = "bus"
        else:
            skipped.setdefault(route_type, []).append(route_id)
            return
        names = (t.optional(row, "route_short_name"), t.optional(row, "route_long_name"))
        routes[route_id] = Route(route_id, mode, " ".join(n for n in names if n) or route_id)

    read_file(source, "routes.txt", each)
    return routes, route_ids, skipped


def _read_trips(
    source: Source, routes: dict[str, Route], route_ids: set[str]
) -> tuple[dict[str, Trip], set[str], dict[str, tuple[str, int]]]:
    """Trips of imported routes, every trip_id, and each shape_id's first use (file, line)."""
    trips: dict[str, Trip] = {}
    trip_ids: set[str] = set()
    shape_refs: dict[str, tuple[str, int]] = {}

    def each(t: Table, row: list[str]) -> None:
        trip_id = t.required(row, "trip_id")
        if trip_id in trip_ids:
            raise t.error(f"duplicate trip_id {trip_id}")
        trip_ids.add(trip_id)
        route_id = t.required(row, "route_id")
        if route_id not in route_ids:
            raise t.error(f"trip {trip_id}: unknown route_id {route_id}")
        if route_id not in routes:
            return  # a skipped mode: its trips are checked for references only
        shape_id = t.optional(row, "shape_id") or None
        if shape_id is not None:
            shape_refs.setdefault(shape_id, (t.name, t.line))
        trips[trip_id] = Trip(trip_id, route_id, t.optional(row, "direction_id"), shape_id,
                               t.line, len(trips))

    read_file(source, "trips.txt", each)
    return trips, trip_ids, shape_refs


def _read_stop_times(
    source: Source, trips: dict[str, Trip], trip_ids: set[str], stops: dict[str, Stop]
) -> None:
    def each(t: Table, row: list[str]) -> None:
        trip_id = t.required(row, "trip_id")
        if trip_id not in trip_ids:
            raise t.error(f"unknown trip_id {trip_id}")
        stop = stops.get(t.required(row, "stop_id"))
        if stop is None:
            raise t.error(f"trip {trip_id}: unknown stop_id {t.required(row, 'stop_id')}")
        if stop.location_type != _STOP_OR_PLATFORM:
            raise t.error(f"trip {trip_id}: stop {stop.stop_id} has location_type "
                          f"{stop.location_type}; trips call at stops or platforms (0)")
        sequence = t.integer(row, "stop_sequence")
        distance = None
        if t.optional(row, "shape_dist_traveled"):
            distance = t.number(row, "shape_dist_traveled", 0, math.inf)
        trip = trips.get(trip_id)
        if trip is not None:
            trip.calls.append((sequence, stop.stop_id, distance, t.line))

    read_file(source, "stop_times.txt", each)


def _order_calls(trip: Trip) -> None:
    """Sort a trip's stops by stop_sequence and check the order makes a trip."""
    # By sequence, then file line: a repeated sequence must reach the check below, and the
    # other fields (a None distance beside a number) cannot be compared.
    trip.calls.sort(key=lambda c: (c[0], c[3]))
    if len(trip.calls) < 2:
        where = ("stop_times.txt", trip.calls[0][3]) if trip.calls else ("trips.txt", trip.line)
        raise GtfsError(*where, f"trip {trip.trip_id} has {len(trip.calls)} stop(s); "
                        "a trip needs at least 2")
    for before, after in zip(trip.calls, trip.calls[1:], strict=False):
        if after[0] == before[0]:
            raise GtfsError("stop_times.txt", after[3],
                            f"trip {trip.trip_id}: stop_sequence {after[0]} repeats")
        if before[2] is not None and after[2] is not None and after[2] < before[2]:
            raise GtfsError("stop_times.txt", after[3], f"trip {trip.trip_id}: "
                            "shape_dist_traveled decreases along the trip")




def _patterns(
    trips: dict[str, Trip], routes: dict[str, Route], warnings: list[str]
) -> dict[str, list[Pattern]]:
    """Each route's distinct stop sequences with their trips, in a stable order."""
    grouped: dict[str, dict[tuple[str, ...], list[Trip]]] = {}
    for trip in trips.values():
        key = tuple(c[1] for c in trip.calls)
        grouped.setdefault(trip.route_id, {}).setdefault(key, []).append(trip)
    result: dict[str, list[Pattern]] = {}
    idle: list[str] = []
    for route_id in routes:
        if route_id not in grouped:
            idle.append(route_id)
            continue
        # Direction first, then the most-run pattern: the same feed always gives the same ids.
        result[route_id] = sorted(grouped[route_id].items(),
                                  key=lambda p: (p[1][0].direction, -len(p[1]), p[1][0].order))
    if idle:
        warnings.append(f"skipped {len(idle)} route(s) without trips: " + ", ".join(idle[:5])
                        + (", ..." if len(idle) > 5 else ""))
    if not result:
        raise GtfsError("trips.txt", None, "no trip on any metro or bus route")
    return result


def _shapes_needed(patterns: dict[str, list[Pattern]]) -> set[str]:
    needed = set()
    for route_patterns in patterns.values():
        for _, members in route_patterns:
            if with_distances(members) is None:
                shaped = next((t for t in members if t.shape_id), None)
                if shaped is not None and shaped.shape_id:
                    needed.add(shaped.shape_id)
    return needed


def _read_shapes(
    source: Source, refs: dict[str, tuple[str, int]], needed: set[str]
) -> dict[str, list[tuple[float, float]]]:
    """The points of the shapes distances are taken from, in order; checks every reference."""
    points: dict[str, list[tuple[int, float, float, int]]] = {}
    present: set[str] = set()

    def each(t: Table, row: list[str]) -> None:
        shape_id = t.required(row, "shape_id")
        present.add(shape_id)
        sequence = t.integer(row, "shape_pt_sequence")
        lat = t.number(row, "shape_pt_lat", -90, 90)
        lon = t.number(row, "shape_pt_lon", -180, 180)
        if shape_id in needed:
            points.setdefault(shape_id, []).append((sequence, lat, lon, t.line))

    if not (source.has("shapes.txt") and read_file(source, "shapes.txt", each, optional=True)):
        if refs:
            shape_id, (file, line) = next(iter(refs.items()))
            raise GtfsError(file, line, f"shape_id {shape_id} but the feed has no shapes")
        return {}
    for shape_id, (file, line) in refs.items():
        if shape_id not in present:
            raise GtfsError(file, line, f"unknown shape_id {shape_id}")
    shapes: dict[str, list[tuple[float, float]]] = {}
    for shape_id, pts in points.items():
        pts.sort()
        for before, after in zip(pts, pts[1:], strict=False):
            if after[0] == before[0]:
                raise GtfsError("shapes.txt", after[3],
                                f"shape {shape_id}: shape_pt_sequence {after[0]} repeats")
        if len(pts) < 2:
            raise GtfsError("shapes.txt", pts[0][3], f"shape {shape_id} has a single point")
        shapes[shape_id] = [(p[1], p[2]) for p in pts]
    return shapes
