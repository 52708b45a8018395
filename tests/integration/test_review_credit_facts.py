"""A held event an admin approves is credited through the same daily caps as at ingest
(carbon_credits/ledger/caps.py ``apply``): its earn entry names its mode and factor
version, its day's usage row grows by exactly its credit, and a credit of nothing writes
no entry. Written for survivors of mutation testing (docs/MUTATION.md): the approval tests
checked the balance and the entry's kind, not these facts."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import DailyUsage, Event, LedgerEntry
from tests import factories


def _usage(rt: Runtime, user_id: str) -> dict[tuple[str, date], tuple[int, int, int]]:
    with rt.db.transaction() as session:
        return {(u.mode, u.local_date): (u.credited_ug, u.points, u.max_quantity)
                for u in session.scalars(select(DailyUsage).where(DailyUsage.user_id == user_id))}


def test_an_approved_event_is_credited_to_its_mode_and_its_days_usage(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], token: Any,
        user_id: str) -> None:
    admin = {"Authorization": f"Bearer {token('facts-admin', role='admin')}"}
    yesterday = factories.today_at(8) - timedelta(days=1)  # a usage row of another day
    r = client.post("/v1/events", json=factories.metro(start=yesterday), headers=auth)
    assert r.status_code == 201 and r.json["status"] == "credited", r.json
    start = factories.today_at(8)
    body = factories.metro(start=start, ended_at=(start + timedelta(minutes=2)).isoformat())
    held = client.post("/v1/events", json=body, headers=auth).json
    assert held["status"] == "held"
    today, before = start.date(), _usage(rt, user_id)
    was = before.get(("metro", today), (0, 0, 0))
    r = client.post(f"/v1/admin/reviews/{user_id}/{held['event_id']}/approve",
                    json={"reason": "express train confirmed"}, headers=admin)
    assert r.status_code == 200 and r.json["status"] == "credited", r.json
    with rt.db.transaction() as session:
        event = session.scalars(select(Event).where(Event.user_id == user_id,
                                                    Event.event_id == held["event_id"])).one()
        entry = session.scalars(select(LedgerEntry).where(
            LedgerEntry.user_id == user_id, LedgerEntry.event_pk == event.id)).one()
        assert (entry.kind, entry.event_pk, entry.mode, entry.factor_version_id, entry.ug,
                entry.points) == ("earn", event.id, "metro", event.factor_version_id,
                                  event.credited_ug, event.points)
        credited_ug, points = event.credited_ug, event.points
    assert points > 0
    after = _usage(rt, user_id)
    assert after[("metro", today)] == (was[0] + credited_ug, was[1] + points, 0)
    assert after[("metro", yesterday.date())] == before[("metro", yesterday.date())]


def test_an_approved_event_capped_to_nothing_writes_no_entry(
        rt: Runtime, make_app: Any, user_id: str) -> None:
    """The day's cap was used up while the event was held: approved, it credits 0 g and
    the ledger gets no zero entry."""
    app = make_app(daily_caps_g={"total": 100})
    client = app.test_client()
    codec = app.extensions["carbon_credits"].codec
    auth = {"Authorization": f"Bearer {codec.encode(user_id, 'user', 'shenzhen', 600)}"}
    admin = {"Authorization": f"Bearer {codec.encode('facts-admin', 'admin', None, 600)}"}
    start = factories.today_at(8)
    held = client.post("/v1/events", headers=auth, json=factories.metro(
        start=start, ended_at=(start + timedelta(minutes=2)).isoformat())).json
    assert held["status"] == "held"
    used = client.post("/v1/events", headers=auth,
                       json=factories.metro(start=factories.today_at(10))).json
    assert (used["status"], used["grams"]) == ("capped", 100)
    r = client.post(f"/v1/admin/reviews/{user_id}/{held['event_id']}/approve",
                    json={"reason": "checked"}, headers=admin)
    assert r.status_code == 200 and (r.json["status"], r.json["points"]) == ("capped", 0)
    ledger = client.get("/v1/me/ledger", headers=auth).json["items"]
    assert [(e["kind"], e["points"]) for e in ledger] == [("earn", 100)]


def test_an_approval_counts_the_users_own_day_only_and_starts_a_new_usage_row(
        rt: Runtime, make_app: Any, user_id: str) -> None:
    """Another user at the day's cap does not cap this user's approval (the usage read is
    the user's own), and the approved event starts the day's usage row of its mode: one
    event, its grams and points."""
    app = make_app(daily_caps_g={"total": 400})
    client = app.test_client()
    codec = app.extensions["carbon_credits"].codec
    other = f"{user_id}-other"
    admin = {"Authorization": f"Bearer {codec.encode('facts-admin', 'admin', None, 600)}"}
    other_auth = {"Authorization": f"Bearer {codec.encode(other, 'user', 'shenzhen', 600)}"}
    assert client.post("/v1/events", headers=other_auth, json=factories.metro(
        start=factories.today_at(6))).json["grams"] == 376
    assert client.post("/v1/events", headers=other_auth, json=factories.metro(
        start=factories.today_at(7))).json["grams"] == 23  # the other user is at the cap
    auth = {"Authorization": f"Bearer {codec.encode(user_id, 'user', 'shenzhen', 600)}"}
    start = factories.today_at(8)
    held = client.post("/v1/events", headers=auth, json=factories.metro(
        start=start, ended_at=(start + timedelta(minutes=2)).isoformat())).json
    assert held["status"] == "held"
    assert ("metro", start.date()) not in _usage(rt, user_id)
    r = client.post(f"/v1/admin/reviews/{user_id}/{held['event_id']}/approve",
                    json={"reason": "checked"}, headers=admin)
    assert r.status_code == 200 and (r.json["status"], r.json["grams"]) == ("credited", 376)
    with rt.db.transaction() as session:
        row = session.scalars(select(DailyUsage).where(
            DailyUsage.user_id == user_id, DailyUsage.local_date == start.date(),
            DailyUsage.mode == "metro")).one()
        assert (row.events, row.credited_ug, row.points, row.max_quantity) == (
            1, 376_178_400, 376, 0)
