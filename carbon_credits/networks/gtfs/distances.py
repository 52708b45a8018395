"""Distances along a line pattern: shape_dist_traveled (unit detected), a shape, or
great-circle legs, in that order of preference (gtfs/__init__.py)."""

from __future__ import annotations

import math

from carbon_credits.networks.gtfs.files import GtfsError
from carbon_credits.networks.gtfs.pieces import Stop, Trip, with_distances
from methodology.geo import EARTH_RADIUS_M, haversine_m

# A route through its stops is never shorter than the straight legs between them (ratio >= 1);
# the 10 % slack absorbs stop positions beside the track. A bound well above 1/1.609 also
# refuses miles that would otherwise pass for kilometres.
MIN_DETOUR = 0.9
"""Lowest accepted ratio of along-route to straight-line length, once in metres."""
MAX_DETOUR = 3.0
"""Highest accepted ratio: beyond three times the straight-line length the unit is wrong."""
MAX_STOP_OFFSET_M = 150.0
"""A stop farther than this from the shape means the shape does not fit the trip."""


def distances(
    line_id: str, stop_ids: tuple[str, ...], members: list[Trip], stops: dict[str, Stop],
    shapes: dict[str, list[tuple[float, float]]], warnings: list[str], units: set[str],
) -> tuple[int, ...]:
    """Cumulative whole metres from the pattern's first stop (see the module docstring)."""
    coords = [(stops[s].lat, stops[s].lon) for s in stop_ids]
    straight = [0.0]
    for a, b in zip(coords, coords[1:], strict=False):
        straight.append(straight[-1] + haversine_m(*a, *b))
    metres: list[float] = straight
    measured = with_distances(members)
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


def _from_shape_dist(trip: Trip, straight_m: float, units: set[str]) -> list[float]:
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
