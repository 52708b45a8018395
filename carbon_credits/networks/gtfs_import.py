"""Import a city's transit network from a GTFS feed as a new, immutable network version.

The feed is parsed, checked and built into a ``TransitNetwork`` (all-pairs metro distances)
before the database is touched; storing is then one unit of work, so a failed import leaves
nothing behind and the city keeps using its previous version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from carbon_credits import audit
from carbon_credits.errors import Conflict, InvalidInput
from carbon_credits.networks.catalog import store_network
from carbon_credits.networks.gtfs import GtfsError, ParsedFeed, parse_feed
from carbon_credits.storage.db import Database
from carbon_credits.storage.models import Network, NetworkLine, NetworkStop
from methodology.network import TransitNetwork, UnknownStation


def _length(model: Any, column: str) -> int:
    """The storage limit of a string column, read from the model so the two never drift."""
    kind = model.__table__.c[column].type
    if not isinstance(kind, String) or kind.length is None:
        raise TypeError(f"{model.__name__}.{column} is not a bounded string column")
    return int(kind.length)


def import_gtfs(
    db: Database, city: str, path: Path, version: str | None = None, source: str | None = None,
    *, actor: str | None = None, reason: str = "",
) -> dict[str, Any]:
    """Store a GTFS feed (zip or folder) as the city's newest network version; a summary."""
    # With an actor (an admin's sub, or "cli"), the audit record commits with the network.
    version = version if version is not None else (
        "gtfs-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ"))
    _check_name("city", city, _length(Network, "city"))
    _check_name("version", version, _length(Network, "version"))
    started = time.perf_counter()
    if source is None and path.exists():
        source = f"GTFS feed {path.name}, sha256 {_digest(path)}"
    try:
        feed = _fit_storage(parse_feed(path))
    except GtfsError as exc:
        raise _invalid(str(exc)) from None
    parsed = time.perf_counter()
    try:
        network = TransitNetwork(city, version, feed.stations, feed.lines)
    except (ValueError, UnknownStation) as exc:
        raise _invalid(f"network: {exc}") from None
    built = time.perf_counter()
    try:
        with db.transaction() as session:
            _refuse_existing(session, city, version)
            previous = session.scalars(select(Network).where(Network.city == city)
                                       .order_by(Network.id.desc()).limit(1)).first()
            row = store_network(session, city, version, source or f"GTFS feed {path.name}",
                                feed.stations, feed.lines)
            session.flush()
            network_id = row.id
            summary = _summary(network_id, city, version, row.source, feed, network)
            if actor is not None:
                audit.record(
                    session, actor=actor, action="network.import",
                    target=f"network:{city}/{version}", reason=reason,
                    before=None if previous is None else {
                        "network_id": previous.id, "version": previous.version},
                    after={k: summary[k] for k in ("network_id", "version", "source",
                                                   "stations", "routes", "patterns")})
    except ValueError as exc:  # store_network validates again; kept for a changed validator
        raise _invalid(f"network: {exc}") from None
    except IntegrityError:
        # Another import took the same version between the check and the insert.
        if _exists(db, city, version):
            raise _conflict(city, version) from None
        raise
    stored = time.perf_counter()
    summary["timings_ms"] = {
        "parse": _ms(started, parsed),
        "network_build": _ms(parsed, built),
        "store": _ms(built, stored),
    }
    return summary


def _summary(network_id: int, city: str, version: str, source: str, feed: ParsedFeed,
             network: TransitNetwork) -> dict[str, Any]:
    by_mode: dict[str, int] = {}
    for mode in feed.route_modes.values():
        by_mode[mode] = by_mode.get(mode, 0) + 1
    return {
        "network_id": network_id, "city": city, "version": version, "source": source,
        "stations": len(feed.stations), "metro_stations": len(network.metro_stations),
        "routes": len(feed.route_modes), "routes_by_mode": by_mode,
        "patterns": len(feed.lines), "trips": feed.trips, "warnings": list(feed.warnings),
    }


def _fit_storage(feed: ParsedFeed) -> ParsedFeed:
    """Refuse ids the tables cannot hold; shorten over-long display names."""
    # PostgreSQL refuses an over-long value at insert time while SQLite keeps it: checking
    # here gives both backends the same answer, and a clear one.
    stop_len, name_len = _length(NetworkStop, "stop_id"), _length(NetworkStop, "name")
    line_len, route_len = _length(NetworkLine, "line_id"), _length(NetworkLine, "route_id")
    line_name_len = _length(NetworkLine, "name")
    for station in feed.stations:
        if len(station.stop_id) > stop_len:
            raise GtfsError("stops.txt", None, f"stop_id {station.stop_id[:80]!r} is longer "
                            f"than {stop_len} characters")
    for line in feed.lines:
        if len(line.route_id) > route_len or len(line.line_id) > line_len:
            raise GtfsError("routes.txt", None, f"route_id {line.route_id[:80]!r} is too long: "
                            f"its pattern id {line.line_id[:80]!r} must fit {line_len} "
                            f"characters and the route_id {route_len}")
    return dataclasses.replace(
        feed,
        stations=[s if len(s.name) <= name_len else dataclasses.replace(s, name=s.name[:name_len])
                  for s in feed.stations],
        lines=[ln if len(ln.name) <= line_name_len
               else dataclasses.replace(ln, name=ln.name[:line_name_len]) for ln in feed.lines])


def _check_name(field: str, value: str, limit: int) -> None:
    if not value or value != value.strip() or len(value) > limit:
        raise InvalidInput(f"{field} must be 1 to {limit} characters without surrounding "
                           "spaces", fields={field: [f"1 to {limit} characters, trimmed"]})


def _refuse_existing(session: Session, city: str, version: str) -> None:
    if session.scalar(select(Network.id).where(Network.city == city,
                                               Network.version == version)) is not None:
        raise _conflict(city, version)


def _exists(db: Database, city: str, version: str) -> bool:
    with db.transaction() as session:
        return session.scalar(select(Network.id).where(
            Network.city == city, Network.version == version)) is not None


def _conflict(city: str, version: str) -> Conflict:
    return Conflict(f"network version {version!r} already exists for {city}",
                    code="version_exists", fields={"version": ["already exists"]})


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(f"the GTFS feed cannot be imported: {message}", code="invalid_feed",
                        fields={"feed": [message]})


def _digest(path: Path) -> str:
    """SHA-256 of the zip, or of a folder's files by name, to trace a version to its feed."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(file.name.encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 1)
