"""Migration 0009_audit_refs: audit records written before it named users (a freeze's
``user:<id>``, a review's or reversal's ``event:<id>/<event_id>``); after it they name
them by an opaque reference only, leading to the user while they exist and to nobody for
a user erased before, and the log is as append-only as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from carbon_credits.config import Config
from carbon_credits.factory import create_app
from tests import conftest
from tests.integration.test_migration_0004 import _alembic

BEFORE = "0009_campaigns"
THIS = "0009_audit_refs"
OLD = [("user.freeze", "user:m-alice"), ("review.reject", "event:m-alice/trip-9"),
       ("user.unfreeze", "user:m-gone"), ("factor_version.create", "factors:shenzhen/v2")]


def test_old_records_name_users_by_reference_only(
        rt: Any, make_config: Callable[..., Config], tmp_path: Path) -> None:
    url, drop = (conftest._fresh_postgres(rt.config.database_url)
                 if rt.config.database_url.startswith("postgresql")
                 else (f"sqlite:///{tmp_path / 'audit-refs.sqlite3'}", None))
    db = create_app(make_config(database_url=url)).extensions["carbon_credits"].db
    try:
        _alembic(db, command.upgrade, BEFORE)
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id, city, frozen, created_at) VALUES "
                              "('m-alice', 'shenzhen', false, CURRENT_TIMESTAMP)"))
            for action, target in OLD:
                conn.execute(text(
                    "INSERT INTO audit_log (actor, action, target, reason, created_at) "
                    "VALUES ('ops', :a, :t, 'why', CURRENT_TIMESTAMP)"),
                    {"a": action, "t": target})

        _alembic(db, command.upgrade, THIS)
        with db.engine.begin() as conn:
            rows = conn.execute(text("SELECT action, target, subject_ref FROM audit_log "
                                     "ORDER BY id")).all()
            refs = dict(conn.execute(text("SELECT ref, user_id FROM audit_subjects")).all())
        logged = "\n".join(str(row) for row in rows)
        assert "m-alice" not in logged and "m-gone" not in logged and "trip-9" not in logged
        (_, freeze, alice), (_, review, alice_again), (_, unfreeze, gone), other = rows
        assert alice == alice_again and refs == {alice: "m-alice"}
        assert (freeze, review) == (f"user:{alice}", "event:erased")  # no such event
        assert gone is not None and gone not in refs and unfreeze == f"user:{gone}"
        assert other == ("factor_version.create", "factors:shenzhen/v2", None)
        with pytest.raises(DBAPIError):  # append-only still
            with db.engine.begin() as conn:
                conn.execute(text("UPDATE audit_log SET reason = 'x'"))

        _alembic(db, command.downgrade, BEFORE)
        with db.engine.connect() as conn:
            found = inspect(conn)
            assert "audit_subjects" not in found.get_table_names()
            assert "subject_ref" not in {c["name"] for c in found.get_columns("audit_log")}
        with pytest.raises(DBAPIError):
            with db.engine.begin() as conn:
                conn.execute(text("DELETE FROM audit_log"))
    finally:
        db.dispose()
        if drop is not None:
            drop()
