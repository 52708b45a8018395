"""A GTFS feed (a .zip or a folder) read into the methodology's stations and line patterns.

Pure: no database. The whole feed is parsed and checked before anything is returned, so a
caller that stores the result in one transaction never half-imports a feed.

Modes come from ``routes.route_type``: subway/metro (1), monorail (12) and the extended urban
railway types 400-405 are "metro"; bus (3), trolleybus (11) and the extended bus and
trolleybus types 700-716 and 800 are "bus". Other routes (tram, rail, ferry, ...) are skipped
and named in ``ParsedFeed.warnings``.

Each route becomes one ``Line`` per distinct stop sequence of its trips (a pattern: one per
direction and variant), with the cumulative distance of each stop in whole metres from the
pattern's first stop, taken from the first of these that the pattern's trips provide:

1. ``stop_times.shape_dist_traveled`` on every stop of a trip. GTFS leaves its unit to the
   producer, so the unit is detected per trip from the ratio ``r`` of the trip's total
   shape_dist_traveled to the great-circle length along its stops: metres when
   ``MIN_DETOUR <= r <= MAX_DETOUR``, kilometres when that holds for ``r * 1000``; any other
   ratio rejects the feed (see the two constants for why the window is where it is).
2. ``shapes.txt`` for a trip with a ``shape_id``: each stop is matched to a nearby point of
   the shape, in stop order, and distances run along the shape (great-circle between shape
   points). A stop with no shape point within ``MAX_STOP_OFFSET_M`` (in order) makes the
   shape untrustworthy for that pattern: it falls back to 3, with a warning.
3. Otherwise great-circle distances between consecutive stops (an under-estimate, never an
   over-estimate, which is the safe side for crediting).
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from methodology.geo import EARTH_RADIUS_M, haversine_m
from methodology.network import Line, Station

REQUIRED_FILES = ("stops.txt", "routes.txt", "trips.txt", "stop_times.txt")

METRO_ROUTE_TYPES = frozenset({1, 12, *range(400, 406)})
"""Subway/metro, monorail; extended: urban railway 400-404 and monorail 405."""
BUS_ROUTE_TYPES = frozenset({3, 11, *range(700, 717), 800})
"""Bus, trolleybus; extended: bus services 700-716 and trolleybus 800."""

# A route through its stops is never shorter than the straight legs between them (ratio >= 1);
# the 10 % slack absorbs stop positions beside the track. A bound well above 1/1.609 also
# refuses miles that would otherwise pass for kilometres.
MIN_DETOUR = 0.9
"""Lowest accepted ratio of along-route to straight-line length, once in metres."""
MAX_DETOUR = 3.0
"""Highest accepted ratio: beyond three times the straight-line length the unit is wrong."""
MAX_STOP_OFFSET_M = 150.0
"""A stop farther than this from the shape means the shape does not fit the trip."""

_STOP_OR_PLATFORM, _STATION = 0, 1

_COLUMNS = {
    "stops.txt": ("stop_id", "stop_name", "stop_lat", "stop_lon"),
    "routes.txt": ("route_id", "route_type"),
    "trips.txt": ("route_id", "trip_id"),
    "stop_times.txt": ("trip_id", "stop_id", "stop_sequence"),
    "shapes.txt": ("shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence"),
}
"""The columns this importer reads and cannot do without, per file."""


class GtfsError(Exception):
    """A feed that cannot be imported, located by file and line (1-based, header is 1)."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file, self.line, self.message = file, line, message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")


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


# --- reading files --------------------------------------------------------------------------

class _Source:
    """The files of a feed, from a zip archive or a folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self._names = {p.name for p in path.iterdir() if p.is_file()}
        elif path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise GtfsError(path.name, None, f"not a zip archive: {exc}") from None
            # GTFS puts the files at the archive's root; folders inside are not looked into.
            self._names = {n for n in self._zip.namelist() if "/" not in n.rstrip("/")}
        else:
            raise GtfsError(str(path), None, "no such file or folder")

    def has(self, name: str) -> bool:
        return name in self._names

    @contextmanager
    def open(self, name: str) -> Iterator[IO[str]]:
        if not self.has(name):
            raise GtfsError(name, None, "required file is missing from the feed")
        # utf-8-sig drops a byte-order mark; newline="" lets csv handle CRLF and quoted breaks.
        if self._zip is not None:
            with self._zip.open(name) as raw, io.TextIOWrapper(
                    raw, encoding="utf-8-sig", newline="") as text:
                yield text
        else:
            with (self.path / name).open(encoding="utf-8-sig", newline="") as text:
                yield text

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


class _Table:
    """One CSV file: its column positions, then its rows; ``line`` is the current row's."""

    def __init__(self, name: str, text: IO[str], required: tuple[str, ...]) -> None:
        self.name = name
        self._text = text
        self._physical = 0
        self._reader = csv.reader(self._lines(), strict=True)
        self.line = 0
        header = self._next()
        if header is None:
            raise GtfsError(name, 1, "empty file: no header row")
        self.columns = {c.strip(): i for i, c in reversed(list(enumerate(header)))}
        for column in required:
            if column not in self.columns:
                raise GtfsError(name, 1, f"missing required column {column}")

    def _lines(self) -> Iterator[str]:
        try:
            for line in self._text:
                self._physical += 1
                # PostgreSQL refuses NUL in text; no GTFS field can legitimately hold one.
                if "\x00" in line:
                    raise GtfsError(self.name, self._physical, "NUL character in the file")
                yield line
        except UnicodeDecodeError:
            # Decoding runs a buffer ahead of the lines, so the position is approximate.
            raise GtfsError(self.name, self._physical + 1, "not UTF-8 text (at or after this "
                            "line)") from None

    def _next(self) -> list[str] | None:
        while True:
            start = self._physical + 1
            try:
                row = next(self._reader)
            except StopIteration:
                return None
            except csv.Error as exc:
                raise GtfsError(self.name, start, f"malformed CSV: {exc}") from None
            self.line = start
            if row and any(f.strip() for f in row):  # blank lines carry no record
                return row

    def rows(self) -> Iterator[list[str]]:
        width = max(self.columns.values(), default=-1) + 1
        while (row := self._next()) is not None:
            if len(row) < width:
                row += [""] * (width - len(row))
            yield [f.strip() for f in row]

    def error(self, message: str) -> GtfsError:
        return GtfsError(self.name, self.line, message)

    def required(self, row: list[str], column: str) -> str:
        value = row[self.columns[column]]
        if not value:
            raise self.error(f"empty {column}")
        return value

    def optional(self, row: list[str], column: str) -> str:
        i = self.columns.get(column)
        return row[i] if i is not None else ""

    def number(self, row: list[str], column: str, low: float, high: float) -> float:
        text = self.required(row, column)
        try:
            value = float(text)
        except ValueError:
            raise self.error(f"{column} is not a number: {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise self.error(f"{column} out of range [{low:g}, {high:g}]: {text!r}")
        return value

    def integer(self, row: list[str], column: str, *, default: int | None = None) -> int:
        text = row[self.columns[column]] if column in self.columns else ""
        if not text and default is not None:
            return default
        if not text:
            raise self.error(f"empty {column}")
        try:
            value = int(text)
        except ValueError:
            raise self.error(f"{column} is not a whole number: {text!r}") from None
        if value < 0:
            raise self.error(f"{column} must not be negative: {text!r}")
        return value


def _read(source: _Source, name: str, each: Callable[[_Table, list[str]], None], *,
          optional: bool = False) -> bool:
    """Feed every row to ``each``; False for an optional file that is empty, header and all."""
    with source.open(name) as text:
        try:
            table = _Table(name, text, _COLUMNS[name])
        except GtfsError as exc:
            if optional and exc.message.startswith("empty file"):
                return False
            raise
        for row in table.rows():
            each(table, row)
    return True


# --- the parsed pieces ----------------------------------------------------------------------

@dataclass
class _Stop:
    stop_id: str
    name: str
    lat: float
    lon: float
    location_type: int
    parent: str | None
    line: int


@dataclass
class _Route:
    route_id: str
    mode: str
    name: str


@dataclass
class _Trip:
    trip_id: str
    route_id: str
    direction: str
    shape_id: str | None
    line: int
    order: int
    calls: list[tuple[int, str, float | None, int]] = field(default_factory=list)
    """(stop_sequence, stop_id, shape_dist_traveled, stop_times line), sorted after reading."""


def parse_feed(path: Path) -> ParsedFeed:
    """Read and check a whole GTFS feed (zip or folder); raise GtfsError on the first fault."""
    source = _Source(path)
    try:
        return _parse(source)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise GtfsError(path.name, None, f"damaged zip archive: {exc}") from None
    finally:
        source.close()


def _parse(source: _Source) -> ParsedFeed:
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
            cumulative = _distances(line_id, stop_ids, members, stops, shapes, warnings, units)
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


def _read_stops(source: _Source, warnings: list[str]) -> dict[str, _Stop]:
    stops: dict[str, _Stop] = {}
    ignored_station_parents: list[str] = []

    def each(t: _Table, row: list[str]) -> None:
        stop_id = t.required(row, "stop_id")
        if stop_id in stops:
            raise t.error(f"duplicate stop_id {stop_id}")
        location_type = t.integer(row, "location_type", default=_STOP_OR_PLATFORM)
        if location_type not in (_STOP_OR_PLATFORM, _STATION):
            # Entrances, generic nodes and boarding areas are never a trip's stop.
            stops[stop_id] = _Stop(stop_id, "", 0.0, 0.0, location_type, None, t.line)
            return
        parent = t.optional(row, "parent_station") or None
        if parent and location_type == _STATION:
            ignored_station_parents.append(stop_id)  # GTFS forbids a station's parent
            parent = None
        stops[stop_id] = _Stop(
            stop_id=stop_id, name=t.optional(row, "stop_name") or stop_id,
            lat=t.number(row, "stop_lat", -90, 90), lon=t.number(row, "stop_lon", -180, 180),
            location_type=location_type, parent=parent, line=t.line)

    _read(source, "stops.txt", each)
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


def _read_routes(source: _Source) -> tuple[dict[str, _Route], set[str], dict[int, list[str]]]:
    """Routes of the imported modes, every route_id (for references), skipped ids by type."""
    routes: dict[str, _Route] = {}
    route_ids: set[str] = set()
    skipped: dict[int, list[str]] = {}

    def each(t: _Table, row: list[str]) -> None:
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
        routes[route_id] = _Route(route_id, mode, " ".join(n for n in names if n) or route_id)

    _read(source, "routes.txt", each)
    return routes, route_ids, skipped


def _read_trips(
    source: _Source, routes: dict[str, _Route], route_ids: set[str]
) -> tuple[dict[str, _Trip], set[str], dict[str, tuple[str, int]]]:
    """Trips of imported routes, every trip_id, and each shape_id's first use (file, line)."""
    trips: dict[str, _Trip] = {}
    trip_ids: set[str] = set()
    shape_refs: dict[str, tuple[str, int]] = {}

    def each(t: _Table, row: list[str]) -> None:
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
        trips[trip_id] = _Trip(trip_id, route_id, t.optional(row, "direction_id"), shape_id,
                               t.line, len(trips))

    _read(source, "trips.txt", each)
    return trips, trip_ids, shape_refs


def _read_stop_times(
    source: _Source, trips: dict[str, _Trip], trip_ids: set[str], stops: dict[str, _Stop]
) -> None:
    def each(t: _Table, row: list[str]) -> None:
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

    _read(source, "stop_times.txt", each)


def _order_calls(trip: _Trip) -> None:
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


_Pattern = tuple[tuple[str, ...], list[_Trip]]


def _patterns(
    trips: dict[str, _Trip], routes: dict[str, _Route], warnings: list[str]
) -> dict[str, list[_Pattern]]:
    """Each route's distinct stop sequences with their trips, in a stable order."""
    grouped: dict[str, dict[tuple[str, ...], list[_Trip]]] = {}
    for trip in trips.values():
        key = tuple(c[1] for c in trip.calls)
        grouped.setdefault(trip.route_id, {}).setdefault(key, []).append(trip)
    result: dict[str, list[_Pattern]] = {}
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


def _with_distances(members: list[_Trip]) -> _Trip | None:
    return next((t for t in members if all(c[2] is not None for c in t.calls)), None)


def _shapes_needed(patterns: dict[str, list[_Pattern]]) -> set[str]:
    needed = set()
    for route_patterns in patterns.values():
        for _, members in route_patterns:
            if _with_distances(members) is None:
                shaped = next((t for t in members if t.shape_id), None)
                if shaped is not None and shaped.shape_id:
                    needed.add(shaped.shape_id)
    return needed


def _read_shapes(
    source: _Source, refs: dict[str, tuple[str, int]], needed: set[str]
) -> dict[str, list[tuple[float, float]]]:
    """The points of the shapes distances are taken from, in order; checks every reference."""
    points: dict[str, list[tuple[int, float, float, int]]] = {}
    present: set[str] = set()

    def each(t: _Table, row: list[str]) -> None:
        shape_id = t.required(row, "shape_id")
        present.add(shape_id)
        sequence = t.integer(row, "shape_pt_sequence")
        lat = t.number(row, "shape_pt_lat", -90, 90)
        lon = t.number(row, "shape_pt_lon", -180, 180)
        if shape_id in needed:
            points.setdefault(shape_id, []).append((sequence, lat, lon, t.line))

    if not (source.has("shapes.txt") and _read(source, "shapes.txt", each, optional=True)):
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


# --- distances ------------------------------------------------------------------------------

def _distances(
    line_id: str, stop_ids: tuple[str, ...], members: list[_Trip], stops: dict[str, _Stop],
    shapes: dict[str, list[tuple[float, float]]], warnings: list[str], units: set[str],
) -> tuple[int, ...]:
    """Cumulative whole metres from the pattern's first stop (see the module docstring)."""
    coords = [(stops[s].lat, stops[s].lon) for s in stop_ids]
    straight = [0.0]
    for a, b in zip(coords, coords[1:], strict=False):
        straight.append(straight[-1] + haversine_m(*a, *b))
    metres: list[float] = straight
    measured = _with_distances(members)
    shaped = next((t for t in members if t.shape_id), None)
    if measured is not None:
        metres = _from_shape_dist(measured, straight[-1], units)
    elif shaped is not None and shaped.shape_id:
        positions, unmatched = _along_shape(shapes[shaped.shape_id], coords)
        if unmatched is None:
            metres = [m - positions[0] for m in positions]
        else:
            warnings.append(
                f"pattern {line_id}: stop {stop_ids[unmatched]} is not within "
                f"{MAX_STOP_OFFSET_M:g} m of shape {shaped.shape_id} in stop order; used "
                "straight lines between stops instead")
    result: list[int] = []
    for m in metres:
        # Rounding keeps order; the running maximum guards the shape matcher's same-segment ties.
        result.append(max(round(m), result[-1] if result else 0))
    return tuple(result)


def _from_shape_dist(trip: _Trip, straight_m: float, units: set[str]) -> list[float]:
    """A trip's shape_dist_traveled in metres from its first stop, the unit detected."""
    raw = [c[2] for c in trip.calls if c[2] is not None]
    total = raw[-1] - raw[0]
    line = trip.calls[0][3]
    if straight_m < 1.0:
        if total == 0:
            return [0.0] * len(raw)
        raise GtfsError("stop_times.txt", line, f"trip {trip.trip_id}: the unit of "
                        "shape_dist_traveled cannot be told: all its stops share one position")
    ratio = total / straight_m
    if MIN_DETOUR <= ratio <= MAX_DETOUR:
        factor, unit = 1.0, "m"
    elif MIN_DETOUR <= ratio * 1000 <= MAX_DETOUR:
        factor, unit = 1000.0, "km"
    else:
        raise GtfsError(
            "stop_times.txt", line,
            f"trip {trip.trip_id}: shape_dist_traveled totals {total:g} for {straight_m:.0f} m "
            f"of straight line between its stops: neither metres nor kilometres (the "
            f"along-route length must be {MIN_DETOUR:g} to {MAX_DETOUR:g} times the straight one)")
    units.add(unit)
    return [(d - raw[0]) * factor for d in raw]


def _along_shape(
    shape: list[tuple[float, float]], stops: list[tuple[float, float]]
) -> tuple[list[float], int | None]:
    """Stop positions along the shape (metres from its start), or the first unmatched stop."""
    # A stop may match any shape segment within MAX_STOP_OFFSET_M; dynamic programming then
    # picks, never going back along the shape, the matches with the least total offset.
    # Taking each stop's nearest point greedily fails where a shape passes the same place
    # twice (a loop, a terminus served at both ends). Matching uses a local flat projection,
    # fine at city scale; lengths along the shape are great-circle between shape points.
    lat0 = math.radians(sum(p[0] for p in shape) / len(shape))
    ky = math.pi / 180 * EARTH_RADIUS_M
    kx = ky * math.cos(lat0)
    xs = [p[1] * kx for p in shape]
    ys = [p[0] * ky for p in shape]
    along = [0.0]
    for a, b in zip(shape, shape[1:], strict=False):
        along.append(along[-1] + haversine_m(*a, *b))
    # A grid of segments, so each stop measures only the few segments that can be in reach
    # (all of them would make a city's bus feed take minutes). A segment is entered in the
    # cell of every point sampled each half cell along it; a point within one cell of a stop
    # then has a sample within 1.25 cells, so a 5 x 5 neighbourhood finds every candidate.
    cell = MAX_STOP_OFFSET_M
    grid: dict[tuple[int, int], list[int]] = {}
    for j in range(len(shape) - 1):
        dx, dy = xs[j + 1] - xs[j], ys[j + 1] - ys[j]
        samples = int(math.hypot(dx, dy) / (cell / 2)) + 1
        keys = {(math.floor((xs[j] + dx * k / samples) / cell),
                 math.floor((ys[j] + dy * k / samples) / cell)) for k in range(samples + 1)}
        for key in keys:
            grid.setdefault(key, []).append(j)

    def candidates(lat: float, lon: float) -> list[tuple[int, float, float]]:
        """(segment, fraction along it, offset) for every segment within reach, in order."""
        sx, sy = lon * kx, lat * ky
        cx, cy = math.floor(sx / cell), math.floor(sy / cell)
        near = {j for gx in range(cx - 2, cx + 3) for gy in range(cy - 2, cy + 3)
                for j in grid.get((gx, gy), ())}
        found = []
        for j in sorted(near):
            dx, dy = xs[j + 1] - xs[j], ys[j + 1] - ys[j]
            norm = dx * dx + dy * dy
            t = 0.0 if norm == 0 else ((sx - xs[j]) * dx + (sy - ys[j]) * dy) / norm
            t = min(1.0, max(0.0, t))
            offset = math.hypot(sx - xs[j] - t * dx, sy - ys[j] - t * dy)
            if offset <= MAX_STOP_OFFSET_M:
                found.append((j, t, offset))
        return found

    matches = [candidates(lat, lon) for lat, lon in stops]
    if not matches[0]:
        return [], 0
    # cost[k]: least total offset of the stops so far with this stop on matches[i][k].
    cost = [m[2] for m in matches[0]]
    back: list[list[int]] = []
    for i in range(1, len(stops)):
        previous, here = matches[i - 1], matches[i]
        links, new_cost = [], []
        best, best_k, m = math.inf, -1, 0
        for j, _, offset in here:
            while m < len(previous) and previous[m][0] <= j:  # both lists run by segment
                if cost[m] < best:
                    best, best_k = cost[m], m
                m += 1
            links.append(best_k)
            new_cost.append(offset + best)
        if not any(c < math.inf for c in new_cost):
            return [], i
        back.append(links)
        cost = new_cost
    chosen = [min(range(len(cost)), key=cost.__getitem__)]
    for links in reversed(back):
        chosen.append(links[chosen[-1]])
    chosen.reverse()
    positions = []
    for i, k in enumerate(chosen):
        j, t, _ = matches[i][k]
        positions.append(along[j] + t * (along[j + 1] - along[j]))
    return positions, None
