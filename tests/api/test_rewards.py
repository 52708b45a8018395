"""The rewards catalogue through HTTP: merchants, admin review, users' catalogue and
redemptions, vouchers at the till, fulfilment, certificates."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import pypdf
from flask.testing import FlaskClient

from carbon_credits.runtime import Runtime
from carbon_credits.tokens import Principal
from tests import rewards as data

Auth = dict[str, str]


def bearer(token: Callable[..., str], sub: str, role: str, city: str | None = "shenzhen"
           ) -> Auth:
    return {"Authorization": f"Bearer {token(sub, role, city)}"}


def new_merchant(token: Callable[..., str]) -> Auth:
    return bearer(token, f"m-{uuid.uuid4().hex[:12]}", "merchant", None)


def body(kind: str = "voucher", **overrides: Any) -> dict[str, Any]:
    raw = data.reward_body(kind, **overrides)
    raw = {k: v for k, v in raw.items() if v is not None}
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in raw.items()}


def create(client: FlaskClient, merchant: Auth, **kw: Any) -> dict[str, Any]:
    r = client.post("/v1/merchant/rewards", json=body(**kw), headers=merchant)
    assert r.status_code == 201, r.json
    result: dict[str, Any] = r.json
    return result


def admin(token: Callable[..., str]) -> Auth:
    return bearer(token, "admin-1", "admin")


def approve(client: FlaskClient, token: Callable[..., str], reward_id: int) -> None:
    r = client.post(f"/v1/admin/rewards/{reward_id}/approve", json={"reason": "checked"},
                    headers=admin(token))
    assert r.status_code == 200, r.json


def test_a_reward_shows_to_users_only_once_an_admin_approved_it(
        client: FlaskClient, token: Callable[..., str], auth: Auth) -> None:
    merchant = new_merchant(token)
    reward = create(client, merchant, title={"zh": "独一无二", "en": uuid.uuid4().hex})
    assert reward["status"] == "pending_review"
    listed = lambda: [r["id"] for r in client.get("/v1/rewards", headers=auth).json["items"]]  # noqa: E731
    assert reward["id"] not in listed()
    assert client.get(f"/v1/rewards/{reward['id']}", headers=auth).status_code == 404
    queue = client.get("/v1/admin/rewards", headers=admin(token)).json["items"]
    assert reward["id"] in [r["id"] for r in queue]
    approve(client, token, reward["id"])
    assert reward["id"] in listed()
    shown = client.get(f"/v1/rewards/{reward['id']}", headers=auth).json
    assert shown["title"] == reward["title"] and "merchant_id" not in shown
    audit = client.get("/v1/admin/audit", headers=admin(token)).json["items"]
    assert {"action": "approve_reward", "target": f"reward/{reward['id']}",
            "after": {"status": "approved"}}.items() <= audit[0].items()
    # An edit sends it back to review; a rejection carries its reason to the merchant.
    edited = client.patch(f"/v1/merchant/rewards/{reward['id']}", json={"price_points": 20},
                          headers=merchant).json
    assert edited["status"] == "pending_review" and reward["id"] not in listed()
    r = client.post(f"/v1/admin/rewards/{reward['id']}/reject",
                    json={"reason": "misleading title"}, headers=admin(token))
    assert r.json["status"] == "rejected"
    mine = client.get(f"/v1/merchant/rewards/{reward['id']}", headers=merchant).json
    assert mine["review_reason"] == "misleading title"


def test_a_merchant_reaches_only_its_own_rewards(client: FlaskClient,
                                                 token: Callable[..., str]) -> None:
    owner, other = new_merchant(token), new_merchant(token)
    reward = create(client, owner, codes="pool")
    rid = reward["id"]
    for method, path, payload in [
            ("get", f"/v1/merchant/rewards/{rid}", None),
            ("patch", f"/v1/merchant/rewards/{rid}", {"stock": 1}),
            ("post", f"/v1/merchant/rewards/{rid}/codes", {"codes": ["OTHER-0001"]}),
            ("get", f"/v1/merchant/rewards/{rid}/redemptions", None)]:
        r = getattr(client, method)(path, json=payload, headers=other)
        assert r.status_code == 403, (path, r.json)
        assert r.json["error"]["code"] == "not_your_reward"
    assert rid not in [r["id"] for r in
                       client.get("/v1/merchant/rewards", headers=other).json["items"]]
    r = client.post("/v1/merchant/rewards", json=body(), headers=admin(token))
    assert r.status_code == 403  # only merchants offer rewards


def test_redeeming_a_voucher_the_merchant_marks_it_used_and_it_cannot_be_cancelled(
        client: FlaskClient, token: Callable[..., str], rt: Runtime, user_id: str,
        auth: Auth) -> None:
    merchant = new_merchant(token)
    rid = create(client, merchant, price_points=40, stock=3)["id"]
    approve(client, token, rid)
    data.grant(rt, Principal(user_id, "user", "shenzhen"), 100)
    send = {"redemption_id": "r-1", "reward_id": rid}
    r = client.post("/v1/me/redemptions", json=send, headers=auth)
    assert r.status_code == 201, r.json
    assert r.json["balance_after"] == 60 and r.json["state"] == "issued"
    [voucher] = r.json["vouchers"]
    again = client.post("/v1/me/redemptions", json=send, headers=auth)
    assert again.status_code == 200 and again.json == r.json
    other = client.post("/v1/me/redemptions", json={**send, "quantity": 2}, headers=auth)
    assert other.status_code == 409 and other.json["error"]["code"] == "redemption_id_conflict"
    seen = client.get(f"/v1/merchant/rewards/{rid}/redemptions", headers=merchant).json["items"]
    assert [(s["user"].startswith("u-"), s["vouchers"][0]["code"]) for s in seen] == [
        (True, voucher["code"])]
    assert user_id not in str(seen)
    used = client.post(f"/v1/merchant/vouchers/{voucher['code']}/use", headers=merchant)
    assert used.status_code == 200 and used.json["state"] == "used"
    twice = client.post(f"/v1/merchant/vouchers/{voucher['code']}/use", headers=merchant)
    assert twice.status_code == 409 and twice.json["error"]["code"] == "voucher_used"
    foreign = client.post(f"/v1/merchant/vouchers/{voucher['code']}/use",
                          headers=new_merchant(token))
    assert foreign.status_code == 403
    cancel = client.post("/v1/me/redemptions/r-1/cancellation", headers=auth)
    assert cancel.status_code == 409 and cancel.json["error"]["code"] == "voucher_used"


def test_out_of_stock_expired_and_over_the_limit_are_409_with_reason_codes(
        client: FlaskClient, token: Callable[..., str], rt: Runtime, user_id: str,
        auth: Auth) -> None:
    merchant = new_merchant(token)
    rid = create(client, merchant, price_points=1, stock=2, per_user_limit=1)["id"]
    expired = create(client, merchant, valid_from="2020-01-01T00:00:00+08:00",
                     valid_until="2020-02-01T00:00:00+08:00")["id"]
    for reward_id in (rid, expired):
        approve(client, token, reward_id)
    data.grant(rt, Principal(user_id, "user", "shenzhen"), 10)

    def code(reward_id: int, rid_: str, quantity: int = 1, headers: Auth = auth) -> str:
        r = client.post("/v1/me/redemptions", headers=headers, json={
            "redemption_id": rid_, "reward_id": reward_id, "quantity": quantity})
        return "ok" if r.status_code == 201 else f"{r.status_code} {r.json['error']['code']}"

    assert code(expired, "e") == "409 reward_expired"
    assert code(rid, "a") == "ok"
    assert code(rid, "b") == "409 over_user_limit"
    other = Principal(f"{user_id}-2", "user", "shenzhen")
    data.grant(rt, other, 10)
    other_auth = bearer(token, other.sub, "user")
    assert code(rid, "c", headers=other_auth) == "ok"
    third = Principal(f"{user_id}-3", "user", "shenzhen")
    data.grant(rt, third, 10)
    assert code(rid, "d", headers=bearer(token, third.sub, "user")) == "409 out_of_stock"
    poor = bearer(token, f"{user_id}-4", "user")
    assert code(expired, "f", headers=poor) == "409 reward_expired"
    r = client.post("/v1/me/redemptions", headers=auth, json={"redemption_id": "g"})
    assert r.status_code == 422 and set(r.json["error"]["fields"]) == {"points", "reward_id"}


def test_the_points_form_still_works(client: FlaskClient, rt: Runtime, user_id: str,
                                     auth: Auth) -> None:
    data.grant(rt, Principal(user_id, "user", "shenzhen"), 30)
    r = client.post("/v1/me/redemptions", json={"redemption_id": "plain", "points": 25},
                    headers=auth)
    assert r.status_code == 201 and r.json["balance_after"] == 5
    assert "reward_id" not in r.json


def test_a_physical_good_ships_and_a_pending_one_cancels_for_points_and_stock_back(
        client: FlaskClient, token: Callable[..., str], rt: Runtime, user_id: str,
        auth: Auth) -> None:
    merchant = new_merchant(token)
    rid = create(client, merchant, kind="physical", price_points=30, stock=5)["id"]
    approve(client, token, rid)
    data.grant(rt, Principal(user_id, "user", "shenzhen"), 100)
    for n in (1, 2):
        r = client.post("/v1/me/redemptions", headers=auth,
                        json={"redemption_id": f"bag-{n}", "reward_id": rid})
        assert r.status_code == 201 and r.json["state"] == "pending"
    [second, first] = client.get(f"/v1/merchant/rewards/{rid}/redemptions",
                                 headers=merchant).json["items"]
    path = f"/v1/merchant/redemptions/{second['id']}/fulfilment"
    assert client.post(path, json={"state": "delivered"}, headers=merchant).status_code == 409
    assert client.post(path, json={"state": "shipped"}, headers=merchant).json["state"] == \
        "shipped"
    assert client.post(path, json={"state": "delivered"}, headers=merchant).json["state"] == \
        "delivered"
    r = client.post("/v1/me/redemptions/bag-2/cancellation", headers=auth)
    assert r.status_code == 409 and r.json["error"]["code"] == "already_shipped"
    r = client.post("/v1/me/redemptions/bag-1/cancellation", headers=auth)
    assert r.status_code == 200 and r.json["state"] == "cancelled"
    account = client.get("/v1/me/account", headers=auth).json
    assert account["balance"] == 70
    ledger = client.get("/v1/me/ledger", headers=auth).json["items"]
    # A good's points are held until shipped: bag-1's hold is released (no points move),
    # bag-2's shipping spent its 30.
    assert {"kind": "release", "points": 0, "redemption_id": "bag-1",
            "balance_after": 70}.items() <= ledger[0].items()
    assert [(e["kind"], e["points"]) for e in ledger[1:4]] == [
        ("redeem", -30), ("hold", 0), ("hold", 0)]
    assert client.get(f"/v1/merchant/rewards/{rid}", headers=merchant).json["stock_left"] == 4


def test_the_account_shows_held_points_as_reserved_apart_from_available(
        client: FlaskClient, token: Callable[..., str], rt: Runtime, user_id: str,
        auth: Auth) -> None:
    merchant = new_merchant(token)
    rid = create(client, merchant, kind="physical", price_points=30, stock=5)["id"]
    approve(client, token, rid)
    data.grant(rt, Principal(user_id, "user", "shenzhen"), 100)
    r = client.post("/v1/me/redemptions", headers=auth,
                    json={"redemption_id": "bag", "reward_id": rid})
    assert r.status_code == 201 and r.json["reserved"] is True
    account = client.get("/v1/me/account", headers=auth).json
    assert {k: account[k] for k in ("balance", "available", "pending", "unclaimed",
                                    "reserved")} == {
        "balance": 100, "available": 70, "pending": 0, "unclaimed": 0, "reserved": 30}
    assert client.get("/v1/me/carbon-account", headers=auth).json["reserved"] == 30
    [made] = client.get(f"/v1/merchant/rewards/{rid}/redemptions",
                        headers=merchant).json["items"]
    assert made["reserved"] is True
    r = client.post(f"/v1/merchant/redemptions/{made['id']}/fulfilment",
                    json={"state": "shipped"}, headers=merchant)
    assert r.status_code == 200 and r.json["reserved"] is False
    account = client.get("/v1/me/account", headers=auth).json
    assert (account["balance"], account["available"], account["reserved"]) == (70, 70, 0)


def test_a_donation_certificate_is_a_pdf_with_the_project_units_and_hash(
        client: FlaskClient, token: Callable[..., str], rt: Runtime, user_id: str,
        auth: Auth) -> None:
    merchant = new_merchant(token)
    rid = create(client, merchant, kind="donation", price_points=5, stock=100)["id"]
    approve(client, token, rid)
    data.grant(rt, Principal(user_id, "user", "shenzhen"), 100)
    r = client.post("/v1/me/redemptions", headers=auth,
                    json={"redemption_id": "tree", "reward_id": rid, "quantity": 3})
    assert r.status_code == 201 and r.json["state"] == "donated"
    digest = r.json["certificate_hash"]
    pdf = client.get("/v1/me/redemptions/tree/certificate", headers=auth)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = pypdf.PdfReader(io.BytesIO(pdf.data)).pages[0].extract_text()
    for value in ("Alxa desert greening", "3 x 1 tree planted", digest, "Donor: u-"):
        assert value in text
    assert user_id not in text
    other = client.get("/v1/me/redemptions/tree/certificate",
                       headers=bearer(token, f"{user_id}-x", "user"))
    assert other.status_code == 404


def test_pool_codes_upload_as_csv_and_refuse_duplicates(
        client: FlaskClient, token: Callable[..., str]) -> None:
    merchant = new_merchant(token)
    rid = create(client, merchant, codes="pool")["id"]
    mark = uuid.uuid4().hex[:8].upper()
    csv_body = f"code\n{mark}-1\n{mark}-2\n".encode()
    r = client.post(f"/v1/merchant/rewards/{rid}/codes", data=csv_body,
                    headers={**merchant, "Content-Type": "text/csv"})
    assert r.status_code == 201 and r.json == {"reward_id": rid, "added": 2, "available": 2}
    r = client.post(f"/v1/merchant/rewards/{rid}/codes", json={"codes": [f"{mark}-2"]},
                    headers=merchant)
    assert r.status_code == 409 and r.json["error"]["code"] == "duplicate_codes"
    r = client.post(f"/v1/merchant/rewards/{rid}/codes",
                    json={"codes": [f"{mark}-3", f"{mark}-3"]}, headers=merchant)
    assert r.status_code == 422 and "codes" in r.json["error"]["fields"]
    generated = create(client, merchant)["id"]
    r = client.post(f"/v1/merchant/rewards/{generated}/codes", json={"codes": [f"{mark}-4"]},
                    headers=merchant)
    assert r.status_code == 409 and r.json["error"]["code"] == "not_a_pool_reward"


def test_a_merchant_never_cuts_stock_below_the_units_redeemed(
        client: FlaskClient, token: Callable[..., str], rt: Runtime, user_id: str,
        auth: Auth) -> None:
    merchant = new_merchant(token)
    rid = create(client, merchant, price_points=1, stock=5, per_user_limit=5)["id"]
    approve(client, token, rid)
    data.grant(rt, Principal(user_id, "user", "shenzhen"), 10)
    r = client.post("/v1/me/redemptions", headers=auth,
                    json={"redemption_id": "three", "reward_id": rid, "quantity": 3})
    assert r.status_code == 201
    path = f"/v1/merchant/rewards/{rid}"
    r = client.patch(path, json={"stock": 2}, headers=merchant)
    assert r.status_code == 409 and r.json["error"]["code"] == "stock_below_redeemed"
    r = client.patch(path, json={"stock": 10}, headers=merchant)
    assert (r.json["stock"], r.json["stock_left"]) == (10, 7)
    r = client.patch(path, json={"stock": 3}, headers=merchant)
    assert (r.json["stock"], r.json["stock_left"]) == (3, 0)
