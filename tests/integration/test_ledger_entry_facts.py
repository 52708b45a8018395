"""What each ledger entry records, as the account's ledger shows it: an earn and its
reversal name the event, its mode and its grams, the reversal with the opposite signs.

Written for survivors of mutation testing (docs/MUTATION.md): an earn entry written without
its mode, or a reversal without its event or with the grams' sign wrong, passed every test
that only compared the entries' points and the balance."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Event, LedgerEntry
from tests import factories


def test_an_earn_and_its_reversal_record_the_event_its_mode_and_its_grams(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], token: Any, user_id: str) -> None:
    r = client.post("/v1/events", json=factories.bus(), headers=auth)
    assert r.status_code == 201, r.json
    event = r.json
    assert event["points"] > 0
    admin = {"Authorization": f"Bearer {token('ops-admin', role='admin')}"}
    r = client.post(f"/v1/admin/users/{user_id}/events/{event['event_id']}/reversal",
                    json={"reason": "operator found a duplicate ride"}, headers=admin)
    assert r.status_code == 201, r.json
    reversal, earn = client.get("/v1/me/ledger", headers=auth).json["items"]
    assert {k: earn[k] for k in ("kind", "event_id", "mode", "points", "grams",
                                 "balance_after", "redemption_id")} == {
        "kind": "earn", "event_id": event["event_id"], "mode": "bus",
        "points": event["points"], "grams": event["grams"],
        "balance_after": event["points"], "redemption_id": None}
    assert earn["ug"] >= event["grams"] * 1_000_000 > 0
    assert {k: reversal[k] for k in ("kind", "event_id", "mode", "points", "ug", "grams",
                                     "balance_after", "redemption_id")} == {
        "kind": "reversal", "event_id": event["event_id"], "mode": "bus",
        "points": -event["points"], "ug": -earn["ug"], "grams": -event["grams"],
        "balance_after": 0, "redemption_id": None}
    account = client.get("/v1/me/account", headers=auth).json
    assert (account["balance"], account["lifetime_points"], account["lifetime_grams"]) == (
        0, 0, 0)
    with rt.db.transaction() as session:  # the factor version is not shown by the API
        stored = session.scalars(select(Event).where(
            Event.user_id == user_id, Event.event_id == event["event_id"])).one()
        assert [(e.kind, e.event_pk, e.factor_version_id) for e in session.scalars(
            select(LedgerEntry).where(LedgerEntry.user_id == user_id)
            .order_by(LedgerEntry.seq))] == [
            ("earn", stored.id, stored.factor_version_id),
            ("reversal", stored.id, stored.factor_version_id)]
        assert stored.factor_version_id is not None
