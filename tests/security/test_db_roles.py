"""The service's database role (storage/roles.py): it runs the service, and is refused
every statement it has no business running: DDL, and any change to the append-only
tables' rows. PostgreSQL only: SQLite has no roles."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from flask import Flask
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from carbon_credits.storage import roles
from tests import factories

FORBIDDEN = [
    "UPDATE ledger_entries SET points = points + 1000",
    "DELETE FROM ledger_entries",
    "TRUNCATE ledger_entries",
    "UPDATE audit_log SET reason = 'nothing happened'",
    "DELETE FROM audit_log",
    "UPDATE factor_versions SET factors = '{}'",
    "DELETE FROM factor_versions",
    "UPDATE network_line_stops SET dist_m = dist_m * 10",
    "DELETE FROM networks",
    "CREATE TABLE shadow (id int)",
    "DROP TABLE events",
    "ALTER TABLE ledger_entries DISABLE TRIGGER ALL",
    "ALTER TABLE events ADD COLUMN x int",
    "DROP TRIGGER ledger_entries_append_only ON ledger_entries",
    "CREATE INDEX ix_sneaky ON events (id)",
    "UPDATE alembic_version SET version_num = '0001'",
    "UPDATE ledger_chain_start SET legacy_last_entry_id = legacy_last_entry_id + 1",
    "DELETE FROM ledger_chain_start",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE ROLE sneaky SUPERUSER",
    # The months of events are the owner's (storage/partitions.py), and so is the global
    # key of event ids: a service that could delete one could credit an id twice.
    # This month in the city (months are of local_date), as the suite's clock has it.
    f"ALTER TABLE events DETACH PARTITION events_p{factories.NOW:%Y_%m}",
    "ALTER TABLE events ATTACH PARTITION shadow FOR VALUES FROM ('2099-01-01') "
    "TO ('2099-02-01')",
    "DELETE FROM event_keys",
    "UPDATE event_keys SET event_id = 'reused'",
]


@pytest.fixture
def service_url(database_url: str, is_postgres: bool, app: Flask) -> Iterator[str]:
    if not is_postgres:
        pytest.skip("roles are PostgreSQL's; on SQLite the file's permissions are the grant")
    role = f"cc_service_{uuid.uuid4().hex[:10]}"
    owner = create_engine(make_url(database_url), poolclass=NullPool)
    with owner.begin() as connection:
        roles.grant_service_role(connection, role)
    yield make_url(database_url).set(username=role).render_as_string(hide_password=False)
    with owner.begin() as connection:
        connection.exec_driver_sql(f"DROP OWNED BY {role}")
        connection.exec_driver_sql(f"DROP ROLE {role}")
    owner.dispose()


def _driver_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.parametrize("statement", FORBIDDEN)
def test_the_service_role_is_refused(service_url: str, statement: str) -> None:
    with psycopg.connect(_driver_url(service_url)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_the_service_runs_as_its_role(service_url: str, make_app: Callable[..., Flask],
                                      user_id: str) -> None:
    """Posts, a batch, a redemption, a review and a reversal: what the service writes."""
    app = make_app(database_url=service_url)
    client = app.test_client()
    codec = app.extensions["carbon_credits"].codec
    auth = {"Authorization": f"Bearer {codec.encode(user_id, 'user', 'shenzhen', 600)}"}
    admin = {"Authorization": f"Bearer {codec.encode('ops', 'admin', None, 600)}"}
    first = client.post("/v1/events", json=factories.metro(), headers=auth)
    assert first.status_code == 201, first.json
    batch = client.post("/v1/events/batch", headers=auth, json={"events": [
        factories.bus(), factories.steps(5000)]})
    assert [i["status"] for i in batch.json["results"]] == [201, 201], batch.json
    spent = client.post("/v1/me/redemptions", headers=auth,
                        json={"redemption_id": factories.new_id(), "points": 1})
    assert spent.status_code == 201, spent.json
    reversed_ = client.post(
        f"/v1/admin/users/{user_id}/events/{first.json['event_id']}/reversal",
        json={"reason": "test"}, headers=admin)
    assert reversed_.status_code == 201, reversed_.json
    assert client.get("/v1/me/ledger", headers=auth).status_code == 200
    assert client.get("/readyz").status_code == 200


def test_the_sql_for_a_dba_names_only_a_plain_role() -> None:
    assert any("REVOKE UPDATE, DELETE ON ledger_entries" in s
               for s in roles.grants_sql("cc_service"))
    for bad in ("x; DROP TABLE events", "a-b", "", "role name"):
        with pytest.raises(ValueError):
            roles.grants_sql(bad)
