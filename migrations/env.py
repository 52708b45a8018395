"""Alembic environment: run by `flask --app app init-db` (or `alembic upgrade head`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from carbon_credits.storage.models import Base

target_metadata = Base.metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    # Stand-alone `alembic` use: the same database the app would use.
    from pathlib import Path

    from carbon_credits.config import Config
    from carbon_credits.ledger import chain
    from carbon_credits.storage.db import make_engine

    cfg = Config.from_env(Path(__file__).resolve().parent.parent / "instance")
    chain.use_keyring(chain.Keyring(cfg.ledger_chain_keyring()))  # migration 0008 seals with it
    with make_engine(cfg.database_url, cfg.db_lock_timeout_ms).connect() as conn:
        run(conn)
        conn.commit()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run init-db against a database")
main()
