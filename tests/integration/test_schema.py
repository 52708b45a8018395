"""Migrations and models agree; init-db is idempotent."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from carbon_credits.runtime import Runtime
from carbon_credits.setup import init_db
from carbon_credits.storage.models import Base


def test_migrations_produce_exactly_the_models_schema(rt: Runtime) -> None:
    with rt.db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_init_db_twice_adds_nothing(rt: Runtime) -> None:
    assert init_db(rt.db, "shenzhen") == []
