"""The small admin-managed tables ingest keeps in the process (``storage.cached``): a
change, however it is written, is seen by the next post; a warm post reads only their
versions; a bonus paid (the campaign's budget) is not a change of the copy."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, select, text

from carbon_credits.badges import awards
from carbon_credits.runtime import Runtime
from carbon_credits.storage import cached
from carbon_credits.storage.models import Badge, BadgeAward, TableVersion
from tests import factories


def _version(rt: Runtime, table: str) -> str | None:
    with rt.db.transaction() as s:
        return s.scalar(select(TableVersion.version).where(TableVersion.name == table))


def _post(client: FlaskClient, auth: dict[str, str], hour: int) -> None:
    r = client.post("/v1/events", json=factories.metro(start=factories.today_at(hour)),
                    headers=auth)
    assert r.status_code == 201, r.json


def test_a_badge_written_behind_the_apps_back_is_earned_on_the_next_post(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], user_id: str) -> None:
    _post(client, auth, 6)  # the copy of the active badges is kept from here on
    code = f"cached-{user_id}"
    before = _version(rt, "badges")
    with rt.db.transaction() as s:  # plain SQL, as a DBA would: no app code runs
        s.execute(text(
            "INSERT INTO badges (code, status, name_zh, name_en, description_zh, "
            "description_en, rule, version, created_at, updated_at) VALUES "
            "(:code, 'active', '测试', 'Test', '', '', :rule, 1, :now, :now)"),
            {"code": code, "rule": '{"kind": "first_trip", "mode": "metro"}',
             "now": factories.NOW})
    assert _version(rt, "badges") != before
    _post(client, auth, 8)
    with rt.db.transaction() as s:
        won = s.scalars(select(Badge.code).join(BadgeAward, BadgeAward.badge_id == Badge.id)
                        .where(BadgeAward.user_id == user_id)).all()
    assert code in won
    with rt.db.transaction() as s:  # removed the same way: the next copy drops it
        badge_id = s.scalar(select(Badge.id).where(Badge.code == code))
        s.execute(text("DELETE FROM badge_awards WHERE badge_id = :id"), {"id": badge_id})
        s.execute(text("DELETE FROM badges WHERE id = :id"), {"id": badge_id})
    with rt.db.transaction() as s:
        cached.refresh(s)
        assert badge_id not in {b.id for b in awards.ACTIVE.get(s)}


def test_a_bonus_paid_leaves_the_campaigns_version_alone(rt: Runtime, user_id: str) -> None:
    # A campaign of a city of its own (no other test's events count toward it), removed
    # at the end (verify-ledger checks every campaign's budget against its bonuses).
    with rt.db.transaction() as s:
        s.execute(text(
            "INSERT INTO campaigns (id, city, starts_on, ends_on, goal_events, bonus_points, "
            "budget_points, spent_points, title_zh, title_en, created_by, created_at) VALUES "
            "(:id, :id, :day, :day, 1, 1, 10, 0, '测试', 'Test', 'test', :now)"),
            {"id": user_id, "day": factories.NOW.date(), "now": factories.NOW})
    try:
        before = _version(rt, "campaigns")
        with rt.db.transaction() as s:  # the column ``campaigns.progress._pay`` sets
            s.execute(text("UPDATE campaigns SET spent_points = spent_points + 0 "
                           "WHERE id = :id"), {"id": user_id})
        assert _version(rt, "campaigns") == before
        with rt.db.transaction() as s:
            s.execute(text("UPDATE campaigns SET ended_at = :now WHERE id = :id"),
                      {"id": user_id, "now": factories.NOW})
        assert _version(rt, "campaigns") != before
    finally:
        with rt.db.transaction() as s:
            s.execute(text("DELETE FROM campaigns WHERE id = :id"), {"id": user_id})


def test_a_warm_post_reads_the_versions_and_none_of_the_cached_tables(
        rt: Runtime, client: FlaskClient, auth: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _post(client, auth, 6)
    _post(client, auth, 7)  # warm: every copy kept, for this user's account too
    sent: list[str] = []

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        sent.append(sql)

    # PostgreSQL: ingest's prebuilt statements go to the driver itself (storage.sql)
    def spying(run: Any) -> Any:
        def spy(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            sent.append(str(query))
            return run(self, query, *args, **kwargs)
        return spy

    for cls, name in ((psycopg.Connection, "execute"), (psycopg.Cursor, "execute"),
                      (psycopg.Cursor, "executemany")):
        monkeypatch.setattr(cls, name, spying(getattr(cls, name)))
    engine = rt.db.engine
    event.listen(engine, "before_cursor_execute", statement)
    try:
        r = client.post("/v1/events", json=factories.metro(
            start=factories.today_at(9) + timedelta(minutes=5)), headers=auth)
    finally:
        event.remove(engine, "before_cursor_execute", statement)
    assert r.status_code == 201, r.json
    seen = "\n".join(sent)
    assert "table_versions" in seen
    for table in ("badges", "campaigns", "webhook_endpoints"):
        assert not re.search(rf"FROM {table}\b", seen), table
