"""Migration 0009_holds: the ledger accepts 'hold' and 'release' entries (of no points
only), and existing reward redemptions keep their meaning: spent at once by their 'redeem'
entry, so none is held (``hold`` false) and none counts as reserved; a downgrade takes
the kinds and the column away again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from carbon_credits.config import Config
from carbon_credits.factory import create_app
from carbon_credits.ledger import settlement
from tests import conftest
from tests.integration.test_migration_0004 import _alembic

BEFORE = "0009_usage_days"
THIS = "0009_holds"

ROWS = [
    "INSERT INTO users (id, city, frozen, created_at) VALUES "
    "('m-old', 'shenzhen', false, CURRENT_TIMESTAMP)",
    "INSERT INTO accounts (user_id, balance_points, lifetime_points, lifetime_ug, carry_ug, "
    "entry_count, last_hash, updated_at) VALUES ('m-old', 70, 100, 0, 0, 2, :h, "
    "CURRENT_TIMESTAMP)",
    "INSERT INTO rewards (id, merchant_id, kind, status, price_points, stock, stock_left, "
    "per_user_limit, valid_from, valid_until, city, title_zh, title_en, description_zh, "
    "description_en, created_at, updated_at) VALUES (1, 'merchant', 'physical', 'approved', "
    "30, 5, 4, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP + INTERVAL_DAY, 'shenzhen', 'x', "
    "'x', 'x', 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    "INSERT INTO redemptions (id, user_id, redemption_id, points, payload_hash, "
    "balance_after, created_at) VALUES (1, 'm-old', 'bag', 30, 'h', 70, CURRENT_TIMESTAMP)",
    "INSERT INTO reward_redemptions (id, redemption_pk, reward_id, user_id, quantity, "
    "points, state, created_at, updated_at) VALUES (1, 1, 1, 'm-old', 1, 30, 'pending', "
    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
]


def _entry(conn: Any, seq: int, kind: str, points: int) -> None:
    conn.execute(text(
        "INSERT INTO ledger_entries (user_id, seq, kind, points, ug, balance_after, "
        "redemption_pk, created_at, hash) VALUES ('m-old', :seq, :kind, :points, 0, 70, 1, "
        "CURRENT_TIMESTAMP, :h)"), {"seq": seq, "kind": kind, "points": points,
                                    "h": bytes(32)})


def test_existing_redemptions_stay_spent_and_holds_are_new_kinds_of_no_points(
        rt: Any, make_config: Callable[..., Config], tmp_path: Path) -> None:
    url, drop = (conftest._fresh_postgres(rt.config.database_url)
                 if rt.config.database_url.startswith("postgresql")
                 else (f"sqlite:///{tmp_path / 'holds.sqlite3'}", None))
    db = create_app(make_config(database_url=url)).extensions["carbon_credits"].db
    day = ("CURRENT_TIMESTAMP + INTERVAL '1 day'" if url.startswith("postgresql")
           else "datetime(CURRENT_TIMESTAMP, '+1 day')")
    try:
        _alembic(db, command.upgrade, BEFORE)
        with db.engine.begin() as conn:
            for statement in ROWS:
                conn.execute(text(statement.replace("CURRENT_TIMESTAMP + INTERVAL_DAY", day)),
                             {"h": bytes(32)})
            with pytest.raises(DBAPIError), conn.begin_nested():
                _entry(conn, 1, "hold", 0)  # not a kind yet

        _alembic(db, command.upgrade, THIS)
        with db.engine.begin() as conn:
            assert conn.execute(text("SELECT hold FROM reward_redemptions")).scalar_one() \
                in (False, 0)
            assert "ix_reward_redemptions_user_id_state" in {
                i["name"] for i in inspect(conn).get_indexes("reward_redemptions")}
        with Session(db.engine) as session:
            # Its points were spent by its 'redeem' entry: pending, but not reserved.
            assert settlement.reserved(session, "m-old") == 0

        _alembic(db, command.downgrade, BEFORE)
        with db.engine.connect() as conn:
            assert "hold" not in {c["name"] for c in
                                  inspect(conn).get_columns("reward_redemptions")}
        with db.engine.begin() as conn, pytest.raises(DBAPIError), conn.begin_nested():
            _entry(conn, 1, "hold", 0)

        _alembic(db, command.upgrade, THIS)
        with db.engine.begin() as conn:
            _entry(conn, 1, "hold", 0)
            _entry(conn, 2, "release", 0)
            for kind, points in (("hold", -30), ("release", 30)):
                with pytest.raises(DBAPIError), conn.begin_nested():
                    _entry(conn, 3, kind, points)  # a hold or release moves no points
            with pytest.raises(DBAPIError), conn.begin_nested():  # append-only still
                conn.execute(text("UPDATE ledger_entries SET points = 1 WHERE seq = 1"))
    finally:
        db.dispose()
        if drop is not None:
            drop()
