"""Report rollups: exact sums per cell, sketches of participants, reversals, rebuild.

Each test works in a city of its own (the demo factors and network copied under a fresh
name), so the shared test database's other events never enter its reports.
"""

from __future__ import annotations

import random
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from carbon_credits.antifraud import reviews
from carbon_credits.ingest import events
from carbon_credits.ledger import reversals
from carbon_credits.networks import demo_network
from carbon_credits.networks.catalog import store_network
from carbon_credits.reports import partner, rollups
from carbon_credits.reports import sketch as hll
from carbon_credits.runtime import Runtime
from carbon_credits.schemas import load_event
from carbon_credits.setup import DEFAULTS_EFFECTIVE_FROM
from carbon_credits.storage.models import (
    Event,
    FactorVersion,
    LedgerEntry,
    ReportRollup,
)
from carbon_credits.tokens import Principal
from methodology import METHODOLOGIES, Station
from tests import factories

TODAY = factories.NOW.date()
YESTERDAY = TODAY - timedelta(days=1)
ADMIN = Principal("rollup-admin", "admin", None)


def seed_city(rt: Runtime, prefix: str = "rc") -> str:
    """A fresh city with Shenzhen's default factors and the demo network (with districts)."""
    city = f"{prefix}-{uuid.uuid4().hex[:10]}"
    with rt.db.transaction() as s:
        for mode, method in METHODOLOGIES.items():
            fs = method.default_factors("shenzhen")
            s.add(FactorVersion(city=city, mode=mode, version=fs.version, kind=fs.kind,
                                factors={**fs.to_dict(), "city": city},
                                effective_from=DEFAULTS_EFFECTIVE_FROM, created_by="test",
                                reason="a city of this test's own"))
        store_network(s, city, "demo-test", "test copy of the demo network",
                      demo_network.stations(), demo_network.lines())
    return city


def post(rt: Runtime, city: str, user: str, body: dict[str, Any]) -> dict[str, Any]:
    result = events.ingest(rt, Principal(user, "user", city), load_event({**body, "city": city}))
    return result.event


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, factories.NOW.timetz()).replace(hour=hour, minute=minute)


def metro(day: date, hour: int, minute: int = 0, **kw: Any) -> dict[str, Any]:
    return factories.metro(start=at(day, hour, minute), **kw)


def bus(day: date, hour: int, minute: int = 0, **kw: Any) -> dict[str, Any]:
    return factories.bus(start=at(day, hour, minute), **kw)


def steps(day: date, count: int) -> dict[str, Any]:
    return factories.steps(count, date=day.isoformat())


def ledger_truth(rt: Runtime, city: str, start: date, end: date) -> dict[str, int]:
    """What the ledger says, straight from ledger entries and events (not the rollups)."""
    with rt.db.transaction() as s:
        in_range = (Event.city == city, Event.local_date >= start, Event.local_date <= end)
        ug, points = s.execute(
            select(func.coalesce(func.sum(LedgerEntry.ug), 0),
                   func.coalesce(func.sum(LedgerEntry.points), 0))
            .join(Event, Event.id == LedgerEntry.event_pk)
            .where(*in_range, LedgerEntry.kind.in_(["earn", "reversal"]))).one()
        earns = s.scalar(select(func.count()).select_from(LedgerEntry)
                         .join(Event, Event.id == LedgerEntry.event_pk)
                         .where(*in_range, LedgerEntry.kind == "earn")) or 0
        reversed_ = s.scalar(select(func.count()).select_from(LedgerEntry)
                             .join(Event, Event.id == LedgerEntry.event_pk)
                             .where(*in_range, LedgerEntry.kind == "reversal")) or 0
        live_users = s.scalar(
            select(func.count(func.distinct(Event.user_id)))
            .join(LedgerEntry, (LedgerEntry.event_pk == Event.id)
                  & (LedgerEntry.kind == "earn"))
            .where(*in_range, Event.reversed_at.is_(None))) or 0
    return {"ug": int(ug), "points": int(points), "events": earns - reversed_,
            "participants": live_users}


def snapshot(rt: Runtime, city: str) -> list[tuple[Any, ...]]:
    """Every rollup row of the city, sketch bytes included."""
    with rt.db.transaction() as s:
        cells = s.execute(select(ReportRollup.__table__).where(ReportRollup.city == city)
                          .order_by(*ReportRollup.__table__.primary_key.columns)).all()
    return [tuple(r) for r in cells]


def rebuild(rt: Runtime, city: str) -> rollups.Rebuilt:
    with rt.db.transaction() as s:
        return rollups.rebuild(s, city)


def admin_report(rt: Runtime, city: str, start: date, end: date,
                 *groups: str, granularity: str = "day") -> dict[str, Any]:
    return partner.reduction(rt, partner.Scope(city, suppress=False, k=10),
                             partner.ReductionQuery(start, end, granularity, groups))


# ---------------------------------------------------------------- sketches

def _sketch(users: list[str]) -> hll.Sketch:
    sketch = hll.Sketch()
    by_shard: dict[int, list[str]] = {}
    for user in users:
        by_shard.setdefault(hll.UserHash.of(user).shard, []).append(user)
    for shard, members in by_shard.items():
        sketch.add_slice(shard, hll.slice_of(members))
    return sketch


def test_small_counts_are_exact_or_low_never_high() -> None:
    for n in range(64):
        estimate = _sketch([f"small-{n}-{i}" for i in range(n)]).estimate()
        assert n - 2 <= estimate <= n, (n, estimate)


@pytest.mark.parametrize("n", [500, 3_000, 10_000, 60_000])
def test_large_counts_are_within_four_standard_errors(n: int) -> None:
    estimate = _sketch([f"large-{n}-{i}" for i in range(n)]).estimate()
    assert abs(estimate - n) <= 4 * hll.RELATIVE_STANDARD_ERROR * n, (n, estimate)


def test_a_union_counts_a_user_of_many_days_once() -> None:
    users = [f"union-{i}" for i in range(40)]
    days = [_sketch(users[i:i + 20]) for i in range(0, 21, 5)]  # overlapping windows
    union = hll.Sketch()
    for sketch in days:
        union.update(sketch)
    assert union.estimate() == _sketch(users).estimate() <= 40


def test_merge_max_is_a_register_wise_max() -> None:
    rng = random.Random(7)
    for _ in range(200):
        a = bytes(rng.randrange(hll.Q + 2) for _ in range(hll.SLICE_REGISTERS))
        b = bytes(rng.randrange(hll.Q + 2) for _ in range(hll.SLICE_REGISTERS))
        merged = hll.merge_max(int.from_bytes(a, "big"), int.from_bytes(b, "big"))
        assert merged.to_bytes(hll.SLICE_REGISTERS, "big") == bytes(map(max, a, b))


def test_user_hash_layout() -> None:
    seen = [hll.UserHash.of(f"layout-{i}") for i in range(2000)]
    assert {u.shard for u in seen} == set(range(hll.SHARDS))
    assert all(0 <= u.register < hll.SLICE_REGISTERS for u in seen)
    assert all(1 <= u.rho <= hll.Q + 1 for u in seen)
    assert hll.UserHash.of("same") == hll.UserHash.of("same")


# ---------------------------------------------------------------- cells

def test_districts_come_from_the_entry_or_boarding_stop(rt: Runtime) -> None:
    city = seed_city(rt)
    post(rt, city, "d-1", metro(TODAY, 7, entry_station_id="luohu",
                                exit_station_id="shaoniangong"))
    post(rt, city, "d-2", metro(TODAY, 7, entry_station_id="shaoniangong",
                                exit_station_id="luohu"))
    post(rt, city, "d-3", bus(TODAY, 7))  # boards at b-luohu
    post(rt, city, "d-4", steps(TODAY, 5000))
    report = admin_report(rt, city, TODAY, TODAY, "mode", "district")
    cells = {(r["mode"], r["district"]): r["events"] for r in report["rows"]}
    assert cells == {("metro", "luohu"): 1, ("metro", "futian"): 1, ("bus", "luohu"): 1,
                     ("steps", "unknown"): 1}


def test_a_platform_without_district_takes_its_parent_station_s(rt: Runtime) -> None:
    city = f"rp-{uuid.uuid4().hex[:10]}"
    stations = [*demo_network.stations(),
                Station("luohu-p1", "罗湖 platform 1", 22.5314, 114.1183, parent="luohu")]
    with rt.db.transaction() as s:
        net = store_network(s, city, "platforms", "test", stations, demo_network.lines())
        s.flush()
        assert rollups.district_of(s, net.id, "luohu-p1") == "luohu"
        assert rollups.district_of(s, net.id, "nowhere") == "unknown"
        assert rollups.district_of(s, None, "luohu-p1") == "unknown"


# ---------------------------------------------------------------- the acceptance

def _mixed_history(rt: Runtime, city: str, prefix: str) -> None:
    """Events, caps, holds (approved and rejected) and reversals over two days.

    User ids are fixed per test (``prefix``), so the sketches' outcome is deterministic:
    these 14 users fall in 14 different registers, and the estimate is exact.
    """
    luohu = {"entry_station_id": "luohu", "exit_station_id": "shaoniangong"}
    futian = {"entry_station_id": "shaoniangong", "exit_station_id": "luohu"}
    riders = [f"{prefix}-{i}" for i in range(12)]
    for i, user in enumerate(riders):
        for day in (YESTERDAY, TODAY):
            post(rt, city, user, metro(day, 7, i, **(luohu if i % 2 else futian)))
            post(rt, city, user, bus(day, 12, i))
        post(rt, city, user, steps(TODAY, 4000 + 500 * i))
    heavy = f"{prefix}-heavy"  # 14 trips of 376 g: the 14th capped at 5000 g a day
    statuses = [post(rt, city, heavy, metro(TODAY, 6 + i // 2, 30 * (i % 2), **luohu))["status"]
                for i in range(15)]
    assert statuses.count("capped") == 2  # one partly credited, one credited nothing
    def fast(day: date) -> dict[str, str]:  # 8 km in 2 minutes
        return {"ended_at": (at(day, 21) + timedelta(minutes=2)).isoformat()}

    held_ok = post(rt, city, riders[0], metro(TODAY, 21, **fast(TODAY), **luohu))
    held_no = post(rt, city, riders[1], metro(TODAY, 21, **fast(TODAY), **luohu))
    held_old = post(rt, city, riders[2], metro(YESTERDAY, 21, **fast(YESTERDAY), **futian))
    assert {held_ok["status"], held_no["status"], held_old["status"]} == {"held"}
    reviews.decide(rt, ADMIN, riders[0], held_ok["event_id"], True, "checked: fine")
    reviews.decide(rt, ADMIN, riders[1], held_no["event_id"], False, "not plausible")
    reviews.decide(rt, ADMIN, riders[2], held_old["event_id"], True, "checked: fine")
    lone = f"{prefix}-lone"  # one event only: reversing it removes a participant
    lone_trip = post(rt, city, lone, metro(YESTERDAY, 9, **futian))
    with rt.db.transaction() as s:
        reversible = s.execute(select(Event.user_id, Event.event_id).where(
            Event.city == city, Event.credited_ug > 0, Event.mode == "bus")
            .order_by(Event.id).limit(3)).all()
    for user, event_id in [*reversible, (lone, lone_trip["event_id"])]:
        reversals.reverse_event(rt, ADMIN, user, event_id, "fraud found later")


def test_report_totals_equal_the_ledger_after_caps_holds_and_reversals(rt: Runtime) -> None:
    city = seed_city(rt)
    _mixed_history(rt, city, "mix-totals")
    for start, end in ((YESTERDAY, TODAY), (TODAY, TODAY), (YESTERDAY, YESTERDAY)):
        truth = ledger_truth(rt, city, start, end)
        for groups in ((), ("mode",), ("mode", "district", "methodology_version")):
            report = admin_report(rt, city, start, end, *groups)
            totals = report["totals"]
            assert totals["ug"] == truth["ug"] > 0
            assert totals["grams"] == truth["ug"] // 10**6
            assert totals["points"] == truth["points"]
            assert totals["events"] == truth["events"]
            assert totals["participants"] == truth["participants"]
            assert sum(r["ug"] for r in report["rows"]) == truth["ug"]
            assert sum(r["events"] for r in report["rows"]) == truth["events"]


def test_rebuilt_rollups_equal_the_incrementally_maintained_ones(rt: Runtime) -> None:
    city = seed_city(rt)
    _mixed_history(rt, city, "mix-rebuild")
    incremental = snapshot(rt, city)
    assert incremental
    done = rebuild(rt, city)
    assert done.days == 2 and done.rollup_rows == len(incremental)
    assert snapshot(rt, city) == incremental


def test_rebuild_rollups_command(app: Flask, rt: Runtime) -> None:
    city = seed_city(rt)
    post(rt, city, "cli-1", metro(TODAY, 8))
    before = snapshot(rt, city)
    result = app.test_cli_runner().invoke(args=["rebuild-rollups", "--city", city])
    assert result.exit_code == 0, result.output
    assert f"rebuilt rollups of {city}: 1 city-days, 1 live credited events" in result.output
    assert snapshot(rt, city) == before


def test_an_approved_event_counts_on_its_own_local_date(rt: Runtime) -> None:
    city = seed_city(rt)
    fast = {"ended_at": (at(YESTERDAY, 8) + timedelta(minutes=2)).isoformat()}
    held = post(rt, city, "late-1", metro(YESTERDAY, 8, **fast))
    assert admin_report(rt, city, YESTERDAY, TODAY)["rows"] == []
    reviews.decide(rt, ADMIN, "late-1", held["event_id"], True, "ok after all")
    rows = admin_report(rt, city, YESTERDAY, TODAY)["rows"]
    assert [(r["period"], r["events"]) for r in rows] == [(YESTERDAY, 1)]


def test_a_reversal_retracts_a_participant_only_with_their_last_event(rt: Runtime) -> None:
    city = seed_city(rt)
    users = [f"rev-{i}" for i in range(5)]
    trips = {u: [post(rt, city, u, metro(TODAY, 7 + j))["event_id"] for j in range(2)]
             for u in users}

    def figures() -> tuple[int, int]:
        t = admin_report(rt, city, TODAY, TODAY)["totals"]
        return t["events"], t["participants"]

    assert figures() == (10, 5)
    reversals.reverse_event(rt, ADMIN, users[0], trips[users[0]][0], "fraud")
    assert figures() == (9, 5)  # still one live trip
    reversals.reverse_event(rt, ADMIN, users[0], trips[users[0]][1], "fraud")
    assert figures() == (8, 4)
    before = snapshot(rt, city)
    rebuild(rt, city)
    assert snapshot(rt, city) == before


def test_a_reversal_retracts_a_participant_from_that_district_only(rt: Runtime) -> None:
    """Who is left in a cell is read from the event table: the reversed user's other live
    trip of the same mode and day, in another district, does not keep them in this one,
    and the other riders of the cell stay counted."""
    city = seed_city(rt)
    luohu = {"entry_station_id": "luohu", "exit_station_id": "shaoniangong"}
    futian = {"entry_station_id": "shaoniangong", "exit_station_id": "luohu"}
    riders = [f"dist-{i}" for i in range(6)]
    trips = {u: post(rt, city, u, metro(TODAY, 7, i, **luohu))["event_id"]
             for i, u in enumerate(riders)}
    post(rt, city, riders[0], metro(TODAY, 12, **futian))

    def by_district() -> dict[str, tuple[int, int]]:
        rows = admin_report(rt, city, TODAY, TODAY, "district")["rows"]
        return {r["district"]: (r["events"], r["participants"]) for r in rows}

    assert by_district() == {"luohu": (6, 6), "futian": (1, 1)}
    reversals.reverse_event(rt, ADMIN, riders[0], trips[riders[0]], "fraud")
    assert by_district() == {"luohu": (5, 5), "futian": (1, 1)}
    reversals.reverse_event(rt, ADMIN, riders[1], trips[riders[1]], "fraud")
    assert by_district() == {"luohu": (4, 4), "futian": (1, 1)}
    before = snapshot(rt, city)
    rebuild(rt, city)
    assert snapshot(rt, city) == before


def test_concurrent_ingestion_keeps_rollups_exact(lenient_app: Flask, is_postgres: bool
                                                  ) -> None:
    rt: Runtime = lenient_app.extensions["carbon_credits"]
    city = seed_city(rt)
    n_users, per_user = (40, 10) if is_postgres else (12, 4)
    users = [f"conc-{i}" for i in range(n_users)]
    work = [(u, metro(TODAY, 5 + j, entry_station_id="luohu", exit_station_id="guomao"))
            for j in range(per_user) for u in users]  # one cell: metro, luohu, today
    start = threading.Barrier(8)

    def run(chunk: list[tuple[str, dict[str, Any]]]) -> None:
        start.wait()
        for user, body in chunk:
            post(rt, city, user, body)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(run, [work[i::8] for i in range(8)]))
    truth = ledger_truth(rt, city, TODAY, TODAY)
    assert truth["events"] == n_users * per_user
    totals = admin_report(rt, city, TODAY, TODAY)["totals"]
    assert (totals["ug"], totals["points"], totals["events"]) == (
        truth["ug"], truth["points"], truth["events"])
    assert totals["participants"] == n_users
    before = snapshot(rt, city)
    rebuild(rt, city)
    assert snapshot(rt, city) == before


def test_reports_never_read_the_event_table(rt: Runtime) -> None:
    city = seed_city(rt)
    post(rt, city, "sql-1", metro(TODAY, 8))
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.lower())

    sa_event.listen(rt.db.engine, "before_cursor_execute", record)
    try:
        admin_report(rt, city, YESTERDAY, TODAY, "mode", "district", "methodology_version")
        partner.verification(rt, partner.Scope(city, False, 10), YESTERDAY, TODAY)
    finally:
        sa_event.remove(rt.db.engine, "before_cursor_execute", record)
    assert statements
    tables = re.compile(r"\b(from|join)\s+(events|ledger_entries)\b")
    assert not [s for s in statements if tables.search(s)]
