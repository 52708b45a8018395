"""Migration 0004 (lean rows) keeps every value of rows stored at 0003: events, ledger
entries (whose chain still verifies), daily usage; it drops report_participants, and its
downgrade gives the table and the bigint columns back."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from carbon_credits.config import Config
from carbon_credits.factory import create_app
from carbon_credits.ingest import events
from carbon_credits.ledger import explain, hooks, reversals, verification
from carbon_credits.schemas import load_event
from carbon_credits.setup import MIGRATIONS, seed_defaults
from carbon_credits.storage.models import Base, Event
from carbon_credits.tokens import Principal
from tests import conftest, factories

TABLES = {"events": "id", "ledger_entries": "id", "daily_usage": "user_id, local_date, mode",
          "report_rollups": "city, local_date, mode, district, methodology_version, shard"}
NARROWED = {("events", "points"), ("events", "factor_version_id"), ("events", "network_id"),
            ("ledger_entries", "seq"), ("ledger_entries", "points"),
            ("daily_usage", "points"), ("daily_usage", "max_quantity")}


def _alembic(db: Any, how: Callable[[AlembicConfig, str], None], revision: str) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        how(cfg, revision)


BEFORE = "0004_annual_usage"
"""The revision before 0004_lean: rows of the 0003 shape, written by today's code (which
needs 0004_trust's ``events.source`` and 0004_rollup_source's rollup key)."""
LATER_TABLES = ("account_months", "badges", "badge_awards", "audit_subjects")
"""Tables of later revisions (0009_account, 0009_audit_refs) today's write path and init-db
write: made from the models beside the ``BEFORE`` schema, which the migrations under test
ignore (with 0009_audit_refs' column of the audit log, which a reversal writes, and
0009_usage_days' columns of the daily usage, which every credit writes)."""
LATER_COLUMNS = (("audit_log", "subject_ref VARCHAR(32)"),
                 *(("daily_usage", f"{name} BIGINT NOT NULL DEFAULT 0")
                   for name in ("live_events", "live_ug", "live_points", "activity")))


@contextmanager
def _at_0003(rt: Any, make_config: Callable[..., Config], tmp_path: Path) -> Iterator[Flask]:
    """An app on a fresh database of the suite's backend, migrated to ``BEFORE`` only."""
    url, drop = (conftest._fresh_postgres(rt.config.database_url)
                 if rt.config.database_url.startswith("postgresql")
                 else (f"sqlite:///{tmp_path / 'at-0003.sqlite3'}", None))
    app = create_app(make_config(database_url=url))
    # The suite's clock (tests.factories.NOW), which the events' times are set by: on the
    # real clock, an event of "today at noon" is in the future before local noon.
    app.extensions["carbon_credits"].clock = conftest.pinned_clock
    db = app.extensions["carbon_credits"].db
    # Today's crediting hooks (campaigns, the webhook outbox) need 0009's tables: the
    # rows of the old shape are written without them.
    previous = hooks.install(())
    try:
        _alembic(db, command.upgrade, BEFORE)
        with db.engine.begin() as conn:
            Base.metadata.create_all(conn, tables=[Base.metadata.tables[t]
                                                   for t in LATER_TABLES])
            for table, column in LATER_COLUMNS:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column}"))
        yield app
    finally:
        hooks.install(previous)
        db.dispose()
        if drop is not None:
            drop()


def _rows(db: Any) -> dict[str, list[tuple[Any, ...]]]:
    with db.transaction() as session:
        return {table: [tuple(r) for r in session.execute(
            text(f"SELECT * FROM {table} ORDER BY {order}")).all()]
            for table, order in TABLES.items()}


def _types(db: Any) -> dict[tuple[str, str], str]:
    with db.engine.connect() as conn:
        found = inspect(conn)
        return {(table, column): str(c["type"]).upper() for table, column in NARROWED
                for c in found.get_columns(table) if c["name"] == column}


def _refused_twice(db: Any, user_id: str, kind: str) -> None:
    """A second entry of ``kind`` for an event that has one is refused by the database
    (an adjustment: the first is made here, for an event with an earn entry)."""
    add = ("INSERT INTO ledger_entries (user_id, seq, kind, points, ug, balance_after, "
           "event_pk, mode, factor_version_id, created_at, hash) SELECT user_id, :seq, "
           ":kind, 0, 0, 0, event_pk, mode, factor_version_id, created_at, hash "
           "FROM ledger_entries WHERE user_id = :u AND kind = :of LIMIT 1")
    of = "earn" if kind == "adjustment" else kind
    with pytest.raises(IntegrityError):
        with db.transaction() as session:
            if kind == "adjustment":
                session.execute(text(add), {"u": user_id, "kind": kind, "of": of, "seq": 1000})
            session.execute(text(add), {"u": user_id, "kind": kind, "of": of, "seq": 1001})


def _fillfactors(db: Any) -> dict[str, Any]:
    with db.transaction() as session:
        return dict(session.execute(text(
            "SELECT relname, reloptions FROM pg_class WHERE relname IN ('pk_events', "
            "'pk_ledger_entries', 'uq_ledger_entries_event_pk_kind', "
            "'uq_ledger_entries_earn', 'uq_ledger_entries_reversal')")).all())


def test_upgrade_from_0003_keeps_every_value_and_the_chain(
        rt: Any, make_config: Callable[..., Config], tmp_path: Path) -> None:
    user = Principal(f"m4-{uuid.uuid4().hex[:12]}", "user", "shenzhen")
    admin = Principal("m4-admin", "admin", None)
    bodies = [factories.metro(event_id="metro", start=factories.today_at(8)),
              factories.metro(event_id="later", start=factories.today_at(11)),
              factories.bus(event_id="bus", start=factories.today_at(12)),
              factories.steps(20_000, event_id="steps-1"),
              factories.steps(21_000, event_id="steps-2")]
    with _at_0003(rt, make_config, tmp_path) as app:
        runtime = app.extensions["carbon_credits"]
        db = runtime.db
        with db.transaction() as session:
            seed_defaults(session, "shenzhen")
        answered = {b["event_id"]: events.ingest(runtime, user, load_event(b)).event
                    for b in bodies}
        reversals.reverse_event(runtime, admin, user.sub, "metro", "fraud found later")
        postgres = db.engine.dialect.name == "postgresql"
        before, types_before = _rows(db), _types(db)
        assert before["events"] and before["ledger_entries"] and before["daily_usage"]
        if postgres:
            assert set(types_before.values()) == {"BIGINT"}

        _alembic(db, command.upgrade, "0004_lean")
        with db.engine.connect() as conn:
            assert "report_participants" not in inspect(conn).get_table_names()
        if postgres:
            assert set(_types(db).values()) == {"INTEGER"}
            assert _fillfactors(db) == {"pk_events": ["fillfactor=100"],
                                        "pk_ledger_entries": ["fillfactor=100"],
                                        "uq_ledger_entries_earn": ["fillfactor=100"],
                                        "uq_ledger_entries_reversal": ["fillfactor=100"]}
        assert _rows(db) == before
        assert list(verification.verify(db, user_ids=[user.sub])) == []
        with db.transaction() as session:
            for event in session.scalars(select(Event).where(Event.user_id == user.sub)):
                if event.event_id != "metro":  # answered before its reversal
                    assert explain.explain(session, runtime.catalog, event) == \
                        answered[event.event_id]["explanation"], event.event_id

        for kind in ("earn", "reversal", "adjustment"):  # the (event, kind) rule, by index
            _refused_twice(db, user.sub, kind)
        with pytest.raises(DBAPIError, match="append-only"):  # the triggers survived a copy
            with db.transaction() as session:
                session.execute(text("UPDATE ledger_entries SET points = points + 1"))

        _alembic(db, command.downgrade, BEFORE)
        with db.engine.connect() as conn:
            assert "report_participants" in inspect(conn).get_table_names()
        assert _types(db) == types_before
        if postgres:
            assert _fillfactors(db) == {"pk_events": None, "pk_ledger_entries": None,
                                        "uq_ledger_entries_event_pk_kind": None}
        assert _rows(db) == before
