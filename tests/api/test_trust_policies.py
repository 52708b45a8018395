"""PUT/GET /v1/admin/trust-policies: set by admins only, validated, audited."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete

from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import TrustPolicy
from tests import factories


@pytest.fixture(autouse=True)
def client_policies_after(rt: Runtime) -> Iterator[None]:
    """The run's database is shared: a policy a test sets must not outlive it."""
    yield
    with rt.db.transaction() as session:
        session.execute(delete(TrustPolicy))


def test_an_admin_sets_a_policy_and_it_is_audited_and_applied(
        client: FlaskClient, token: Callable[..., str], auth: dict[str, str]) -> None:
    admin = {"Authorization": f"Bearer {token('ops-1', 'admin')}"}
    listed = client.get("/v1/admin/trust-policies/shenzhen", headers=admin).json["items"]
    assert {p["mode"]: p["policy"] for p in listed} == {
        "bikeshare": "client", "bus": "client", "metro": "client", "steps": "client"}
    r = client.put("/v1/admin/trust-policies/shenzhen/metro", headers=admin,
                   json={"policy": "operator_only", "reason": "gates report every trip"})
    assert r.status_code == 200, r.json
    assert (r.json["policy"], r.json["confirm_days"], r.json["updated_by"]) == (
        "operator_only", 2, "ops-1")
    refused = client.post("/v1/events", json=factories.metro(), headers=auth)
    assert refused.status_code == 422 and refused.json["error"]["code"] == "operator_only"
    audit = client.get("/v1/admin/audit", headers=admin).json["items"][0]
    assert (audit["action"], audit["target"], audit["before"]) == (
        "trust_policy.set", "trust:shenzhen/metro", None)
    assert audit["after"]["policy"] == "operator_only"
    back = client.put("/v1/admin/trust-policies/shenzhen/metro", headers=admin,
                      json={"policy": "client", "reason": "gates down"})
    assert back.status_code == 200
    assert client.get("/v1/admin/audit", headers=admin).json["items"][0]["before"][
        "policy"] == "operator_only"
    assert client.post("/v1/events", json=factories.metro(), headers=auth).status_code == 201


def test_bad_policies_are_refused_with_the_field_named(
        client: FlaskClient, token: Callable[..., str], auth: dict[str, str]) -> None:
    admin = {"Authorization": f"Bearer {token('ops-1', 'admin')}"}
    cases = [("/shenzhen/metro", {"policy": "nobody", "reason": "x"}, "policy"),
             ("/shenzhen/metro", {"policy": "client"}, "reason"),
             ("/shenzhen/metro", {"policy": "client", "reason": "x", "confirm_days": 0},
              "confirm_days"),
             ("/shenzhen/ferry", {"policy": "client", "reason": "x"}, "mode"),
             ("/bad%20city/metro", {"policy": "client", "reason": "x"}, "city")]
    for path, body, field in cases:
        r = client.put("/v1/admin/trust-policies" + path, headers=admin, json=body)
        assert r.status_code == 422 and field in r.json["error"]["fields"], (path, r.json)
    r = client.put("/v1/admin/trust-policies/shenzhen/metro", headers=auth,
                   json={"policy": "client", "reason": "x"})
    assert r.status_code == 403
