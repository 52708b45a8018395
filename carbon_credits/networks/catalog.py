"""Factor versions and transit networks as the methodology needs them, cached per process.

Both are immutable once stored (a trigger refuses edits to factor versions; a network is
replaced by importing a new version), so a parsed copy keyed by row id never goes stale.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, SQLColumnExpression, bindparam, select
from sqlalchemy.orm import Session

from carbon_credits.storage.models import (
    FactorVersion,
    Network,
    NetworkLine,
    NetworkLineStop,
    NetworkStop,
    UTCDateTime,
)
from carbon_credits.storage.sql import Prebuilt, Read
from methodology import FactorSet, Line, Station, TransitNetwork


@dataclass(frozen=True)
class VersionedFactors:
    id: int
    effective_from: datetime
    factors: FactorSet


@dataclass(frozen=True)
class Timeline:
    """Factor versions by (city, mode), newest first, and each city's newest network id."""

    versions: dict[tuple[str, str], list[VersionedFactors]]
    networks: dict[str, int]

    def at(self, city: str, mode: str, instant: datetime) -> VersionedFactors | None:
        """The version in force at ``instant``: the latest that started at or before it."""
        return next((v for v in self.versions.get((city, mode), ())
                     if v.effective_from <= instant), None)


class Catalog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._factors: dict[int, FactorSet] = {}
        self._networks: dict[int, TransitNetwork] = {}

    def timeline(self, session: Session, cities: Collection[str], modes: Collection[str],
                 until: datetime) -> Timeline:
        """Every factor version of ``cities`` x ``modes`` in force at or before ``until``,
        with each city's newest network id, in one round trip: a set of events is priced
        from one read (versions are few: one per factor change). The read takes ids and
        dates only; a version's factors are parsed once per process (``_factor_sets``)."""
        statement, values = timeline_read(cities, modes, until)
        return self.timeline_of(session, statement.rows(session, values))

    def timeline_of(self, session: Session, rows: Sequence[tuple[Any, ...]]) -> Timeline:
        """The timeline from the rows of its read (``timeline_read``), when the caller
        sends that read with others."""
        factor_sets = self._factor_sets(session, [row[0] for row in rows])
        versions: dict[tuple[str, str], list[VersionedFactors]] = {}
        networks: dict[str, int] = {}
        for version_id, city, mode, effective_from, network_id in rows:
            versions.setdefault((city, mode), []).append(
                VersionedFactors(version_id, effective_from, factor_sets[version_id]))
            if network_id is not None:
                networks[city] = network_id
        return Timeline(versions, networks)

    def _factor_sets(self, session: Session, version_ids: list[int]) -> dict[int, FactorSet]:
        """Parsed factor sets by version id; those not yet cached are read in one query."""
        with self._lock:
            known = {i: self._factors[i] for i in version_ids if i in self._factors}
        missing = [i for i in version_ids if i not in known]
        if missing:
            for row in session.scalars(select(FactorVersion)
                                       .where(FactorVersion.id.in_(missing))):
                known[row.id] = self._versioned(row).factors
        return known

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


def _newest_network(city: str | SQLColumnExpression[str]) -> Select[int]:
    """The id of a city's newest imported network version (the highest id); ``city`` may be
    a column of an outer query."""
    return select(Network.id).where(Network.city == city).order_by(Network.id.desc()).limit(1)


_TIMELINE = Prebuilt(lambda one_of: (
    select(FactorVersion.id, FactorVersion.city, FactorVersion.mode,
           FactorVersion.effective_from,
           _newest_network(FactorVersion.city).correlate(FactorVersion).scalar_subquery())
    .where(one_of(FactorVersion.__table__.c.city, "cities"),
           one_of(FactorVersion.__table__.c.mode, "modes"),
           FactorVersion.effective_from <= bindparam("until", type_=UTCDateTime()))
    .order_by(FactorVersion.effective_from.desc())))
"""The read of ``Catalog.timeline``."""


def timeline_read(cities: Collection[str], modes: Collection[str], until: datetime) -> Read:
    """The read of ``Catalog.timeline`` (``Catalog.timeline_of`` makes its rows a
    timeline)."""
    return _TIMELINE, {"cities": sorted(cities), "modes": sorted(modes), "until": until}


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
