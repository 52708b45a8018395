"""Migration 0009_usage_days: the carbon account's day rows (``account_days``) become the
live counters of ``daily_usage``, which keeps its caps' counters as they were; a day row
with no usage row becomes one whose caps' counters are 0; the downgrade gives the day
rows back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import inspect, text

from carbon_credits.config import Config
from carbon_credits.factory import create_app
from tests import conftest
from tests.integration.test_migration_0004 import _alembic

BEFORE = "0009_audit_refs"
THIS = "0009_usage_days"
USAGE = [  # (day, mode, events, credited_ug, points, max_quantity): the caps' counters
    ("2026-11-02", "metro", 3, 900_000_000, 900, 0),  # one of its 3 credits reversed since
    ("2026-11-02", "steps", 2, 0, 0, 12000),  # capped to nothing: no account day row
    ("2026-11-03", "bus", 1, 500_000_000, 500, 0)]
DAYS = [  # (day, mode, events, ug, points, activity): the account's day rows
    ("2026-11-02", "metro", 2, 600_000_000, 600, 14000),
    ("2026-11-03", "bus", 1, 500_000_000, 500, 6000),
    ("2026-11-04", "metro", 1, 300_000_000, 300, 7000)]  # no usage row (not expected)


def test_the_account_days_become_the_usage_rows_live_counters(
        rt: Any, make_config: Callable[..., Config], tmp_path: Path) -> None:
    url, drop = (conftest._fresh_postgres(rt.config.database_url)
                 if rt.config.database_url.startswith("postgresql")
                 else (f"sqlite:///{tmp_path / 'usage-days.sqlite3'}", None))
    db = create_app(make_config(database_url=url)).extensions["carbon_credits"].db
    try:
        _alembic(db, command.upgrade, BEFORE)
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id, city, frozen, created_at) VALUES "
                              "('m-ann', 'shenzhen', false, CURRENT_TIMESTAMP)"))
            for day, mode, events, ug, points, most in USAGE:
                conn.execute(text(
                    "INSERT INTO daily_usage (user_id, local_date, mode, events, credited_ug, "
                    "points, max_quantity) VALUES ('m-ann', :d, :m, :e, :u, :p, :q)"),
                    {"d": day, "m": mode, "e": events, "u": ug, "p": points, "q": most})
            for day, mode, events, ug, points, activity in DAYS:
                conn.execute(text(
                    "INSERT INTO account_days (user_id, local_date, mode, events, ug, points, "
                    "activity) VALUES ('m-ann', :d, :m, :e, :u, :p, :a)"),
                    {"d": day, "m": mode, "e": events, "u": ug, "p": points, "a": activity})

        _alembic(db, command.upgrade, THIS)
        with db.engine.connect() as conn:
            assert "account_days" not in inspect(conn).get_table_names()
            rows = [tuple(str(v) for v in r) for r in conn.execute(text(
                "SELECT local_date, mode, events, credited_ug, points, max_quantity, "
                "live_events, live_ug, live_points, activity FROM daily_usage "
                "ORDER BY local_date, mode")).all()]
        assert rows == [
            ("2026-11-02", "metro", "3", "900000000", "900", "0",
             "2", "600000000", "600", "14000"),
            ("2026-11-02", "steps", "2", "0", "0", "12000", "0", "0", "0", "0"),
            ("2026-11-03", "bus", "1", "500000000", "500", "0",
             "1", "500000000", "500", "6000"),
            ("2026-11-04", "metro", "0", "0", "0", "0", "1", "300000000", "300", "7000")]

        _alembic(db, command.downgrade, BEFORE)
        with db.engine.connect() as conn:
            assert not {"live_events", "live_ug", "live_points", "activity"} & {
                c["name"] for c in inspect(conn).get_columns("daily_usage")}
            back = [tuple(str(v) for v in r) for r in conn.execute(text(
                "SELECT local_date, mode, events, ug, points, activity FROM account_days "
                "ORDER BY local_date, mode")).all()]
        assert back == [tuple(str(v) for v in row) for row in DAYS]
    finally:
        db.dispose()
        if drop is not None:
            drop()
