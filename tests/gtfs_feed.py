"""Write GTFS Schedule feeds for tests, as a folder or a zip, from plain Python rows.

Files and fields follow the GTFS Schedule reference (https://gtfs.org/schedule/reference/).
``sample_feed()`` is a small invented city, "Lakeside"::

    M1 (route_type 1, east-west)  m1-west -- m1-mid -- hub-m1 -- m1-east
        stop_times carry shape_dist_traveled in kilometres (M1_KM).
    M2 (route_type 1, north-south) m2-north -- m2-n1 -- hub-m2 -- m2-south
        no shape_dist_traveled; shapes.txt has one shape per direction (M2_SHAPE_SOUTH and its
        reverse), with a dogleg between m2-north and m2-n1 so the shape is longer than the
        straight line. m2-n1 sits about 5 m beside the shape.
    B7 (route_type 3)  b-hub -- b1 -- b2 -- b3 -- b4, both directions, plus a short turn
        b-hub -- b1 -- b2; no shape, no shape_dist_traveled.
    T1 (route_type 0, tram): to be skipped by the importer.

hub-m1 and hub-m2 are platforms (location_type 0) of the station hub (location_type 1);
b-hub is a bus stop under the same station and hub-e1 its entrance (location_type 2).
"""

from __future__ import annotations

import copy
import csv
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Row = dict[str, object]

# stop_id -> (name, lat, lon, location_type, parent_station)
STOPS: dict[str, tuple[str, float, float, int, str]] = {
    "hub": ("Hub, Central", 30.0000, 120.0200, 1, ""),
    "hub-m1": ("Hub, Central (M1)", 30.0000, 120.0200, 0, "hub"),
    "hub-m2": ("Hub, Central (M2)", 30.0002, 120.0201, 0, "hub"),
    "hub-e1": ("Hub entrance A", 30.0003, 120.0198, 2, "hub"),
    "b-hub": ("Hub bus stop", 30.0005, 120.0195, 0, "hub"),
    "m1-west": ("West End", 30.0000, 120.0000, 0, ""),
    "m1-mid": ('The "Mid" Stop', 30.0000, 120.0100, 0, ""),
    "m1-east": ("East End", 30.0000, 120.0300, 0, ""),
    "m2-north": ("North Gate", 30.0200, 120.0201, 0, ""),
    "m2-n1": ("Lake Park", 30.0100, 120.02015, 0, ""),
    "m2-south": ("South Pier", 29.9900, 120.0201, 0, ""),
    "b1": ("Elm Street", 30.0050, 120.0100, 0, ""),
    "b2": ("Oak Street", 30.0100, 120.0050, 0, ""),
    "b3": ("Pine Street", 30.0150, 120.0000, 0, ""),
    "b4": ("Birch Street", 30.0200, 119.9950, 0, ""),
    "t1": ("Tram One", 30.0300, 120.0000, 0, ""),
    "t2": ("Tram Two", 30.0300, 120.0100, 0, ""),
}

M1_EAST = ("m1-west", "m1-mid", "hub-m1", "m1-east")
M1_KM = {  # shape_dist_traveled per direction, kilometres from the trip's first stop
    "0": (0.0, 1.05, 2.0, 3.1),
    "1": (0.0, 1.1, 2.05, 3.1),
}
M2_SOUTH = ("m2-north", "m2-n1", "hub-m2", "m2-south")
M2_SHAPE_SOUTH: tuple[tuple[float, float], ...] = (
    (30.0200, 120.0201),  # m2-north
    (30.0150, 120.0240),  # the dogleg
    (30.0100, 120.0201),  # beside m2-n1
    (30.0050, 120.0201),
    (30.0002, 120.0201),  # hub-m2
    (29.9950, 120.0201),
    (29.9900, 120.0201),  # m2-south
)
M2_STOP_AT_SHAPE_POINT = {"m2-north": 0, "m2-n1": 2, "hub-m2": 4, "m2-south": 6}
B7_OUT = ("b-hub", "b1", "b2", "b3", "b4")
B7_SHORT = ("b-hub", "b1", "b2")


@dataclass
class Feed:
    """Rows per file name; columns are the union of the rows' keys, in first-seen order."""

    files: dict[str, list[Row]]
    bom: bool = False
    crlf: bool = False

    def copy(self) -> Feed:
        return copy.deepcopy(self)

    def without_file(self, name: str) -> Feed:
        feed = self.copy()
        del feed.files[name]
        return feed

    def without_column(self, name: str, column: str) -> Feed:
        feed = self.copy()
        for row in feed.files[name]:
            row.pop(column, None)
        return feed

    def edit(self, name: str, match: Callable[[Row], bool], **values: object) -> Feed:
        """Set fields on the rows of a file that ``match`` selects."""
        feed = self.copy()
        for row in feed.files[name]:
            if match(row):
                row.update(values)
        return feed

    def drop_rows(self, name: str, match: Callable[[Row], bool]) -> Feed:
        feed = self.copy()
        feed.files[name] = [r for r in feed.files[name] if not match(r)]
        return feed

    def add_row(self, name: str, **values: object) -> Feed:
        feed = self.copy()
        feed.files.setdefault(name, []).append(dict(values))
        return feed

    def line_of(self, name: str, match: Callable[[Row], bool]) -> int:
        """The file line the first matching row is written on (the header is line 1)."""
        return 2 + next(i for i, r in enumerate(self.files[name]) if match(r))

    def text(self, name: str) -> str:
        rows = self.files[name]
        columns: list[str] = []
        for row in rows:
            columns += [c for c in row if c not in columns]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n" if self.crlf else "\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
        return ("\ufeff" if self.bom else "") + out.getvalue()

    def write_dir(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name in self.files:
            (folder / name).write_bytes(self.text(name).encode())
        return folder

    def write_zip(self, path: Path) -> Path:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in self.files:
                archive.writestr(name, self.text(name).encode())
        return path


def _times(n: int, start_min: int) -> list[str]:
    return [f"{(start_min + 2 * k) // 60:02d}:{(start_min + 2 * k) % 60:02d}:00" for k in range(n)]


def sample_feed() -> Feed:
    """The Lakeside feed described in the module docstring."""
    stops: list[Row] = []
    for stop_id, (name, lat, lon, location_type, parent) in STOPS.items():
        stops.append({"stop_id": stop_id, "stop_code": "", "stop_name": name,
                      "stop_lat": lat, "stop_lon": lon, "location_type": location_type,
                      "parent_station": parent, "wheelchair_boarding": 1,
                      "x_operator_note": "kept, ignored"})
    routes: list[Row] = [
        {"route_id": "M1", "agency_id": "LTA", "route_short_name": "1",
         "route_long_name": "East-West Line", "route_type": 1, "route_color": "D4161B"},
        {"route_id": "M2", "agency_id": "LTA", "route_short_name": "2",
         "route_long_name": "North-South Line", "route_type": 1, "route_color": "009A44"},
        {"route_id": "B7", "agency_id": "LTA", "route_short_name": "7",
         "route_long_name": "", "route_type": 3},
        {"route_id": "T1", "agency_id": "LTA", "route_short_name": "T1",
         "route_long_name": "Lakefront Tram", "route_type": 0},
    ]
    trips: list[Row] = []
    stop_times: list[Row] = []
    shapes: list[Row] = []

    def trip(route: str, trip_id: str, direction: str, stop_ids: tuple[str, ...],
             start_min: int, km: tuple[float, ...] | None = None, shape: str = "",
             reverse_rows: bool = False) -> None:
        trips.append({"route_id": route, "service_id": "WK", "trip_id": trip_id,
                      "trip_headsign": STOPS[stop_ids[-1]][0], "direction_id": direction,
                      "shape_id": shape})
        rows: list[Row] = []
        for k, (stop_id, t) in enumerate(zip(stop_ids, _times(len(stop_ids), start_min),
                                             strict=True)):
            # stop_sequence 5, 10, 15, ...: increasing but not consecutive, and "10" < "5"
            # as text, so only an integer sort gets the order right.
            rows.append({"trip_id": trip_id, "arrival_time": t, "departure_time": t,
                         "stop_id": stop_id, "stop_sequence": 5 * (k + 1),
                         "shape_dist_traveled": "" if km is None else km[k]})
        stop_times.extend(reversed(rows) if reverse_rows else rows)

    m1_west = tuple(reversed(M1_EAST))
    trip("M1", "M1-e-0800", "0", M1_EAST, 480, M1_KM["0"])
    trip("M1", "M1-e-0810", "0", M1_EAST, 490, M1_KM["0"], reverse_rows=True)
    trip("M1", "M1-w-0800", "1", m1_west, 480, M1_KM["1"])
    trip("M1", "M1-w-0810", "1", m1_west, 490, M1_KM["1"])
    m2_north = tuple(reversed(M2_SOUTH))
    trip("M2", "M2-s-0800", "0", M2_SOUTH, 480, shape="M2-S")
    trip("M2", "M2-n-0800", "1", m2_north, 480, shape="M2-N")
    trip("M2", "M2-n-0810", "1", m2_north, 490, shape="M2-N")
    trip("B7", "B7-out-0800", "0", B7_OUT, 480)
    trip("B7", "B7-short-0805", "0", B7_SHORT, 485)
    trip("B7", "B7-out-0815", "0", B7_OUT, 495)
    trip("B7", "B7-in-0800", "1", tuple(reversed(B7_OUT)), 480)
    trip("T1", "T1-0800", "0", ("t1", "t2"), 480)
    for shape_id, points in (("M2-S", M2_SHAPE_SOUTH), ("M2-N", M2_SHAPE_SOUTH[::-1])):
        for k, (lat, lon) in enumerate(points):
            shapes.append({"shape_id": shape_id, "shape_pt_lat": lat, "shape_pt_lon": lon,
                           "shape_pt_sequence": k + 1})
    return Feed(files={
        "agency.txt": [{"agency_id": "LTA", "agency_name": "Lakeside Transit",
                        "agency_url": "https://transit.lakeside.example",
                        "agency_timezone": "Asia/Shanghai"}],
        "calendar.txt": [{"service_id": "WK", "monday": 1, "tuesday": 1, "wednesday": 1,
                          "thursday": 1, "friday": 1, "saturday": 0, "sunday": 0,
                          "start_date": "20260101", "end_date": "20261231"}],
        "stops.txt": stops,
        "routes.txt": routes,
        "trips.txt": trips,
        "stop_times.txt": stop_times,
        "shapes.txt": shapes,
    })
