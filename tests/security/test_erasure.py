"""Erasure (issue 23, PIPL): after DELETE /v1/me (or an admin's erasure) a search of every
table, and of everything logged, for the user's subject and device id finds nothing; the
partner report and the MRV export keep their totals; verify-ledger passes (with the
checkpoint taken before); the user's tokens stop working; erasing again changes nothing."""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from carbon_credits.config import Config
from carbon_credits.providers.personal_data import ERASED_REASON
from carbon_credits.storage import roles
from carbon_credits.storage.models import (
    AuditRecord,
    AuditSubject,
    Base,
    Erasure,
    LedgerEntry,
    RecordFileError,
)
from tests import factories
from tests.api.test_provider_records import bound, metro, post, upload, wait_done
from tests.conftest import app_on_own_database
from tests.signing import sign

DEVICE = "dev-erase-me-7f3a"


@pytest.fixture
def own(make_config: Callable[..., Config], tmp_path: Path) -> Iterator[Flask]:
    """A database of its own: every table is searched whole."""
    with app_on_own_database(make_config, tmp_path, consent_required="all", redis_url=None,
                             upload_dir=tmp_path / "up") as application:
        yield application


@pytest.fixture
def client(own: Flask) -> FlaskClient:
    return own.test_client()


def every_value(app: Flask) -> str:
    """Every row of every table, as text."""
    rt = app.extensions["carbon_credits"]
    parts: list[str] = []
    with rt.db.transaction() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(text(f"SELECT * FROM {table.name}")):
                parts.append(f"{table.name}: " + " | ".join(
                    v.hex() if isinstance(v, bytes) else str(v) for v in row))
    return "\n".join(parts)


def totals(client: FlaskClient, admin: dict[str, str]) -> tuple[Any, Any]:
    day_range = f"from={factories.NOW.date()}&to={factories.NOW.date()}&city=shenzhen"
    reduction = client.get(f"/v1/reports/reduction?{day_range}&group_by=mode", headers=admin)
    mrv = client.get(f"/v1/reports/verification?{day_range}", headers=admin)
    assert reduction.status_code == 200 and mrv.status_code == 200, (reduction.json, mrv.json)
    return reduction.json["totals"], mrv.json


def verify(app: Flask, *extra: str) -> str:
    result = app.test_cli_runner().invoke(args=["verify-ledger", *extra])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def populated(client: FlaskClient, token: Callable[..., str], own: Flask
              ) -> dict[str, Any]:
    """A user with everything a user can have: consent, trips and steps from a device, a
    provider binding and its record, a redemption; and another user beside them."""
    admin = {"Authorization": f"Bearer {token('ops-admin', 'admin')}"}
    provider, key, (sub, other) = bound(client, admin, token, ["metro", "bus"], refs=2)
    mine = {"Authorization": f"Bearer {token(sub)}", "X-Device-Id": DEVICE}
    theirs = {"Authorization": f"Bearer {token(other)}"}
    for headers in (mine, theirs):
        assert client.post("/v1/me/consents", json={"notice_version": "2026-12"},
                           headers=headers).status_code == 201
    for body in (factories.metro(), factories.bus(), factories.steps(5000)):
        assert client.post("/v1/events", json=body, headers=mine).status_code == 201
    assert client.post("/v1/events", json=factories.metro(start=factories.today_at(13)),
                       headers=theirs).status_code == 201
    records = post(client, key, [metro("rec-1", "card-0", hour=18)])
    assert records.json["results"][0]["status"] == 201, records.json
    spent = client.post("/v1/me/redemptions", json={"redemption_id": "coffee-1",
                                                    "points": 10}, headers=mine)
    assert spent.status_code == 201, spent.json
    return {"sub": sub, "other": other, "mine": mine, "admin": admin, "provider": provider,
            "key": key}


def test_after_erasure_nothing_names_the_user_and_the_totals_stand(
        client: FlaskClient, own: Flask, populated: dict[str, Any], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sub, mine, admin = populated["sub"], populated["mine"], populated["admin"]
    before = every_value(own)
    assert sub in before and DEVICE in before and "card-0" in before  # the search works
    report, mrv = totals(client, admin)
    checkpoint = tmp_path / "before.jsonl"
    assert own.test_cli_runner().invoke(args=["ledger-checkpoint", "--out",
                                              str(checkpoint)]).exit_code == 0

    erased = client.delete("/v1/me", headers=mine)
    assert erased.status_code == 200, erased.json
    assert erased.json["erased"] is True and erased.json["already"] is False
    pseudonym = erased.json["pseudonym"]
    assert pseudonym.startswith("erased-")

    after = every_value(own)
    for identifier in (sub, DEVICE, "card-0", "coffee-1", "rec-1"):
        assert identifier not in after, identifier
    assert populated["other"] in after  # the other user is untouched
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert sub not in logged and DEVICE not in logged
    assert totals(client, admin) == (report, mrv)
    assert "OK" in verify(own, "--checkpoint", str(checkpoint))
    rebuilt = own.test_cli_runner().invoke(args=["rebuild-rollups", "--city", "shenzhen"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert totals(client, admin) == (report, mrv)  # rebuilt from the erased rows too

    # The tokens stop working; the account is gone, its totals live on under the pseudonym.
    refused = client.get("/v1/me/account", headers=mine)
    assert refused.status_code == 401 and refused.json["error"]["code"] == "account_erased"
    assert client.post("/v1/events", json=factories.metro(), headers=mine).status_code == 401
    rt = own.extensions["carbon_credits"]
    with rt.db.transaction() as session:
        entries = session.scalars(select(LedgerEntry).where(
            LedgerEntry.user_id == pseudonym)).all()
        audit = session.scalars(select(AuditRecord).where(
            AuditRecord.action == "user.erase")).one()
    assert len(entries) == 5  # three trips and steps, the provider's record... and coffee
    assert (audit.actor, audit.target) == ("self", pseudonym)


def test_what_admins_did_to_an_erased_user_stays_in_the_audit_log_naming_nobody(
        client: FlaskClient, own: Flask, populated: dict[str, Any]) -> None:
    """An admin reverses a trip of the user, freezes them, reads the review queue with
    their held trip and rejects it; then the user erases their data. The append-only audit
    log never held their id nor their event ids: it names them by one opaque reference,
    which now leads to their pseudonym, beside the record of the erasure."""
    sub, mine, admin = populated["sub"], populated["mine"], populated["admin"]
    trip = factories.metro(start=factories.today_at(7))
    assert client.post("/v1/events", json=trip, headers=mine).status_code == 201
    reversed_ = client.post(f"/v1/admin/users/{sub}/events/{trip['event_id']}/reversal",
                            json={"reason": "duplicate card tap"}, headers=admin)
    assert reversed_.status_code == 201, reversed_.json
    frozen = client.post(f"/v1/admin/users/{sub}/freeze", json={"reason": "farm suspected"},
                         headers=admin)
    assert frozen.status_code == 200, frozen.json
    held = factories.metro(start=factories.today_at(16))
    posted = client.post("/v1/events", json=held, headers=mine)
    assert posted.json["status"] == "held", posted.json
    queue = client.get("/v1/admin/reviews?limit=200", headers=admin)
    assert any(q["event_id"] == held["event_id"] for q in queue.json["items"])
    rejected = client.post(f"/v1/admin/reviews/{sub}/{held['event_id']}/reject",
                           json={"reason": "farm confirmed"}, headers=admin)
    assert rejected.status_code == 200, rejected.json

    def audit_log() -> str:
        rt = own.extensions["carbon_credits"]
        with rt.db.transaction() as session:
            return "\n".join(str(row) for row in session.execute(
                text("SELECT * FROM audit_log")))

    for identifier in (sub, trip["event_id"], held["event_id"]):
        assert identifier not in audit_log(), identifier  # never written there
    page = client.get("/v1/admin/audit?limit=200", headers=admin).json["items"]
    about = [a for a in page if a["user_id"] == sub]
    assert [a["action"] for a in about] == ["review.reject", "user.freeze", "event.reverse"]
    ref = about[0]["subject_ref"]
    assert all(a["subject_ref"] == ref for a in about)
    read = next(a for a in page if a["action"] == "personal_data.read")
    assert sub not in str(read)

    erased = client.delete("/v1/me", headers=mine)
    assert erased.status_code == 200, erased.json
    pseudonym = erased.json["pseudonym"]
    after = every_value(own)
    for identifier in (sub, DEVICE, trip["event_id"], held["event_id"]):
        assert identifier not in after, identifier
    page = client.get("/v1/admin/audit?limit=200", headers=admin).json["items"]
    about = [a for a in page if a["subject_ref"] == ref]
    assert [(a["action"], a["user_id"]) for a in about] == [
        ("user.erase", pseudonym), ("review.reject", pseudonym), ("user.freeze", pseudonym),
        ("event.reverse", pseudonym)]
    assert about[1]["reason"] == "farm confirmed" and about[0]["actor"] == "self"
    assert "OK" in verify(own)


def test_an_erasure_waits_for_a_freeze_in_flight_and_moves_its_reference(
        client: FlaskClient, own: Flask, populated: dict[str, Any], is_postgres: bool) -> None:
    """A freeze committed while the erasure runs must not leave the user's audit
    reference under their id: the erasure waits for the user row the freeze locks."""
    if not is_postgres:
        pytest.skip("SQLite runs one writer at a time")
    sub = populated["sub"]
    url = make_url(own.extensions["carbon_credits"].config.database_url).set(
        drivername="postgresql").render_as_string(hide_password=False)
    answered: dict[str, Any] = {}
    with psycopg.connect(url) as freeze, psycopg.connect(url, autocommit=True) as watch:
        # A freeze in flight: the user row locked, the user's first audit reference made.
        freeze.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", [sub])
        freeze.execute("INSERT INTO audit_subjects (user_id, ref, created_at) "
                       "VALUES (%s, 'subj-in-flight', now())", [sub])
        eraser = threading.Thread(target=lambda: answered.update(
            erased=client.delete("/v1/me", headers=populated["mine"])))
        eraser.start()
        deadline = time.monotonic() + 60  # a bound on a condition, not a timing assertion
        while not watch.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE NOT l.granted AND a.datname = current_database()").fetchone()[0]:
            assert time.monotonic() < deadline and eraser.is_alive()
            time.sleep(0.01)
        freeze.commit()
    eraser.join()
    erased = answered["erased"]
    assert erased.status_code == 200, erased.json
    assert sub not in every_value(own)
    rt = own.extensions["carbon_credits"]
    with rt.db.transaction() as session:
        moved = session.scalar(select(AuditSubject.user_id).where(
            AuditSubject.ref == "subj-in-flight"))
    assert moved == erased.json["pseudonym"]


def test_a_providers_file_errors_for_an_erased_user_are_scrubbed(
        client: FlaskClient, own: Flask, populated: dict[str, Any]) -> None:
    """Rows of a provider's record file refused for the user's reference (card-0) lose
    their reason and field at erasure (the line and code stay in the provider's report);
    the other user's (card-1) and an unbound reference's stay as they were."""
    key, mine = populated["key"], populated["mine"]
    rows = [{**metro("f-1", hour=7), "tapped_in_at": "yesterday"},  # card-0, invalid
            metro("f-2", hour=8, entry_station_id="atlantis"),  # card-0, refused when credited
            {**metro("f-3", ref="card-1", hour=9), "tapped_in_at": "yesterday"},
            metro("f-4", ref="card-7", hour=10)]  # bound to nobody
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    r = upload(client, key, data, "application/x-ndjson")
    assert r.status_code == 202, r.json
    file_id = r.json["file_id"]
    assert wait_done(client, key, file_id)["counts"]["refused"] == 4
    rt = own.extensions["carbon_credits"]
    with rt.db.transaction() as session:  # a row of an older release, quoting the ref
        session.add(RecordFileError(file_id=file_id, line=99, field="user_ref",
                                    code="not_bound", reason="no user bound as card-0",
                                    ref_digest=None))

    def errors() -> dict[int, tuple[str, str, str]]:
        path = f"/v1/provider/files/{file_id}/errors"
        report = client.get(path, headers=sign(key, "GET", path))
        assert report.status_code == 200
        lines = list(csv.reader(io.StringIO(report.get_data(as_text=True))))[1:]
        return {int(line): (field, code, reason) for line, field, code, reason in lines}

    before = errors()
    exported = client.get("/v1/me/export", headers=mine).json["data"]["bindings"]
    assert sorted(e["line"] for e in exported["record_file_errors"]) == [1, 2]
    assert client.delete("/v1/me", headers=mine).status_code == 200
    after = errors()
    assert sorted(after) == [1, 2, 3, 4, 99]
    for line in (1, 2, 99):
        assert after[line] == ("_row", before[line][1], ERASED_REASON), line
    assert (after[3], after[4]) == (before[3], before[4])
    assert "card-0" not in every_value(own)
    with rt.db.transaction() as session:
        assert session.scalar(select(AuditSubject).where(
            AuditSubject.user_id == populated["sub"])) is None


def test_an_admin_erases_with_a_reason_and_again_changes_nothing(
        client: FlaskClient, own: Flask, populated: dict[str, Any]) -> None:
    sub, admin = populated["sub"], populated["admin"]
    url = f"/v1/admin/users/{sub}/erasure"
    assert client.post(url, json={}, headers=admin).status_code == 422  # a reason
    assert client.post(url, json={"reason": "x"}, headers=populated["mine"]
                       ).status_code == 403  # not an admin
    first = client.post(url, json={"reason": "deletion request #118"}, headers=admin)
    assert first.status_code == 200, first.json
    assert first.json["by"] == "ops-admin" and first.json["already"] is False
    snapshot = every_value(own)
    again = client.post(url, json={"reason": "asked twice"}, headers=admin)
    assert again.status_code == 200
    assert (again.json["already"], again.json["pseudonym"]) == (True,
                                                                 first.json["pseudonym"])
    assert every_value(own) == snapshot  # nothing more, not even an audit record
    rt = own.extensions["carbon_credits"]
    with rt.db.transaction() as session:
        assert session.scalars(select(Erasure)).one().reason == "deletion request #118"
    assert sub not in snapshot
    verify(own)


def test_a_user_who_never_posted_is_erased_and_refused(
        client: FlaskClient, token: Callable[..., str]) -> None:
    headers = {"Authorization": f"Bearer {token('never-posted-1')}"}
    assert client.delete("/v1/me", headers=headers).status_code == 200
    assert client.delete("/v1/me", headers=headers).status_code == 401


def test_an_account_altered_before_is_not_laundered_by_its_erasure(
        client: FlaskClient, own: Flask, populated: dict[str, Any]) -> None:
    """A superuser's edit of an entry, then the erasure: refused (409), nothing moved."""
    rt = own.extensions["carbon_credits"]
    with rt.db.transaction() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("ALTER TABLE ledger_entries DISABLE TRIGGER "
                                 "ledger_entries_append_only"))
        else:  # this test's own database: the trigger is not needed again
            session.execute(text("DROP TRIGGER ledger_entries_no_update"))
        session.execute(text("UPDATE ledger_entries SET points = points + 1000 "
                             "WHERE user_id = :u AND seq = 1"), {"u": populated["sub"]})
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("ALTER TABLE ledger_entries ENABLE TRIGGER "
                                 "ledger_entries_append_only"))
    before = every_value(own)
    refused = client.delete("/v1/me", headers=populated["mine"])
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "ledger_unverifiable"
    assert every_value(own) == before


@pytest.fixture
def own_service_url(own: Flask, is_postgres: bool) -> Iterator[str]:
    """The service's least-privilege role (storage/roles.py) on this test's own database."""
    if not is_postgres:
        pytest.skip("roles are PostgreSQL's; on SQLite the file's permissions are the grant")
    url = own.extensions["carbon_credits"].config.database_url
    role = f"cc_service_{uuid.uuid4().hex[:10]}"
    owner = create_engine(make_url(url), poolclass=NullPool)
    with owner.begin() as connection:
        roles.grant_service_role(connection, role)
    yield make_url(url).set(username=role).render_as_string(hide_password=False)
    with owner.begin() as connection:
        connection.exec_driver_sql(f"DROP OWNED BY {role}")
        connection.exec_driver_sql(f"DROP ROLE {role}")
    owner.dispose()


def test_the_service_role_erases_and_can_move_entries_only_as_erasure_does(
        own_service_url: str, make_app: Callable[..., Flask], user_id: str) -> None:
    """As the least-privilege role: the erasure works; a move of entries to another user
    is refused by the trigger, other columns by the grant; a move to a pseudonym without
    the chain key is named by verify-ledger."""
    service_url = own_service_url
    app = make_app(database_url=service_url, consent_required="none")
    client = app.test_client()
    codec = app.extensions["carbon_credits"].codec
    for sub in (user_id, user_id + "-b"):
        auth = {"Authorization": f"Bearer {codec.encode(sub, 'user', 'shenzhen', 600)}"}
        assert client.post("/v1/events", json=factories.metro(), headers=auth
                           ).status_code == 201
    erased = client.delete("/v1/me", headers={
        "Authorization": f"Bearer {codec.encode(user_id, 'user', 'shenzhen', 600)}"})
    assert erased.status_code == 200, erased.json
    verify(app)

    victim = user_id + "-b"
    with psycopg.connect(make_url(service_url).set(drivername="postgresql")
                         .render_as_string(hide_password=False)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE ledger_entries SET points = 0 WHERE user_id = %s", [victim])
        conn.rollback()
        with pytest.raises(psycopg.errors.RestrictViolation):
            conn.execute("UPDATE ledger_entries SET user_id = %s WHERE user_id = %s",
                         [user_id, victim])
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM ledger_entries WHERE user_id = %s", [victim])
        conn.rollback()
        forged = "erased-" + "0" * 24
        conn.execute("INSERT INTO users (id, city, frozen, created_at) "
                     "SELECT %s, city, true, created_at FROM users WHERE id = %s",
                     [forged, victim])
        conn.execute("INSERT INTO accounts (user_id, balance_points, lifetime_points, "
                     "lifetime_ug, carry_ug, entry_count, last_hash, updated_at) "
                     "SELECT %s, balance_points, lifetime_points, lifetime_ug, carry_ug, "
                     "entry_count, last_hash, updated_at FROM accounts WHERE user_id = %s",
                     [forged, victim])
        conn.execute("UPDATE ledger_entries SET user_id = %s WHERE user_id = %s",
                     [forged, victim])
        conn.commit()
    result = app.test_cli_runner().invoke(args=["verify-ledger"])
    assert result.exit_code == 1
    assert f"user {forged}, seq 1): hash is not the chain-key HMAC" in result.output
