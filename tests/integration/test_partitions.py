"""Monthly partitions of events on PostgreSQL (issue 24): the month boundary in city time,
idempotency across months, a missing month, and detach / export / re-attach leaving caps,
reports and verify-ledger as they were."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from carbon_credits.config import Config
from carbon_credits.runtime import Runtime
from carbon_credits.storage import partitions
from tests import factories
from tests.conftest import app_on_own_database

SHENZHEN = factories.SHENZHEN
MONTH_START = datetime.now(SHENZHEN).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
"""Midnight in Shenzhen on the first of this month: 16:00 UTC the day before."""


@pytest.fixture
def months_app(make_config: Callable[..., Config], tmp_path: Path, is_postgres: bool
               ) -> Iterator[Flask]:
    """A database of its own (detaching changes it for everyone), with a backfill window
    long enough to post last month's trips and replay them a month later."""
    if not is_postgres:
        pytest.skip("events are partitioned on PostgreSQL only")
    with app_on_own_database(make_config, tmp_path, backfill_days=120) as application:
        runtime: Runtime = application.extensions["carbon_credits"]
        runtime.clock = lambda: MONTH_START + timedelta(hours=12)
        yield application


def post(app: Flask, user: str, body: dict[str, Any]) -> Any:
    rt: Runtime = app.extensions["carbon_credits"]
    headers = {"Authorization": f"Bearer {rt.codec.encode(user, 'user', 'shenzhen', 600)}"}
    return app.test_client().post("/v1/events", json=body, headers=headers)


def rt_token(app: Flask, user: str) -> dict[str, str]:
    rt: Runtime = app.extensions["carbon_credits"]
    return {"Authorization": f"Bearer {rt.codec.encode(user, 'user', 'shenzhen', 600)}"}


def partition_of(app: Flask, event_id: str) -> str:
    rt: Runtime = app.extensions["carbon_credits"]
    with rt.db.engine.connect() as conn:
        return str(conn.scalar(text("SELECT tableoid::regclass::text FROM events "
                                    "WHERE event_id = :e"), {"e": event_id}))


def cli(app: Flask, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_a_trip_just_after_midnight_in_shenzhen_is_in_the_new_months_partition(
        months_app: Flask) -> None:
    after = factories.metro(start=MONTH_START + timedelta(minutes=30))
    before = factories.metro(start=MONTH_START - timedelta(minutes=50))
    assert post(months_app, "u-boundary", after).status_code == 201
    assert post(months_app, "u-boundary", before).status_code == 201
    # 00:30 in Shenzhen on the 1st is 16:30 UTC on the last day of the previous month.
    assert (MONTH_START + timedelta(minutes=30)).astimezone(SHENZHEN).day == 1
    assert partition_of(months_app, after["event_id"]) == partitions.partition_name(
        MONTH_START.date())
    assert partition_of(months_app, before["event_id"]) == partitions.partition_name(
        partitions.add_months(MONTH_START.date(), -1))


def test_a_replay_a_month_later_is_a_replay_and_a_reuse_a_conflict(months_app: Flask) -> None:
    trip = factories.metro(start=MONTH_START - timedelta(days=3, hours=-8))
    first = post(months_app, "u-replay", trip)
    assert first.status_code == 201
    rt: Runtime = months_app.extensions["carbon_credits"]
    rt.clock = lambda: MONTH_START + timedelta(days=40)  # next month: another partition
    again = post(months_app, "u-replay", trip)
    assert again.status_code == 200
    assert again.json["points"] == first.json["points"]
    other = dict(trip, exit_station_id="luohu")
    assert post(months_app, "u-replay", other).status_code == 409
    with rt.db.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM events WHERE user_id = 'u-replay'")) == 1
        assert conn.scalar(text(
            "SELECT count(*) FROM event_keys WHERE user_id = 'u-replay'")) == 1


def test_an_event_of_a_month_without_a_partition_is_a_503_then_stored_on_retry(
        months_app: Flask) -> None:
    cli(months_app, "partitions", "detach", f"{MONTH_START:%Y-%m}", "--reason", "test")
    trip = factories.metro(start=MONTH_START + timedelta(hours=8))
    refused = post(months_app, "u-missing", trip)
    assert refused.status_code == 503
    assert refused.json["error"]["code"] == "partition_missing"
    assert refused.headers["Retry-After"]
    cli(months_app, "partitions", "attach", f"{MONTH_START:%Y-%m}", "--reason", "test")
    assert post(months_app, "u-missing", trip).status_code == 201


def snapshot(app: Flask, users: list[str]) -> dict[str, Any]:
    """What a user, a partner and an auditor see: accounts with today's caps, the
    partner's report of both months, verify-ledger's verdict."""
    rt: Runtime = app.extensions["carbon_credits"]
    client = app.test_client()
    seen: dict[str, Any] = {}
    for user in users:
        headers = {"Authorization": f"Bearer {rt.codec.encode(user, 'user', 'shenzhen', 600)}"}
        seen[user] = client.get("/v1/me/account", headers=headers).json
    partner = {"Authorization": "Bearer " + rt.codec.encode("bureau", "partner", "shenzhen",
                                                            600)}
    first = partitions.add_months(MONTH_START.date(), -1)
    seen["report"] = client.get(
        f"/v1/reports/reduction?from={first}&to={MONTH_START.date() + timedelta(days=1)}"
        "&group_by=mode", headers=partner).json
    seen["verify"] = cli(app, "verify-ledger").splitlines()[-1]
    return seen


def test_caps_reports_and_the_ledger_are_unchanged_after_detach_export_and_reattach(
        months_app: Flask, tmp_path: Path) -> None:
    users = ["u-archive-1", "u-archive-2"]
    last_month = partitions.add_months(MONTH_START.date(), -1)
    for n, user in enumerate(users):
        for day in (-2, -1, 0):
            start = MONTH_START + timedelta(days=day, hours=8 + n)
            assert post(months_app, user, factories.metro(start=start)).status_code == 201
        assert post(months_app, user, factories.bus(
            start=MONTH_START + timedelta(hours=10 + n))).status_code == 201
    before = snapshot(months_app, users)
    assert before["verify"].endswith("OK")

    month = f"{last_month:%Y-%m}"
    archived = factories.metro(start=MONTH_START + timedelta(days=-1, hours=20))
    assert post(months_app, users[0], archived).status_code == 201
    before = snapshot(months_app, users)
    cli(months_app, "partitions", "detach", month, "--reason", "archive")
    # While detached: its ids stay taken (a replay is refused, never credited twice), and
    # verify-ledger checks the entries against the detached table, and says so.
    token = rt_token(months_app, users[0])
    assert months_app.test_client().get(f"/v1/events/{archived['event_id']}",
                                        headers=token).status_code == 404
    replay = post(months_app, users[0], archived)
    assert replay.status_code == 503 and replay.json["error"]["code"] == "partition_missing"
    # The same id on another (attached) day: the month's event is not there to compare
    # with, so the global key refuses it.
    reuse = post(months_app, users[0], dict(archived, started_at=(
        MONTH_START + timedelta(hours=5)).isoformat(), ended_at=(
        MONTH_START + timedelta(hours=5, minutes=30)).isoformat()))
    assert reuse.status_code == 503 and reuse.json["error"]["code"] == "write_conflict"
    verdict = cli(months_app, "verify-ledger")
    name = partitions.partition_name(last_month)
    assert f"detached month {month} (table {name} kept, detached: its events were " \
        "checked from it)" in verdict
    assert verdict.splitlines()[-1].endswith("OK") and "NOT CROSS-CHECKED" not in verdict
    out = cli(months_app, "partitions", "export", month, "--out", str(tmp_path / "x"))
    assert "exported 5 events" in out
    manifest = json.loads((tmp_path / "x" / f"{name}.manifest.json").read_text())
    rt: Runtime = months_app.extensions["carbon_credits"]
    with rt.db.engine.connect() as conn:
        truth = conn.execute(text(
            f"SELECT sum(credited_ug), sum(avoided_ug), sum(points) FROM {name}")).one()
    assert manifest["rows"] == 5 and manifest["month"] == month
    assert [sum(t[k] for t in manifest["mrv_totals"])
            for k in ("credited_ug", "avoided_ug", "points")] == list(truth)

    cli(months_app, "partitions", "attach", month, "--reason", "archive")
    assert snapshot(months_app, users) == before

    # A month dropped after its export comes back from the file.
    cli(months_app, "partitions", "detach", month, "--reason", "archive")
    with rt.db.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {name}"))
    # Dropped: its events cannot be read; verify-ledger says which month, and how many
    # entries were not cross-checked, instead of failing each.
    verdict = cli(months_app, "verify-ledger")
    assert f"detached month {month} (detached and dropped: its events were not " \
        "cross-checked; its export holds them)" in verdict
    assert "NOT CROSS-CHECKED 5 entries" in verdict, verdict
    assert verdict.splitlines()[-1].endswith("OK")
    cli(months_app, "partitions", "attach", month, "--from-csv",
        str(tmp_path / "x" / f"{name}.csv"), "--reason", "restore")
    assert snapshot(months_app, users) == before
    listed = cli(months_app, "partitions", "list")
    assert f"{month} {name} attached 5 events" in listed


def test_an_event_deleted_from_an_attached_month_fails_verify_while_a_month_is_dropped(
        months_app: Flask, tmp_path: Path) -> None:
    """A dropped month excuses only the entries of users with events in it: an event of
    another user deleted by a superuser is still named."""
    last_month = partitions.add_months(MONTH_START.date(), -1)
    month, name = f"{last_month:%Y-%m}", partitions.partition_name(last_month)
    assert post(months_app, "u-old", factories.metro(
        start=MONTH_START - timedelta(days=2, hours=-8))).status_code == 201
    victim = factories.metro(start=MONTH_START + timedelta(hours=9))
    assert post(months_app, "u-now", victim).status_code == 201
    cli(months_app, "partitions", "detach", month, "--reason", "archive")
    cli(months_app, "partitions", "export", month, "--out", str(tmp_path / "x"))
    rt: Runtime = months_app.extensions["carbon_credits"]
    with rt.db.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {name}"))
        conn.execute(text("DELETE FROM events WHERE event_id = :e"),
                     {"e": victim["event_id"]})
    verdict = months_app.test_cli_runner().invoke(args=["verify-ledger"])
    assert verdict.exit_code == 1, verdict.output
    assert "user u-now, seq 1): earn entry without its event" in verdict.output
    assert "NOT CROSS-CHECKED 1 entries" in verdict.output  # u-old's, in the dropped month


def test_maintain_creates_the_months_ahead_again(months_app: Flask) -> None:
    rt: Runtime = months_app.extensions["carbon_credits"]
    with rt.db.engine.begin() as conn:
        newest = max(partitions.attached(conn))
        conn.execute(text(f"DROP TABLE {partitions.partition_name(newest)}"))
    assert partitions.partition_name(newest) in cli(months_app, "partitions", "maintain")
    with rt.db.engine.connect() as conn:
        assert newest in partitions.attached(conn)


def test_a_throttled_export_writes_the_same_file(months_app: Flask, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(5):
        start = MONTH_START - timedelta(days=3) + timedelta(hours=7 + n)
        assert post(months_app, f"u-export-{n}", factories.metro(start=start)).status_code == 201
    rt: Runtime = months_app.extensions["carbon_credits"]
    monkeypatch.setattr(partitions, "EXPORT_BATCH_IDS", 2)  # several ranges, some empty
    with rt.db.engine.begin() as conn:
        last_month = partitions.add_months(MONTH_START.date(), -1)
        whole = partitions.export(conn, last_month, tmp_path / "whole")
        paced = partitions.export(conn, last_month, tmp_path / "paced",
                                  rows_per_s=1_000_000)
    assert paced.csv_path.read_bytes() == whole.csv_path.read_bytes()
    assert paced.manifest == whole.manifest and whole.manifest["rows"] == 5


def test_the_migration_moves_a_databases_events_into_their_months(months_app: Flask) -> None:
    """A database before 0009_partition with events (the app runs on it: nothing of ingest
    names the new table) is upgraded: every event in its month's partition, its key in
    event_keys, the same rows, and the ledger still verifies."""
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from carbon_credits.setup import MIGRATIONS

    rt: Runtime = months_app.extensions["carbon_credits"]
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    partitioning = ScriptDirectory.from_config(cfg).get_revision("0009_partition")
    assert partitioning is not None
    with rt.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, str(partitioning.down_revision))  # the partitioning only
    with rt.db.engine.connect() as conn:
        assert not partitions.is_partitioned(conn)
    posted = [factories.metro(start=MONTH_START + timedelta(days=day, hours=8))
              for day in (-40, -1, 0)]
    for n, body in enumerate(posted):
        assert post(months_app, f"u-migrated-{n}", body).status_code == 201
    with rt.db.engine.connect() as conn:
        before = conn.execute(text("SELECT * FROM events ORDER BY id")).all()
    with rt.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with rt.db.engine.connect() as conn:
        assert partitions.is_partitioned(conn)
        assert conn.execute(text("SELECT * FROM events ORDER BY id")).all() == before
        assert conn.scalar(text("SELECT count(*) FROM event_keys")) == len(before)
    for body in posted:
        day = datetime.fromisoformat(body["started_at"]).astimezone(SHENZHEN).date()
        assert partition_of(months_app, body["event_id"]) == partitions.partition_name(
            partitions.month_start(day))
    assert cli(months_app, "verify-ledger").splitlines()[-1].endswith("OK")
    # A replay after the migration is a replay.
    assert post(months_app, "u-migrated-0", posted[0]).status_code == 200


def test_the_export_goes_at_its_default_pace_unless_told(
        months_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An archive is not urgent, ingest is: the CLI's export is throttled by default
    (cli.EXPORT_ROWS_PER_S), and ``--rows-per-second 0`` lifts the throttle."""
    paces: list[int | None] = []
    real = partitions.export

    def spy(conn: Any, when: Any, out: Path, rows_per_s: int | None = None) -> Any:
        paces.append(rows_per_s)
        return real(conn, when, out, rows_per_s)

    monkeypatch.setattr(partitions, "export", spy)
    month = f"{MONTH_START:%Y-%m}"
    cli(months_app, "partitions", "export", month, "--out", str(tmp_path / "a"))
    cli(months_app, "partitions", "export", month, "--out", str(tmp_path / "b"),
        "--rows-per-second", "0")
    cli(months_app, "partitions", "export", month, "--out", str(tmp_path / "c"),
        "--rows-per-second", "500")
    assert paces == [10_000, None, 500]
