"""A city's transit network as the methodology sees it: stations, lines, distances.

Distances are integer metres. Metro distances are shortest paths over the metro graph
(transfers allowed, a transfer costs no distance), precomputed for all station pairs when
the network is built so that one trip costs one dictionary lookup. Integer edge weights keep
the results exactly symmetric and exactly obedient to the triangle inequality.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Station:
    """A GTFS stop or station; ``parent`` is its parent_station, if any."""

    stop_id: str
    name: str
    lat: float
    lon: float
    parent: str | None = None
    district: str | None = None
    """The city district the stop lies in, when the network says (reports group by it)."""


@dataclass(frozen=True)
class Line:
    """One stop pattern of a route, with the cumulative distance of each stop from the first.

    A GTFS route (``route_id``, the ``line_id`` riders post) usually has several patterns:
    one per direction and variant. A pattern's own ``line_id`` is unique in the network; when
    a route has a single pattern the two ids may be the same.
    """

    line_id: str
    mode: str
    name: str
    stops: tuple[str, ...]
    cumulative_m: tuple[int, ...]
    avg_trip_m: int | None = None
    """The route's average trip length (from operator data), for tap-on-only rides."""
    route_id: str = ""
    """The route this pattern belongs to; empty means the pattern is its own route."""

    def __post_init__(self) -> None:
        if not self.route_id:
            object.__setattr__(self, "route_id", self.line_id)
        if len(self.stops) != len(self.cumulative_m) or len(self.stops) < 2:
            raise ValueError(f"line {self.line_id}: needs >= 2 stops, one distance per stop")
        if any(b < a for a, b in zip(self.cumulative_m, self.cumulative_m[1:], strict=False)):
            raise ValueError(f"line {self.line_id}: cumulative distances must not decrease")
        if self.avg_trip_m is not None and self.avg_trip_m < 0:
            raise ValueError(f"line {self.line_id}: average trip length must not be negative")

    @property
    def length_m(self) -> int:
        return self.cumulative_m[-1] - self.cumulative_m[0]

    def position(self, stop_id: str) -> int | None:
        try:
            return self.stops.index(stop_id)
        except ValueError:
            return None


class UnknownStation(KeyError):
    """A stop or station id that is not in the network (or not on the line)."""


class TransitNetwork:
    """An immutable, versioned network with all-pairs metro distances."""

    def __init__(
        self,
        city: str,
        version: str,
        stations: Iterable[Station],
        lines: Iterable[Line],
    ) -> None:
        self.city = city
        self.version = version
        self.stations: Mapping[str, Station] = {s.stop_id: s for s in stations}
        # parent_station ids are valid station ids even when the feed lists only platforms.
        self._parents = frozenset(s.parent for s in self.stations.values() if s.parent)
        self.lines: Mapping[str, Line] = {ln.line_id: ln for ln in lines}
        routes: dict[str, list[Line]] = {}
        for ln in self.lines.values():
            routes.setdefault(ln.route_id, []).append(ln)
        self.routes: Mapping[str, tuple[Line, ...]] = {k: tuple(v) for k, v in routes.items()}
        for line in self.lines.values():
            for stop in line.stops:
                if stop not in self.stations:
                    raise ValueError(f"line {line.line_id} uses unknown stop {stop}")
        self._metro = _all_pairs(self._metro_edges())

    def station_key(self, stop_id: str) -> str:
        """The node a stop stands for: its parent station when it has one."""
        station = self.stations.get(stop_id)
        if station is None:
            if stop_id in self._parents:
                return stop_id
            raise UnknownStation(stop_id)
        return station.parent or station.stop_id

    def _metro_edges(self) -> dict[str, dict[str, int]]:
        graph: dict[str, dict[str, int]] = {}
        for line in self.lines.values():
            if line.mode != "metro":
                continue
            nodes = [self.station_key(s) for s in line.stops]
            for i in range(len(nodes) - 1):
                a, b = nodes[i], nodes[i + 1]
                w = line.cumulative_m[i + 1] - line.cumulative_m[i]
                for x, y in ((a, b), (b, a)):
                    edges = graph.setdefault(x, {})
                    if y not in edges or w < edges[y]:
                        edges[y] = w
        return graph

    @property
    def metro_stations(self) -> Sequence[str]:
        return sorted(self._metro)

    def metro_distance_m(self, entry_stop: str, exit_stop: str) -> int:
        """Shortest network distance between two metro stations, metres."""
        a, b = self.station_key(entry_stop), self.station_key(exit_stop)
        if a not in self._metro:
            raise UnknownStation(entry_stop)
        if b not in self._metro:
            raise UnknownStation(exit_stop)
        try:
            return self._metro[a][b]
        except KeyError:
            raise UnknownStation(exit_stop) from None  # not reachable from the entry

    def line(self, line_id: str) -> Line:
        line = self.lines.get(line_id)
        if line is None:
            raise KeyError(line_id)
        return line

    def along_line_m(self, line_id: str, board_stop: str, alight_stop: str) -> int:
        """Distance along a line's pattern between two of its stops, metres."""
        line = self.line(line_id)
        boards, alights = self._positions(line, board_stop), self._positions(line, alight_stop)
        c = line.cumulative_m
        # A loop pattern lists its terminus twice: take the shortest reading, never the longest.
        return min(abs(c[j] - c[i]) for i in boards for j in alights)

    def farthest_from_m(self, line_id: str, board_stop: str) -> int:
        """The longest ride possible from a stop along its line, either direction."""
        line = self.line(line_id)
        i = self._on_line(line, board_stop)
        c = line.cumulative_m
        return max(c[i] - c[0], c[-1] - c[i])

    def route_distance_m(self, route_id: str, board_stop: str, alight_stop: str) -> int:
        """Distance along a route between two stops, over the patterns that serve both.

        Patterns where the rider travels forward (board before alight) are preferred; a
        pattern listed in one direction only is read both ways. The shortest candidate is
        used, so an ambiguous ride is never over-credited.
        """
        patterns = self.routes.get(route_id)
        if not patterns:
            raise KeyError(route_id)
        forward: list[int] = []
        either: list[int] = []
        board_seen = alight_seen = False
        for line in patterns:
            boards = self._positions_or_empty(line, board_stop)
            alights = self._positions_or_empty(line, alight_stop)
            board_seen, alight_seen = board_seen or bool(boards), alight_seen or bool(alights)
            c = line.cumulative_m
            for i in boards:
                for j in alights:
                    (forward if j >= i else either).append(abs(c[j] - c[i]))
        if not board_seen:
            raise UnknownStation(board_stop)
        if not alight_seen or not (forward or either):
            raise UnknownStation(alight_stop)
        return min(forward) if forward else min(either)

    def route_farthest_from_m(self, route_id: str, board_stop: str) -> int:
        """The longest ride possible from a stop on any pattern of the route."""
        patterns = self.routes.get(route_id)
        if not patterns:
            raise KeyError(route_id)
        best = -1
        for line in patterns:
            c = line.cumulative_m
            for i in self._positions_or_empty(line, board_stop):
                best = max(best, c[i] - c[0], c[-1] - c[i])
        if best < 0:
            raise UnknownStation(board_stop)
        return best

    def route_length_m(self, route_id: str) -> int:
        return max(line.length_m for line in self.routes[route_id])

    def _positions_or_empty(self, line: Line, stop_id: str) -> list[int]:
        try:
            return self._positions(line, stop_id)
        except UnknownStation:
            return []

    def _on_line(self, line: Line, stop_id: str) -> int:
        return self._positions(line, stop_id)[0]

    def _positions(self, line: Line, stop_id: str) -> list[int]:
        # Riders may name the station while the pattern lists one of its platforms.
        key = self.station_key(stop_id)
        found = [k for k, s in enumerate(line.stops) if s == stop_id or self.station_key(s) == key]
        if not found:
            raise UnknownStation(stop_id)
        return found


def _all_pairs(graph: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """Dijkstra from every node: O(V E log V), milliseconds for a few hundred stations."""
    result: dict[str, dict[str, int]] = {}
    for source in graph:
        dist: dict[str, int] = {source: 0}
        heap: list[tuple[int, str]] = [(0, source)]
        while heap:
            d, node = heapq.heappop(heap)
            if d > dist[node]:
                continue
            for nxt, w in graph[node].items():
                nd = d + w
                if nd < dist.get(nxt, nd + 1):
                    dist[nxt] = nd
                    heapq.heappush(heap, (nd, nxt))
        result[source] = dist
    return result
