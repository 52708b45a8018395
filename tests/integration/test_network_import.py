"""Importing a GTFS feed into the database: newest version, versioning, all-or-nothing."""

from __future__ import annotations

import math
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from carbon_credits.errors import Conflict, InvalidInput
from carbon_credits.networks import catalog, gtfs_import
from carbon_credits.networks.gtfs_import import import_gtfs
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import (
    AuditRecord,
    Network,
    NetworkLine,
    NetworkLineStop,
    NetworkStop,
)
from tests import gtfs_feed
from tests.gtfs_feed import Feed, sample_feed


def great_circle_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine written out here, so expectations do not reuse the code under test."""
    (la1, lo1), (la2, lo2) = ((math.radians(x), math.radians(y)) for x, y in (a, b))
    h = (math.sin((la2 - la1) / 2) ** 2
         + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2)
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


@pytest.fixture
def city() -> str:
    """A city no other test uses, so its networks are this test's alone."""
    return f"gtfscity-{uuid.uuid4().hex[:12]}"


def write(feed: Feed, tmp_path: Path, name: str = "feed.zip") -> Path:
    return feed.write_zip(tmp_path / name)


def networks_of(rt: Runtime, city: str) -> list[tuple[int, str]]:
    with rt.db.transaction() as s:
        return [(n.id, n.version) for n in s.scalars(
            select(Network).where(Network.city == city).order_by(Network.id))]


def rows_of(rt: Runtime, network_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row of one network version, as plain tuples."""
    with rt.db.transaction() as s:
        return {
            "stops": sorted((r.stop_id, r.name, r.lat, r.lon, r.parent_stop_id) for r in
                            s.scalars(select(NetworkStop).where(
                                NetworkStop.network_id == network_id))),
            "lines": sorted((r.line_id, r.route_id, r.mode, r.name, r.avg_trip_m) for r in
                            s.scalars(select(NetworkLine).where(
                                NetworkLine.network_id == network_id))),
            "line_stops": sorted((r.line_id, r.seq, r.stop_id, r.dist_m) for r in
                                 s.scalars(select(NetworkLineStop).where(
                                     NetworkLineStop.network_id == network_id))),
        }


def test_import_makes_the_feed_the_citys_newest_network(
        rt: Runtime, city: str, tmp_path: Path) -> None:
    summary = import_gtfs(rt.db, city, write(sample_feed(), tmp_path), version="2026.1")
    assert summary["city"] == city and summary["version"] == "2026.1"
    assert (summary["stations"], summary["metro_stations"]) == (14, 7)
    assert (summary["routes"], summary["patterns"], summary["trips"]) == (3, 7, 11)
    assert summary["routes_by_mode"] == {"metro": 2, "bus": 1}
    assert any("T1" in w for w in summary["warnings"])
    assert set(summary["timings_ms"]) == {"parse", "network_build", "store"}
    assert summary["source"].startswith("GTFS feed feed.zip, sha256 ")
    with rt.db.transaction() as s:
        found = rt.catalog.network(s, city)
    assert found is not None
    network_id, net = found
    assert network_id == summary["network_id"]
    assert (net.city, net.version) == (city, "2026.1")
    assert net.routes.keys() == {"M1", "M2", "B7"}


def test_metro_distance_through_the_interchange_matches_the_hand_computation(
        rt: Runtime, city: str, tmp_path: Path) -> None:
    import_gtfs(rt.db, city, write(sample_feed(), tmp_path), version="v1")
    with rt.db.transaction() as s:
        found = rt.catalog.network(s, city)
    assert found is not None
    net = found[1]
    # m1-west -> hub on M1: shape_dist_traveled 2.0 km. hub -> m2-north on M2: along the
    # shape, shape points 4 back to 0 (hub-m2 and m2-north sit on points 4 and 0).
    on_m1 = gtfs_feed.M1_KM["0"][2] * 1000
    shape = gtfs_feed.M2_SHAPE_SOUTH
    on_m2 = sum(great_circle_m(shape[k], shape[k + 1]) for k in range(4))
    expected = on_m1 + on_m2
    assert abs(net.metro_distance_m("m1-west", "m2-north") - expected) <= 0.01 * expected
    # Riders may name the station or either platform: the transfer costs nothing.
    assert net.metro_distance_m("m1-west", "hub") == net.metro_distance_m("m1-west", "hub-m2")
    assert net.metro_distance_m("m1-west", "hub-m1") == 2000
    assert net.metro_distance_m("m2-north", "m1-west") == net.metro_distance_m(
        "m1-west", "m2-north")


def test_bus_distance_along_the_route(rt: Runtime, city: str, tmp_path: Path) -> None:
    import_gtfs(rt.db, city, write(sample_feed(), tmp_path), version="v1")
    with rt.db.transaction() as s:
        found = rt.catalog.network(s, city)
    assert found is not None
    stops = gtfs_feed.STOPS
    expected = sum(great_circle_m(stops[a][1:3], stops[b][1:3])
                   for a, b in (("b1", "b2"), ("b2", "b3")))
    assert abs(found[1].route_distance_m("B7", "b1", "b3") - expected) <= 0.01 * expected


def test_a_new_version_leaves_the_previous_one_untouched(
        rt: Runtime, city: str, tmp_path: Path) -> None:
    first = import_gtfs(rt.db, city, write(sample_feed(), tmp_path, "v1.zip"), version="v1")
    before = rows_of(rt, first["network_id"])
    changed = sample_feed().edit(
        "stop_times.txt", lambda r: str(r["trip_id"]).startswith("M1-")
        and r["stop_sequence"] == 20, shape_dist_traveled=3.3)
    changed = changed.edit("stops.txt", lambda r: r["stop_id"] == "b1", stop_name="Elm St.")
    second = import_gtfs(rt.db, city, write(changed, tmp_path, "v2.zip"), version="v2")
    assert second["network_id"] != first["network_id"]
    assert rows_of(rt, first["network_id"]) == before
    after = rows_of(rt, second["network_id"])
    assert after != before and ("M1:1", 3, "m1-east", 3300) in after["line_stops"]
    assert networks_of(rt, city) == [(first["network_id"], "v1"), (second["network_id"], "v2")]
    with rt.db.transaction() as s:
        newest = rt.catalog.network(s, city)
        old = rt.catalog.network_by_id(s, first["network_id"])
    assert newest is not None and newest[0] == second["network_id"]
    assert old.along_line_m("M1:1", "m1-west", "m1-east") == 3100
    assert newest[1].along_line_m("M1:1", "m1-west", "m1-east") == 3300


def test_a_broken_feed_stores_nothing(rt: Runtime, city: str, tmp_path: Path) -> None:
    feed = sample_feed().edit(
        "stop_times.txt", lambda r: r["trip_id"] == "B7-in-0800" and r["stop_id"] == "b3",
        stop_id="nowhere")
    with pytest.raises(InvalidInput) as info:
        import_gtfs(rt.db, city, write(feed, tmp_path), version="v1")
    assert info.value.code == "invalid_feed"
    (message,) = info.value.fields["feed"]
    assert message.startswith("stop_times.txt:") and "unknown stop_id nowhere" in message
    assert networks_of(rt, city) == []


def test_a_failure_while_storing_rolls_the_whole_import_back(
        rt: Runtime, city: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = catalog.store_network

    def store_then_fail(*args: Any, **kwargs: Any) -> Network:
        real(*args, **kwargs)
        args[0].flush()  # every row has reached the database before the failure
        raise RuntimeError("disk full")

    monkeypatch.setattr(gtfs_import, "store_network", store_then_fail)
    with rt.db.transaction() as s:
        stops_before = s.scalar(select(func.count()).select_from(NetworkStop))
    with pytest.raises(RuntimeError, match="disk full"):
        import_gtfs(rt.db, city, write(sample_feed(), tmp_path), version="v1")
    assert networks_of(rt, city) == []
    with rt.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(NetworkStop)) == stops_before


def test_a_network_the_methodology_refuses_is_invalid_input(
        rt: Runtime, city: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ValueError("line M1:1 uses unknown stop x")

    monkeypatch.setattr(gtfs_import, "TransitNetwork", refuse)
    with pytest.raises(InvalidInput) as info:
        import_gtfs(rt.db, city, write(sample_feed(), tmp_path), version="v1")
    assert info.value.fields == {"feed": ["network: line M1:1 uses unknown stop x"]}
    assert networks_of(rt, city) == []


def test_a_duplicate_version_is_a_conflict(rt: Runtime, city: str, tmp_path: Path) -> None:
    path = write(sample_feed(), tmp_path)
    first = import_gtfs(rt.db, city, path, version="v1")
    with pytest.raises(Conflict) as info:
        import_gtfs(rt.db, city, path, version="v1")
    assert info.value.code == "version_exists"
    assert networks_of(rt, city) == [(first["network_id"], "v1")]


def test_a_version_taken_after_the_check_is_still_a_conflict(
        rt: Runtime, city: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What a concurrent import does: both pass the existence check, the unique key decides.
    path = write(sample_feed(), tmp_path)
    import_gtfs(rt.db, city, path, version="v1")
    monkeypatch.setattr(gtfs_import, "_refuse_existing", lambda *args: None)
    with pytest.raises(Conflict):
        import_gtfs(rt.db, city, path, version="v1")
    assert [v for _, v in networks_of(rt, city)] == ["v1"]


def test_concurrent_imports_of_one_version_store_it_once(
        rt: Runtime, city: str, tmp_path: Path) -> None:
    path = write(sample_feed(), tmp_path)

    def attempt(_: int) -> str:
        try:
            import_gtfs(rt.db, city, path, version="v1")
        except Conflict:
            return "conflict"
        return "stored"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(attempt, range(2)))
    assert outcomes == ["conflict", "stored"]
    assert [v for _, v in networks_of(rt, city)] == ["v1"]


def test_the_default_version_is_a_utc_timestamp(rt: Runtime, city: str, tmp_path: Path) -> None:
    path = write(sample_feed(), tmp_path)
    one = import_gtfs(rt.db, city, path)
    two = import_gtfs(rt.db, city, path, source="operator upload")
    assert one["version"].startswith("gtfs-20") and one["version"].endswith("Z")
    assert two["version"] > one["version"]
    assert two["source"] == "operator upload"


def test_ids_longer_than_the_tables_hold_are_refused_on_every_backend(
        rt: Runtime, city: str, tmp_path: Path) -> None:
    long_id = "R" * 64  # fits route_id, but not the pattern id "R...R:1"
    feed = sample_feed().edit("routes.txt", lambda r: r["route_id"] == "B7", route_id=long_id)
    feed = feed.edit("trips.txt", lambda r: r["route_id"] == "B7", route_id=long_id)
    with pytest.raises(InvalidInput) as info:
        import_gtfs(rt.db, city, write(feed, tmp_path), version="v1")
    assert "too long" in info.value.fields["feed"][0]
    assert networks_of(rt, city) == []


def test_long_names_are_shortened_to_fit(rt: Runtime, city: str, tmp_path: Path) -> None:
    feed = sample_feed().edit("stops.txt", lambda r: r["stop_id"] == "b1", stop_name="E" * 300)
    summary = import_gtfs(rt.db, city, write(feed, tmp_path), version="v1")
    names = {r[0]: r[1] for r in rows_of(rt, summary["network_id"])["stops"]}
    assert names["b1"] == "E" * 200


@pytest.mark.parametrize(("city_name", "version"), [("", "v1"), ("x" * 65, "v1"),
                                                    ("ok", "v" * 65), ("ok", " v1")])
def test_bad_city_or_version_is_invalid_input(
        rt: Runtime, tmp_path: Path, city_name: str, version: str) -> None:
    with pytest.raises(InvalidInput):
        import_gtfs(rt.db, city_name, write(sample_feed(), tmp_path), version=version)


def test_an_import_by_an_admin_is_audited(rt: Runtime, city: str, tmp_path: Path) -> None:
    first = import_gtfs(rt.db, city, write(sample_feed(), tmp_path), version="v1")
    second = import_gtfs(rt.db, city, write(sample_feed(), tmp_path), version="v2",
                         actor="admin-1", reason="timetable change")
    with rt.db.transaction() as s:
        record = s.scalars(select(AuditRecord).where(
            AuditRecord.target == f"network:{city}/v2")).one()
        assert (record.actor, record.action, record.reason) == (
            "admin-1", "network.import", "timetable change")
        assert record.before == {"network_id": first["network_id"], "version": "v1"}
        assert record.after is not None
        assert record.after["network_id"] == second["network_id"]
        assert s.scalar(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.target == f"network:{city}/v1")) == 0
