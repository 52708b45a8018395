"""Who may call what, and what one user can learn about another.

* Every operation of /openapi.json, as every role it does not allow: 403 before the request
  is even parsed (a garbage body still gets 403, not 400), and nothing changes; with no
  token: 401. A new operation must be classified below or this test fails.
* Guessing: another user's event ids (sequential, guessable ones), ledger cursors forged
  to point into another user's entries, another user's redemption ids: nothing of theirs is
  shown, and the answers are the same as for ids nobody has.
* A partner reading another city, in JSON or CSV, reduction or verification: 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

from carbon_credits.ledger.statements import encode_cursor
from tests import factories

Token = Callable[..., str]

ALLOWED: list[tuple[str, set[str]]] = [
    ("/v1/events", {"user"}),
    ("/v1/me/", {"user"}),
    ("/v1/reports/", {"partner", "admin"}),
    ("/v1/admin/", {"admin"}),
    ("/v1/rewards", {"user"}),
    ("/v1/merchant/", {"merchant"}),
    ("/v1/provider/", set()),
    ("/v1/leaderboards/", {"user"}),
    ("/v1/teams/", {"user", "admin"}),  # a team's report: its members, or an admin
    ("/v1/me", {"user"}),  # DELETE /v1/me (erasure); last: "/v1/merchant/" matches first
]
"""Path prefix -> the roles that may call it (DESIGN.md section 4). Provider routes: no
role; they take a provider's signature (RFC 9421), and a bearer token of any role is 401."""
PUBLIC = {"/v1/methodologies", "/v1/privacy-notice", "/healthz", "/readyz", "/metrics",
          "/dashboard", "/dashboard/points"}  # pages: their data comes from token-checked reports
ROLES = ("user", "partner", "admin", "merchant")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def secured_operations(client: FlaskClient) -> list[tuple[str, str, set[str]]]:
    spec = client.get("/openapi.json").json
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            if not operation.get("security"):
                assert path in PUBLIC, f"{method.upper()} {path} has no security: is it public?"
                continue
            roles = next((r for prefix, r in ALLOWED if path.startswith(prefix)), None)
            assert roles is not None, f"classify {method.upper()} {path} in ALLOWED"
            found.append((method, path, roles))
    return found


def concrete(path: str) -> str:
    action = "disable" if path.startswith("/v1/admin/providers/") else "freeze"
    return (path.replace("{decision}", "approve").replace("{action}", action)
            .replace("{reward_id}", "1").replace("{redemption}", "1")
            .replace("{team_id}", "1")
            .replace("{", "").replace("}", ""))


def test_every_secured_operation_refuses_other_roles_before_parsing_and_no_token(
        client: FlaskClient, token: Token) -> None:
    operations = secured_operations(client)
    assert len(operations) >= 15
    audit_before = client.get("/v1/admin/audit?limit=200",
                              headers=bearer(token("ops", role="admin"))).json["items"]
    checked = 0
    for method, path, roles in operations:
        url = concrete(path)
        for role in sorted(set(ROLES) - roles):
            headers = {**bearer(token(f"intruder-{role}", role=role, city="shenzhen")),
                       "Content-Type": "application/json"}
            r = client.open(url, method=method.upper(), data="{garbage", headers=headers)
            if not roles:  # a provider route: no token of any role reaches it
                assert r.status_code == 401, (role, method, path, r.get_data(as_text=True))
                assert r.json["error"]["code"] == "signature_missing"
            else:
                assert r.status_code == 403, (role, method, path, r.get_data(as_text=True))
                assert r.json["error"]["code"] == "forbidden"
            checked += 1
        r = client.open(url, method=method.upper(), data="{garbage",
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 401, (method, path)
    assert checked >= 20
    audit_after = client.get("/v1/admin/audit?limit=200",
                             headers=bearer(token("ops", role="admin"))).json["items"]
    assert [a["id"] for a in audit_after] == [a["id"] for a in audit_before]


@pytest.mark.parametrize("path", sorted(PUBLIC - {"/readyz"}))
def test_public_operations_need_no_token(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 200


# --- another user's events, ledger and redemptions -------------------------------------------

@pytest.fixture
def alice_and_bob(client: FlaskClient, token: Token) -> tuple[dict[str, str], dict[str, str],
                                                              list[str]]:
    """Alice has three credited trips with guessable ids and a redemption; Bob has one trip."""
    run = uuid.uuid4().hex[:8]
    alice = bearer(token(f"alice-{run}"))
    bob = bearer(token(f"bob-{run}"))
    ids = [f"trip-{run}-{n}" for n in (1, 2, 3)]
    for n, event_id in enumerate(ids):
        event = factories.metro(event_id=event_id,
                                start=factories.today_at(7) + timedelta(hours=2 * n))
        assert client.post("/v1/events", json=event, headers=alice).status_code == 201
    r = client.post("/v1/me/redemptions", headers=alice,
                    json={"redemption_id": f"r-{run}", "points": 10, "description": "tea"})
    assert r.status_code == 201, r.json
    bob_trip = factories.bus(event_id=f"bob-trip-{run}")
    assert client.post("/v1/events", json=bob_trip, headers=bob).status_code == 201
    return alice, bob, ids


def test_guessing_another_users_event_ids_finds_nothing_and_leaks_no_oracle(
        client: FlaskClient, alice_and_bob: tuple[dict[str, str], dict[str, str], list[str]]
        ) -> None:
    alice, bob, ids = alice_and_bob
    run = ids[0].split("-")[1]
    never = f"trip-{run}-9"
    for event_id in ids:
        assert client.get(f"/v1/events/{event_id}", headers=alice).status_code == 200
        theirs = client.get(f"/v1/events/{event_id}", headers=bob)
        nobodys = client.get(f"/v1/events/{never}", headers=bob)
        assert theirs.status_code == nobodys.status_code == 404
        # Same code, same message but for the id itself: existence is not observable.
        assert theirs.json["error"]["code"] == nobodys.json["error"]["code"] == "not_found"
        assert theirs.json["error"]["message"].replace(event_id, "ID") == \
            nobodys.json["error"]["message"].replace(never, "ID")
        assert set(theirs.headers.keys()) == set(nobodys.headers.keys())
        assert "explanation" not in theirs.get_data(as_text=True)


def test_forged_ledger_cursors_only_ever_page_through_your_own_entries(
        client: FlaskClient, alice_and_bob: tuple[dict[str, str], dict[str, str], list[str]]
        ) -> None:
    alice, bob, ids = alice_and_bob
    alice_entries = client.get("/v1/me/ledger", headers=alice).json["items"]
    bob_entries = client.get("/v1/me/ledger", headers=bob).json["items"]
    assert len(alice_entries) == 4 and len(bob_entries) == 1
    alice_ids = {e["id"] for e in alice_entries}
    newest = max(alice_ids | {e["id"] for e in bob_entries})
    # Cursors pointing just past each of Alice's entries, and far beyond everything.
    for entry_id in sorted(alice_ids) + [newest + 1, 2**62]:
        page = client.get("/v1/me/ledger", headers=bob,
                          query_string={"cursor": encode_cursor(entry_id), "limit": 200}).json
        assert not alice_ids & {e["id"] for e in page["items"]}
        assert all(e["event_id"] not in ids for e in page["items"])
        assert {e["id"] for e in page["items"]} <= {e["id"] for e in bob_entries}


def test_reusing_another_users_redemption_id_is_your_own_redemption(
        client: FlaskClient, alice_and_bob: tuple[dict[str, str], dict[str, str], list[str]]
        ) -> None:
    """Idempotency keys are per user: Bob replaying Alice's exact redemption does not get
    her stored answer (her balance, her description) but his own, from his own points."""
    alice, bob, ids = alice_and_bob
    run = ids[0].split("-")[1]
    alice_balance = client.get("/v1/me/account", headers=alice).json["balance"]
    body = {"redemption_id": f"r-{run}", "points": 10, "description": "tea"}
    r = client.post("/v1/me/redemptions", headers=bob, json=body)
    assert r.status_code == 201, r.json
    bob_account = client.get("/v1/me/account", headers=bob).json
    assert r.json["balance_after"] == bob_account["balance"]
    assert client.get("/v1/me/account", headers=alice).json["balance"] == alice_balance
    too_much = {"redemption_id": f"r2-{run}", "points": alice_balance}
    assert client.post("/v1/me/redemptions", headers=bob, json=too_much).status_code == 409


# --- partners and cities ------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/reports/reduction", "/v1/reports/verification"])
@pytest.mark.parametrize("extra", [{}, {"format": "csv"}, {"format": "json"}])
def test_a_partner_cannot_read_another_city_in_any_format(client: FlaskClient, token: Token,
                                                          path: str,
                                                          extra: dict[str, Any]) -> None:
    partner = bearer(token("bureau-a", role="partner", city="shenzhen"))
    query = {"from": "2026-01-01", "to": "2026-01-31", **extra}
    for other in ("guangzhou", "Shenzhen", "shenzhen-"):
        r = client.get(path, query_string={**query, "city": other},
                       headers={**partner, "Accept": "text/csv"})
        assert r.status_code == 403, (other, r.get_data(as_text=True)[:200])
        assert r.mimetype == "application/json"
        assert r.json["error"]["code"] == "other_city"
    own = client.get(path, query_string=query, headers=partner)
    assert own.status_code == 200


# --- ids with a slash ---------------------------------------------------------------------------

# BUG-5, fixed: ids with a '/' were accepted (201) but could never be addressed again (GET
# /v1/events/{event_id} 404, no admin route could reverse, review or freeze them), since
# werkzeug decodes %2F before routing. Ids and token claims now refuse '/'.

def test_an_event_id_with_a_slash_is_refused_naming_the_field(
        client: FlaskClient, token: Token) -> None:
    run = uuid.uuid4().hex[:8]
    r = client.post("/v1/events", json=factories.metro(event_id=f"trip/{run}"),
                    headers=bearer(token(f"slash-{run}")))
    assert r.status_code == 422, r.json
    assert "event_id" in r.json["error"]["fields"]


def test_a_token_whose_sub_has_a_slash_is_refused(client: FlaskClient, token: Token) -> None:
    r = client.get("/v1/me/account", headers=bearer(token(f"org/{uuid.uuid4().hex[:8]}")))
    assert r.status_code == 401, r.json
    assert r.json["error"]["code"] == "invalid_token"


@pytest.mark.parametrize("operation", ["read", "reverse", "freeze"])
def test_events_and_users_with_any_accepted_id_are_reachable(
        client: FlaskClient, token: Token, operation: str) -> None:
    """Every character an id may hold survives the round trip through a URL path."""
    run = uuid.uuid4().hex[:8]
    user, event_id = f"org:{run}@x.y-z_", f"trip:{run}@a.b-c_"
    mine = bearer(token(user))
    admin = bearer(token("ops", role="admin"))
    assert client.post("/v1/events", json=factories.metro(event_id=event_id),
                       headers=mine).status_code == 201
    u, e = quote(user, safe=""), quote(event_id, safe="")
    if operation == "read":
        r = client.get(f"/v1/events/{e}", headers=mine)
        assert r.status_code == 200, r.json
    elif operation == "reverse":
        r = client.post(f"/v1/admin/users/{u}/events/{e}/reversal", headers=admin,
                        json={"reason": "fraud found later"})
        assert r.status_code == 201, r.json
    else:
        r = client.post(f"/v1/admin/users/{u}/freeze", headers=admin,
                        json={"reason": "fraud found later"})
        assert r.status_code == 200, r.json
