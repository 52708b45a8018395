"""The parsed pieces of a GTFS feed, before they become the methodology's stations and
lines (gtfs/parse.py)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Stop:
    stop_id: str
    name: str
    lat: float
    lon: float
    location_type: int
    parent: str | None
    line: int


@dataclass
class Route:
    route_id: str
    mode: str
    name: str


@dataclass
class Trip:
    trip_id: str
    route_id: str
    direction: str
    shape_id: str | None
    line: int
    order: int
    calls: list[tuple[int, str, float | None, int]] = field(default_factory=list)
    """(stop_sequence, stop_id, shape_dist_traveled, stop_times line), sorted after reading."""


Pattern = tuple[tuple[str, ...], list[Trip]]
"""A line pattern: its stop sequence and the trips that run it."""


def with_distances(members: list[Trip]) -> Trip | None:
    """The first of a pattern's trips with shape_dist_traveled on every stop, if any."""
    return next((t for t in members if all(c[2] is not None for c in t.calls)), None)
