"""Redemptions, reversals, the database's own guards and verify-ledger."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from carbon_credits.ledger import entries
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import LedgerEntry
from carbon_credits.tokens import Principal
from tests import factories


def _earn(client: FlaskClient, auth: dict[str, str], **kw: Any) -> dict[str, Any]:
    r = client.post("/v1/events", json=factories.metro(**kw), headers=auth)
    assert r.status_code == 201, r.json
    return dict(r.json)


def _admin(token: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('ops-admin', role='admin')}"}


def test_redemption_spends_points_once_per_redemption_id(
        client: FlaskClient, auth: dict[str, str]) -> None:
    earned = _earn(client, auth)["points"]  # 376
    body = {"redemption_id": "r-1", "points": 100, "description": "bus ticket"}
    first = client.post("/v1/me/redemptions", json=body, headers=auth)
    again = client.post("/v1/me/redemptions", json=body, headers=auth)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json == again.json and first.json["balance_after"] == earned - 100
    other = client.post("/v1/me/redemptions", json={**body, "points": 5}, headers=auth)
    assert other.status_code == 409 and other.json["error"]["code"] == "redemption_id_conflict"
    account = client.get("/v1/me/account", headers=auth).json
    assert account["balance"] == earned - 100 and account["lifetime_points"] == earned
    kinds = [e["kind"] for e in client.get("/v1/me/ledger", headers=auth).json["items"]]
    assert kinds == ["redeem", "earn"]


def test_redemption_beyond_the_balance_is_409_with_the_balance(
        client: FlaskClient, auth: dict[str, str]) -> None:
    earned = _earn(client, auth)["points"]
    r = client.post("/v1/me/redemptions", headers=auth,
                    json={"redemption_id": "too-much", "points": earned + 1})
    assert r.status_code == 409
    assert r.json["error"]["code"] == "insufficient_points"
    assert r.json["error"]["fields"]["balance"] == earned
    assert client.get("/v1/me/account", headers=auth).json["balance"] == earned


def test_the_database_refuses_a_redeem_entry_that_overdraws(rt: Runtime, user_id: str) -> None:
    with pytest.raises(IntegrityError), rt.db.transaction() as s:
        account = entries.lock_account(s, user_id, "shenzhen")
        entries._append(s, account, kind="redeem", points=-1, ug=0)


def test_reversal_takes_back_the_credit_and_is_audited(
        client: FlaskClient, auth: dict[str, str], token: Any, user_id: str) -> None:
    event = _earn(client, auth)
    r = client.post(f"/v1/admin/users/{user_id}/events/{event['event_id']}/reversal",
                    json={"reason": "duplicate card tap found by operator"},
                    headers=_admin(token))
    assert r.status_code == 201, r.json
    shown = client.get(f"/v1/events/{event['event_id']}", headers=auth).json
    assert shown["status"] == "reversed"
    assert shown["reversal"]["reason"] == "duplicate card tap found by operator"
    account = client.get("/v1/me/account", headers=auth).json
    assert account["balance"] == 0 and account["lifetime_grams"] == 0
    entries = client.get("/v1/me/ledger", headers=auth).json["items"]
    assert [(e["kind"], e["points"]) for e in entries] == [("reversal", -event["points"]),
                                                           ("earn", event["points"])]
    again = client.post(f"/v1/admin/users/{user_id}/events/{event['event_id']}/reversal",
                        json={"reason": "twice"}, headers=_admin(token))
    assert again.status_code == 409
    audit = client.get("/v1/admin/audit", headers=_admin(token)).json["items"]
    mine = [a for a in audit if a["action"] == "event.reverse" and a["user_id"] == user_id]
    assert len(mine) == 1 and mine[0]["actor"] == "ops-admin"
    assert user_id not in mine[0]["target"] and mine[0]["target"].startswith("event:")
    assert mine[0]["before"]["points"] == event["points"] and mine[0]["after"]["balance"] == 0


def test_reversing_spent_points_leaves_a_debt_that_blocks_redemption_until_repaid(
        client: FlaskClient, auth: dict[str, str], token: Any, user_id: str) -> None:
    fraud = _earn(client, auth)  # 376 points
    client.post("/v1/me/redemptions", headers=auth,
                json={"redemption_id": "spent", "points": 300})
    client.post(f"/v1/admin/users/{user_id}/events/{fraud['event_id']}/reversal",
                json={"reason": "fake trip"}, headers=_admin(token))
    assert client.get("/v1/me/account", headers=auth).json["balance"] == 76 - 376
    refused = client.post("/v1/me/redemptions", headers=auth,
                          json={"redemption_id": "while-in-debt", "points": 1})
    assert refused.status_code == 409
    _earn(client, auth, entry_station_id="luohu", exit_station_id="chegongmiao",
          start=factories.today_at(18))  # 11,376 m -> 532 points
    assert client.get("/v1/me/account", headers=auth).json["balance"] == -300 + 532


def test_non_admins_cannot_reverse(client: FlaskClient, auth: dict[str, str],
                                   user_id: str) -> None:
    event = _earn(client, auth)
    r = client.post(f"/v1/admin/users/{user_id}/events/{event['event_id']}/reversal",
                    json={"reason": "self-service"}, headers=auth)
    assert r.status_code == 403


def test_verify_ledger_passes_on_a_ledger_written_by_the_service(
        isolated_app: Flask, token: Any) -> None:
    client = isolated_app.test_client()
    headers = {"Authorization": f"Bearer {token('v-user')}"}
    for i in range(3):
        client.post("/v1/events", json=factories.metro(start=factories.today_at(6 + i)),
                    headers=headers)
    client.post("/v1/me/redemptions", json={"redemption_id": "x", "points": 10},
                headers=headers)
    result = isolated_app.test_cli_runner().invoke(args=["verify-ledger"])
    assert result.exit_code == 0, result.output
    assert "checked 1 accounts, 4 entries: OK" in result.output


@pytest.mark.parametrize("column, value", [("points", 100000), ("balance_after", 5),
                                           ("created_at", "2020-01-01 00:00:00")])
def test_verify_ledger_names_a_row_altered_in_sql(
        isolated_app: Flask, token: Any, column: str, value: Any) -> None:
    client = isolated_app.test_client()
    headers = {"Authorization": f"Bearer {token('t-user')}"}
    for i in range(3):
        client.post("/v1/events", json=factories.metro(start=factories.today_at(6 + i)),
                    headers=headers)
    rt: Runtime = isolated_app.extensions["carbon_credits"]
    with rt.db.transaction() as s:
        victim = s.scalars(select(LedgerEntry).where(LedgerEntry.seq == 2)).one()
        victim_id = victim.id
    _tamper(rt, f"UPDATE ledger_entries SET {column} = :v WHERE id = :id",
            {"v": value, "id": victim_id})
    result = isolated_app.test_cli_runner().invoke(args=["verify-ledger"])
    assert result.exit_code == 1
    assert f"ledger entry {victim_id} " in result.output


def test_verify_ledger_notices_a_deleted_row(isolated_app: Flask, token: Any) -> None:
    client = isolated_app.test_client()
    headers = {"Authorization": f"Bearer {token('d-user')}"}
    for i in range(3):
        client.post("/v1/events", json=factories.metro(start=factories.today_at(6 + i)),
                    headers=headers)
    rt: Runtime = isolated_app.extensions["carbon_credits"]
    _tamper(rt, "DELETE FROM ledger_entries WHERE seq = 3", {})
    result = isolated_app.test_cli_runner().invoke(args=["verify-ledger"])
    assert result.exit_code == 1
    assert "account d-user" in result.output and "credited but has no earn entry" in result.output


def _tamper(rt: Runtime, sql: str, params: dict[str, Any]) -> None:
    """Change rows behind the service's back, the way an intruder with SQL access would."""
    with rt.db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))  # no triggers
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS ledger_entries_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS ledger_entries_no_delete"))
        conn.execute(text(sql), params)


def test_principal_from_tests_is_a_plain_user(rt: Runtime) -> None:
    assert rt.codec.decode(rt.codec.encode("p", "user", None, 60)) == Principal("p", "user",
                                                                                 None)
