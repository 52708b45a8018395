"""Factor versions and transit networks as the methodology needs them, cached per process.

Both are immutable once stored (a trigger refuses edits to factor versions; a network is
replaced by importing a new version), so a parsed copy keyed by row id never goes stale.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, literal, select
from sqlalchemy.orm import Session

from carbon_credits.models import FactorVersion, Network, NetworkLine, NetworkLineStop, NetworkStop
from methodology import FactorSet, Line, Station, TransitNetwork


@dataclass(frozen=True)
class VersionedFactors:
    id: int
    effective_from: datetime
    factors: FactorSet


class Catalog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._factors: dict[int, FactorSet] = {}
        self._networks: dict[int, TransitNetwork] = {}

    def factors_at(
        self, session: Session, city: str, mode: str, at: datetime
    ) -> VersionedFactors | None:
        """The factor version in force for ``city``/``mode`` at the instant ``at``."""
        return self.factors_and_network(session, city, mode, at, with_network=False)[0]

    def factors_and_network(
        self, session: Session, city: str, mode: str, at: datetime, *, with_network: bool
    ) -> tuple[VersionedFactors | None, tuple[int, TransitNetwork] | None]:
        """The factor version in force at ``at`` and, if asked, the city's newest network,
        in one round trip (the ingest path needs both for every trip)."""
        newest = _newest_network(city).scalar_subquery()
        query = (select(FactorVersion, newest if with_network else literal(None))
                 .where(FactorVersion.city == city, FactorVersion.mode == mode,
                        FactorVersion.effective_from <= at)
                 .order_by(FactorVersion.effective_from.desc())
                 .limit(1))
        found = session.execute(query).first()
        if found is None:
            return None, None
        row, network_id = found
        network = None if network_id is None else (
            network_id, self.network_by_id(session, network_id))
        return self._versioned(row), network

    def factors_by_id(self, session: Session, version_id: int) -> VersionedFactors:
        """A stored factor version by id (an event's own, for re-quantifying it)."""
        return self._versioned(session.get_one(FactorVersion, version_id))

    def _versioned(self, row: FactorVersion) -> VersionedFactors:
        with self._lock:
            parsed = self._factors.get(row.id)
        if parsed is None:
            parsed = FactorSet.from_dict(row.factors)
            with self._lock:
                self._factors[row.id] = parsed
        return VersionedFactors(row.id, row.effective_from, parsed)

    def has_factors(self, session: Session, city: str, mode: str) -> bool:
        """Whether any factor version exists for a city and mode."""
        return session.scalar(
            select(FactorVersion.id)
            .where(FactorVersion.city == city, FactorVersion.mode == mode).limit(1)
        ) is not None

    def network(self, session: Session, city: str) -> tuple[int, TransitNetwork] | None:
        """The newest imported network of a city."""
        network_id = session.scalar(_newest_network(city))
        if network_id is None:
            return None
        return network_id, self.network_by_id(session, network_id)

    def network_by_id(self, session: Session, network_id: int) -> TransitNetwork:
        """A stored network version, whether or not it is still the newest."""
        with self._lock:
            cached = self._networks.get(network_id)
        if cached is None:
            cached = load_network(session, network_id)
            with self._lock:
                self._networks[network_id] = cached
        return cached


def _newest_network(city: str) -> Select[int]:
    """The id of a city's newest imported network version (the highest id)."""
    return select(Network.id).where(Network.city == city).order_by(Network.id.desc()).limit(1)


def load_network(session: Session, network_id: int) -> TransitNetwork:
    net = session.get_one(Network, network_id)
    stops = session.scalars(select(NetworkStop).where(NetworkStop.network_id == network_id))
    stations = [Station(s.stop_id, s.name, s.lat, s.lon, s.parent_stop_id, s.district)
                for s in stops]
    patterns: dict[str, list[NetworkLineStop]] = {}
    for ls in session.scalars(
        select(NetworkLineStop)
        .where(NetworkLineStop.network_id == network_id)
        .order_by(NetworkLineStop.line_id, NetworkLineStop.seq)
    ):
        patterns.setdefault(ls.line_id, []).append(ls)
    lines = [
        Line(line_id=ln.line_id, mode=ln.mode, name=ln.name,
             stops=tuple(p.stop_id for p in patterns.get(ln.line_id, [])),
             cumulative_m=tuple(p.dist_m for p in patterns.get(ln.line_id, [])),
             avg_trip_m=ln.avg_trip_m, route_id=ln.route_id)
        for ln in session.scalars(select(NetworkLine).where(NetworkLine.network_id == network_id))
    ]
    return TransitNetwork(net.city, net.version, stations, lines)


def store_network(
    session: Session, city: str, version: str, source: str,
    stations: list[Station], lines: list[Line],
) -> Network:
    """Persist a new network version (validated by building it first)."""
    TransitNetwork(city, version, stations, lines)  # raises on an inconsistent network
    net = Network(city=city, version=version, source=source)
    session.add(net)
    session.flush()
    session.add_all(
        NetworkStop(network_id=net.id, stop_id=s.stop_id, name=s.name, lat=s.lat, lon=s.lon,
                    parent_stop_id=s.parent, district=s.district)
        for s in stations
    )
    session.flush()
    for ln in lines:
        session.add(NetworkLine(network_id=net.id, line_id=ln.line_id, route_id=ln.route_id,
                                mode=ln.mode, name=ln.name, avg_trip_m=ln.avg_trip_m))
    session.flush()
    session.add_all(
        NetworkLineStop(network_id=net.id, line_id=ln.line_id, seq=i, stop_id=stop, dist_m=d)
        for ln in lines
        for i, (stop, d) in enumerate(zip(ln.stops, ln.cumulative_m, strict=True))
    )
    return net
