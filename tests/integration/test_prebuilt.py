"""Statements run past SQLAlchemy on PostgreSQL (sql.Prebuilt, sql.bulk_insert): what they
read is what SQLAlchemy would have read, and the driver's errors reach callers as
SQLAlchemy's, a lost connection marked as lost."""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from sqlalchemy import bindparam, event, insert, select, text
from sqlalchemy.exc import DBAPIError, PendingRollbackError

from carbon_credits.ingest import intake
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Event, User, utcnow
from tests import factories


def test_a_stored_event_reads_as_sqlalchemy_reads_it(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], user_id: str,
        is_postgres: bool) -> None:
    """Every field of a stored event, as the ingest path reads it (a replay's answer), equals
    the ORM's, datetimes included: aware and in UTC. On PostgreSQL the driver returns
    datetimes in the session's time zone, whatever the server's default, so the engine's
    sessions are in UTC."""
    body = factories.metro(start=factories.today_at(7))
    assert client.post("/v1/events", json=body, headers=auth).status_code == 201
    with rt.db.transaction() as session:
        if is_postgres:
            assert session.scalar(text("SHOW timezone")) == "UTC"
        keys = {(user_id, body["event_id"])}
        read = intake._stored(keys, intake._STORED.rows(
            session, {"users": [user_id], "ids": [body["event_id"]]}))
        orm = session.scalars(select(Event).where(Event.user_id == user_id,
                                                  Event.event_id == body["event_id"])).one()
    (event,) = read.values()
    for field in fields(event):
        if field.name not in ("explanation", "boards"):  # not columns (decide.NewEvent)
            assert getattr(event, field.name) == getattr(orm, field.name), field.name
    for instant in (event.occurred_at, event.ends_at, event.created_at):
        assert instant is not None and instant.utcoffset() == timedelta(0)


def test_a_connection_lost_under_a_prebuilt_read_is_marked_lost(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], is_postgres: bool) -> None:
    """The session's connection dies before a read (PostgreSQL: its server process is
    terminated, and the driver runs the read; SQLite: the driver's connection is closed):
    the caller gets SQLAlchemy's error marked ``connection_invalidated`` (group commit
    answers it to the whole group), and the pool hands out working connections
    afterwards."""
    dsn = rt.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    # The transaction fails too (its connection is gone): SQLite says so at the commit.
    with pytest.raises((DBAPIError, PendingRollbackError)), rt.db.transaction() as session:
        if is_postgres:
            pid = session.scalar(text("SELECT pg_backend_pid()"))
            with psycopg.connect(dsn, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        else:
            driver = session.connection().connection.driver_connection
            assert driver is not None
            driver.close()
        with pytest.raises(DBAPIError) as caught:  # the read's own error, before rollback's
            intake._STORED.rows(session, {"users": [f"u-{uuid.uuid4().hex[:8]}"],
                                          "ids": ["e1"]})
    assert caught.value.connection_invalidated, caught.value
    for _ in range(rt.db.engine.pool.size() + 1):  # type: ignore[attr-defined]
        assert client.get("/v1/me/account", headers=auth).status_code == 200


def _users_named(rt: Runtime, user_id: str) -> int:
    with rt.db.transaction() as session:
        return int(session.scalar(text("SELECT count(*) FROM users WHERE id = :u"),
                                  {"u": user_id}) or 0)


_ADD_USER = intake.Prebuilt(lambda _: insert(User).values(
    id=bindparam("u"), city="shenzhen", frozen=False, created_at=bindparam("at")))


def test_a_transaction_begun_by_its_reads_is_one_transaction(
        rt: Runtime, is_postgres: bool) -> None:
    """A session of ``unit_of_work`` (autocommit on PostgreSQL, its BEGIN
    sent with the first ``read_together``): a write after the reads is undone when the
    transaction fails, as in any transaction; a driver statement before them, which would
    commit on its own, is refused and writes nothing (SQLite: the session is a plain
    transaction, and the write is undone with it)."""
    user = f"u-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ZeroDivisionError), rt.db.unit_of_work() as uow:
        intake.read_together(uow.session,
                             [(intake._STORED, {"users": [user], "ids": ["e1"]})])
        _ADD_USER.run(uow.session, [{"u": user, "at": utcnow()}])
        1 / 0  # noqa: B018  (the transaction fails after the write)
    assert _users_named(rt, user) == 0
    with rt.db.unit_of_work() as uow:
        if is_postgres:
            with pytest.raises(RuntimeError, match="outside a transaction"):
                _ADD_USER.run(uow.session, [{"u": user, "at": utcnow()}])
        else:
            _ADD_USER.run(uow.session, [{"u": user, "at": utcnow()}])
    assert _users_named(rt, user) == 0  # left without a commit: rolled back


def test_a_unit_of_work_keeps_only_what_it_commits(rt: Runtime) -> None:
    """Cosmic Python's rule: leaving the block without ``commit`` rolls back; ``commit``
    sends its writes with the COMMIT and keeps them."""
    kept, dropped = f"u-{uuid.uuid4().hex[:8]}", f"u-{uuid.uuid4().hex[:8]}"
    with rt.db.unit_of_work() as uow:
        intake.read_together(uow.session,
                             [(intake._STORED, {"users": [dropped], "ids": ["e1"]})])
        _ADD_USER.run(uow.session, [{"u": dropped, "at": utcnow()}])
    with rt.db.unit_of_work() as uow:
        intake.read_together(uow.session,
                             [(intake._STORED, {"users": [kept], "ids": ["e1"]})])
        uow.commit(lambda: _ADD_USER.run(uow.session, [{"u": kept, "at": utcnow()}]))
    assert (_users_named(rt, dropped), _users_named(rt, kept)) == (0, 1)


def test_connections_go_back_to_the_pool_out_of_autocommit(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], is_postgres: bool) -> None:
    """A connection used by a transaction begun by its reads (a post, and one that fails)
    is back in the pool out of autocommit mode and outside any transaction, so the next
    session that takes it runs in a transaction of its own."""
    returned: list[Any] = []

    def checkin(dbapi_conn: Any, _record: Any) -> None:
        if dbapi_conn is not None:
            returned.append((dbapi_conn.autocommit, dbapi_conn.info.transaction_status)
                            if is_postgres else dbapi_conn.in_transaction)

    event.listen(rt.db.engine.pool, "checkin", checkin)
    try:
        body = factories.metro(start=factories.today_at(7))
        assert client.post("/v1/events", json=body, headers=auth).status_code == 201
        with pytest.raises(ZeroDivisionError), rt.db.unit_of_work() as uow:
            intake.read_together(uow.session,
                                 [(intake._STORED, {"users": ["u"], "ids": ["e"]})])
            1 / 0  # noqa: B018
    finally:
        event.remove(rt.db.engine.pool, "checkin", checkin)
    assert returned
    if is_postgres:
        assert all(flags == (False, psycopg.pq.TransactionStatus.IDLE) for flags in returned), \
            returned
    else:  # sqlite3: a plain transaction, ended before the connection is returned
        assert not any(returned), returned
