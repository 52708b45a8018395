"""The request examples of /openapi.json (shown in /docs) are accepted as they stand.

Every requestBody example and every query parameter example of the admin, partner, event
and redemption operations is taken from the served document and sent, with a token of the
role the operation wants, and must get a 2xx (events: credited, not merely accepted). Only
the event examples' date is moved, from EXAMPLE_DAY to today, since events must be recent.
The path parameters (which user, which event) come from a set-up each operation names
below: a new operation with examples and no set-up fails ``test_every_example_has_a_runner``.

Runs on a database of its own: the factor version examples take the latest effective date.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from carbon_credits.config import Config
from carbon_credits.schemas.examples import EXAMPLE_DAY
from carbon_credits.storage.models import WebhookEndpoint
from methodology import METHODOLOGIES
from tests import factories
from tests.conftest import app_on_own_database
from tests.gtfs_feed import sample_feed
from tests.signing import Key, sign

DOCUMENTED = ("/v1/admin/", "/v1/reports/", "/v1/events", "/v1/me/redemptions",
              "/v1/merchant/", "/v1/me/bindings", "/v1/provider/", "/v1/leaderboards/teams")
"""Operations whose examples are shown and checked: admin, partner, ingest, redemption,
merchant, scenario providers, bindings and the team-against-team board."""
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def examples_app(make_config: Callable[..., Config],
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    with app_on_own_database(make_config, tmp_path_factory.mktemp("examples")) as app:
        yield app


@pytest.fixture(scope="module")
def spec(examples_app: Flask) -> dict[str, Any]:
    body: dict[str, Any] = examples_app.test_client().get("/openapi.json").json
    return body


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        if path.startswith(DOCUMENTED):
            for method, op in item.items():
                if method in METHODS:
                    yield path, method, op


def body_examples(op: dict[str, Any]) -> dict[str, Any]:
    """The operation's JSON body examples by name (a lone ``example`` is named "example")."""
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return {}
    if "example" in content:
        return {"example": content["example"]}
    return {name: e["value"] for name, e in content.get("examples", {}).items()}


def query_example(op: dict[str, Any]) -> dict[str, Any]:
    """The query string the operation's parameter examples make."""
    return {p["name"]: p["schema"]["example"] for p in op.get("parameters", [])
            if p["in"] == "query" and "example" in p.get("schema", {})}


def today(value: Any) -> Any:
    """An event example moved from EXAMPLE_DAY to the tests' today (late in the day, so its
    times are past): events must be recent and not in the future."""
    return json.loads(json.dumps(value).replace(EXAMPLE_DAY, factories.NOW.date().isoformat()))


class Caller:
    """Requests with a token of each role, to the examples' own database."""

    def __init__(self, app: Flask) -> None:
        self.client: FlaskClient = app.test_client()
        self.codec = app.extensions["carbon_credits"].codec

    def headers(self, sub: str, role: str) -> dict[str, str]:
        token = self.codec.encode(sub, role, "shenzhen", 600)
        return {"Authorization": f"Bearer {token}"}

    def new_user(self) -> tuple[str, dict[str, str]]:
        user = f"doc-{uuid.uuid4().hex[:12]}"
        return user, self.headers(user, "user")

    def admin(self) -> dict[str, str]:
        return self.headers("doc-admin", "admin")

    def merchant(self) -> dict[str, str]:
        return self.headers("doc-merchant", "merchant")

    def reward(self, spec: dict[str, Any], kind: str, **overrides: Any) -> dict[str, Any]:
        """A new reward of the merchant, made from the documented example of its kind
        (priced at 10 points, so one trip pays for it)."""
        value = body_examples(spec["paths"]["/v1/merchant/rewards"]["post"])[kind]
        r = self.client.post("/v1/merchant/rewards", headers=self.merchant(),
                             json={**value, "price_points": 10, **overrides})
        assert r.status_code == 201, r.json
        result: dict[str, Any] = r.json
        return result

    def approved_reward(self, spec: dict[str, Any], kind: str) -> dict[str, Any]:
        reward = self.reward(spec, kind)
        r = self.client.post(f"/v1/admin/rewards/{reward['id']}/approve",
                             json={"reason": "checked"}, headers=self.admin())
        assert r.status_code == 200, r.json
        return reward

    def post_event(self, auth: dict[str, str], event: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post("/v1/events", json=today(event), headers=auth)
        assert r.status_code == 201, r.json
        result: dict[str, Any] = r.json
        return result


Run = Callable[[Caller, dict[str, Any], str, Any], Any]
"""(caller, document, example name, example value) -> the response to check."""


def event_example(spec: dict[str, Any], mode: str = "metro") -> dict[str, Any]:
    value: dict[str, Any] = body_examples(spec["paths"]["/v1/events"]["post"])[mode]
    return value


def run_event(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    _, auth = c.new_user()
    r = c.client.post("/v1/events", json=today(value), headers=auth)
    assert r.status_code == 201 and r.json["status"] == "credited", (name, r.json)
    return r


def run_batch(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    _, auth = c.new_user()
    r = c.client.post("/v1/events/batch", json=today(value), headers=auth)
    items = r.json["results"]
    assert [(i["status"], (i["result"] or {}).get("status")) for i in items] == \
        [(201, "credited")] * len(value["events"]), items
    return r


def run_redemption(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    """``name`` is the form: points, or a reward (the example's id replaced by a reward
    made and approved here)."""
    _, auth = c.new_user()
    earned = c.post_event(auth, event_example(spec))
    if "reward_id" in value:
        reward = c.approved_reward(spec, "voucher")
        assert earned["points"] >= reward["price_points"] * value.get("quantity", 1)
        value = {**value, "reward_id": reward["id"]}
    else:
        assert earned["points"] >= value["points"], "the example spends more than a trip earns"
    return c.client.post("/v1/me/redemptions", json=value, headers=auth)


def run_new_reward(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    return c.client.post("/v1/merchant/rewards", json=value, headers=c.merchant())


def run_reward_edit(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    reward = c.reward(spec, "voucher")
    return c.client.patch(f"/v1/merchant/rewards/{reward['id']}", json=value,
                          headers=c.merchant())


def run_codes(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    reward = c.reward(spec, "voucher", codes="pool")
    return c.client.post(f"/v1/merchant/rewards/{reward['id']}/codes", json=value,
                         headers=c.merchant())


def run_fulfilment(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    reward = c.approved_reward(spec, "physical")
    _, auth = c.new_user()
    c.post_event(auth, event_example(spec))
    bought = c.client.post("/v1/me/redemptions", headers=auth,
                           json={"redemption_id": "bag", "reward_id": reward["id"]})
    assert bought.status_code == 201, bought.json
    [made] = c.client.get(f"/v1/merchant/rewards/{reward['id']}/redemptions",
                          headers=c.merchant()).json["items"]
    return c.client.post(f"/v1/merchant/redemptions/{made['id']}/fulfilment", json=value,
                         headers=c.merchant())


def run_reward_review(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    """``name`` is the decision (approve, reject) on a new reward."""
    reward = c.reward(spec, "donation")
    return c.client.post(f"/v1/admin/rewards/{reward['id']}/{name}", json=value,
                         headers=c.admin())


def run_reversal(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    user, auth = c.new_user()
    event = c.post_event(auth, event_example(spec))
    return c.client.post(f"/v1/admin/users/{user}/events/{event['event_id']}/reversal",
                         json=value, headers=c.admin())


def run_review(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    """``name`` is the decision (approve, reject) on an event held as its user is frozen."""
    user, auth = c.new_user()
    c.post_event(auth, event_example(spec))  # a user exists once they have posted
    frozen = c.client.post(f"/v1/admin/users/{user}/freeze", json={"reason": "hold one"},
                           headers=c.admin())
    assert frozen.status_code == 200
    held = c.post_event(auth, event_example(spec, "bus"))
    assert held["status"] == "held"
    return c.client.post(f"/v1/admin/reviews/{user}/{held['event_id']}/{name}", json=value,
                         headers=c.admin())


def run_freeze(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    """``name`` is the action (freeze, unfreeze)."""
    user, auth = c.new_user()
    c.post_event(auth, event_example(spec))
    return c.client.post(f"/v1/admin/users/{user}/{name}", json=value, headers=c.admin())


def run_erasure(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    user, auth = c.new_user()
    c.post_event(auth, event_example(spec))
    return c.client.post(f"/v1/admin/users/{user}/erasure", json=value, headers=c.admin())


def run_admin_json(path: str) -> Run:
    def run(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
        return c.client.post(path, json=value, headers=c.admin())
    return run


def run_trust_policy(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    """In another city than the examples' events: a policy there would hold them."""
    return c.client.put("/v1/admin/trust-policies/lakeside/metro", json=value,
                        headers=c.admin())


def run_expiry_policy(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    """In a city of its own: a policy of the examples' city would date their points."""
    return c.client.put("/v1/admin/expiry-policies/doc-expiry", json=value,
                        headers=c.admin())


def new_provider(c: Caller) -> str:
    provider_id = f"doc-{uuid.uuid4().hex[:12]}"
    r = c.client.post("/v1/admin/providers", headers=c.admin(), json={
        "id": provider_id, "name": "Doc Metro", "city": "shenzhen", "modes": ["metro"]})
    assert r.status_code == 201, r.json
    return provider_id


def new_provider_key(c: Caller) -> tuple[str, Key]:
    provider_id = new_provider(c)
    r = c.client.post(f"/v1/admin/providers/{provider_id}/keys", headers=c.admin(),
                      json={"algorithm": "hmac-sha256"})
    assert r.status_code == 201, r.json
    return provider_id, Key.hmac(r.json["key_id"], r.json["secret"])


def run_provider_key(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    return c.client.post(f"/v1/admin/providers/{new_provider(c)}/keys", json=value,
                         headers=c.admin())


def run_provider_key_revoke(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    provider_id, key = new_provider_key(c)
    return c.client.post(f"/v1/admin/providers/{provider_id}/keys/{key.key_id}/revoke",
                         json=value, headers=c.admin())


def run_provider_enable(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    """``name`` is the action (enable, disable)."""
    return c.client.post(f"/v1/admin/providers/{new_provider(c)}/{name}", json=value,
                         headers=c.admin())


def signed_post(c: Caller, key: Key, path: str, value: Any) -> Any:
    body = json.dumps(value).encode()
    return c.client.post(path, data=body, headers=sign(key, "POST", path, body))


def run_binding_code(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    return signed_post(c, new_provider_key(c)[1], "/v1/provider/binding-codes", value)


def run_binding(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    """The example's provider and code stand for ones issued just before (a code is
    random and single-use): both are replaced by a new provider's and its code."""
    provider_id, key = new_provider_key(c)
    issued = signed_post(c, key, "/v1/provider/binding-codes", {"user_ref": "doc-card"})
    assert issued.status_code == 201, issued.json
    _, auth = c.new_user()
    return c.client.post("/v1/me/bindings", headers=auth, json={
        **value, "provider_id": provider_id, "code": issued.json["code"]})


def run_records(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    """The example's records, of today, for a user bound to a new provider under the
    example's user_ref: each must be credited."""
    provider_id, key = new_provider_key(c)
    ref = value["records"][0]["user_ref"]
    issued = signed_post(c, key, "/v1/provider/binding-codes", {"user_ref": ref})
    _, auth = c.new_user()
    bound = c.client.post("/v1/me/bindings", headers=auth,
                          json={"provider_id": provider_id, "code": issued.json["code"]})
    assert bound.status_code == 201, bound.json
    r = signed_post(c, key, "/v1/provider/records", today(value))
    assert [(i["status"], i["result"]["status"]) for i in r.json["results"]] == [
        (201, "credited")] * len(value["records"]), r.json
    return r


def run_badge_edit(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    return c.client.patch("/v1/admin/badges/first-metro", json=value, headers=c.admin())


def run_badge_retire(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    code = f"retired-{uuid.uuid4().hex[:8]}"
    made = c.client.post("/v1/admin/badges", headers=c.admin(), json={
        "code": code, "name": {"zh": "退役", "en": "Retired"},
        "rule": {"kind": "streak", "days": 3}})
    assert made.status_code == 201, made.json
    return c.client.post(f"/v1/admin/badges/{code}/retirement", json=value,
                         headers=c.admin())


def run_campaign(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    """The example under a new id (ids are unique)."""
    return c.client.post("/v1/admin/campaigns", headers=c.admin(),
                         json={**value, "id": f"doc-{uuid.uuid4().hex[:12]}"})


def run_campaign_end(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    made = run_campaign(c, spec, name, body_examples(
        spec["paths"]["/v1/admin/campaigns"]["post"])["example"])
    assert made.status_code == 201, made.json
    return c.client.post(f"/v1/admin/campaigns/{made.json['id']}/end", json=value,
                         headers=c.admin())


def new_webhook(c: Caller, value: Any) -> Any:
    """The example under a new id, pointed at a port nothing listens on, disabled once
    registered: the examples' later credits are to be sent nowhere."""
    r = c.client.post("/v1/admin/webhooks", headers=c.admin(), json={
        **value, "id": f"doc-{uuid.uuid4().hex[:12]}", "url": "http://127.0.0.1:9/hooks"})
    return r


def _disable_webhooks(c: Caller) -> None:
    rt = c.client.application.extensions["carbon_credits"]
    with rt.db.transaction() as session:
        session.execute(update(WebhookEndpoint).values(enabled=False))


def run_webhook(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    r = new_webhook(c, value)
    _disable_webhooks(c)
    return r


def run_replay(c: Caller, spec: dict[str, Any], name: str, value: Any) -> Any:
    """A delivery made for a credit (to a webhook of the documented example), replayed."""
    made = new_webhook(c, body_examples(spec["paths"]["/v1/admin/webhooks"]["post"])[
        "example"])
    assert made.status_code == 201, made.json
    _, auth = c.new_user()
    c.post_event(auth, event_example(spec))
    _disable_webhooks(c)
    [sent, *_] = c.client.get(f"/v1/admin/webhooks/deliveries?endpoint_id={made.json['id']}",
                              headers=c.admin()).json["items"]
    return c.client.post(f"/v1/admin/webhooks/{made.json['id']}/deliveries/{sent['id']}"
                         "/replay", json=value, headers=c.admin())


BODY_RUNS: dict[tuple[str, str], Run] = {
    ("/v1/events", "post"): run_event,
    ("/v1/events/batch", "post"): run_batch,
    ("/v1/me/redemptions", "post"): run_redemption,
    ("/v1/admin/users/{user_id}/events/{event_id}/reversal", "post"): run_reversal,
    ("/v1/admin/reviews/{user_id}/{event_id}/{decision}", "post"): run_review,
    ("/v1/admin/users/{user_id}/{action}", "post"): run_freeze,
    ("/v1/admin/users/{user_id}/erasure", "post"): run_erasure,
    ("/v1/admin/factor-versions", "post"): run_admin_json("/v1/admin/factor-versions"),
    ("/v1/admin/factor-versions/preview", "post"):
        run_admin_json("/v1/admin/factor-versions/preview"),
    ("/v1/admin/trust-policies/{city}/{mode}", "put"): run_trust_policy,
    ("/v1/admin/expiry-policies/{city}", "put"): run_expiry_policy,
    ("/v1/merchant/rewards", "post"): run_new_reward,
    ("/v1/merchant/rewards/{reward_id}", "patch"): run_reward_edit,
    ("/v1/merchant/rewards/{reward_id}/codes", "post"): run_codes,
    ("/v1/merchant/redemptions/{redemption}/fulfilment", "post"): run_fulfilment,
    ("/v1/admin/rewards/{reward_id}/{decision}", "post"): run_reward_review,
    ("/v1/admin/providers", "post"): run_admin_json("/v1/admin/providers"),
    ("/v1/admin/teams", "post"): run_admin_json("/v1/admin/teams"),
    ("/v1/admin/providers/{provider_id}/keys", "post"): run_provider_key,
    ("/v1/admin/providers/{provider_id}/keys/{key_id}/revoke", "post"):
        run_provider_key_revoke,
    ("/v1/admin/providers/{provider_id}/{action}", "post"): run_provider_enable,
    ("/v1/provider/binding-codes", "post"): run_binding_code,
    ("/v1/me/bindings", "post"): run_binding,
    ("/v1/provider/records", "post"): run_records,
    ("/v1/admin/badges", "post"): run_admin_json("/v1/admin/badges"),
    ("/v1/admin/badges/{code}", "patch"): run_badge_edit,
    ("/v1/admin/badges/{code}/retirement", "post"): run_badge_retire,
    ("/v1/admin/campaigns", "post"): run_campaign,
    ("/v1/admin/campaigns/{campaign_id}/end", "post"): run_campaign_end,
    ("/v1/admin/webhooks", "post"): run_webhook,
    ("/v1/admin/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay", "post"): run_replay,
}
"""How each operation's body examples are sent."""

PARTNER_QUERIES = {"/v1/reports/reduction", "/v1/reports/verification"}
"""Sent as a partner of the examples' city; every other query example as an admin (or a
user, USER_QUERIES)."""
USER_QUERIES = {"/v1/leaderboards/teams"}
"""Sent as a user of the examples' city."""


def test_every_example_has_a_runner(spec: dict[str, Any]) -> None:
    with_bodies = {(path, method) for path, method, op in operations(spec)
                   if body_examples(op)}
    assert with_bodies == set(BODY_RUNS)


def test_every_admin_partner_and_event_body_has_an_example(spec: dict[str, Any]) -> None:
    """JSON bodies show an example; the GTFS upload, a zip, shows its query parameters'."""
    missing = []
    for path, method, op in operations(spec):
        content = op.get("requestBody", {}).get("content", {})
        if "application/json" in content and not body_examples(op):
            missing.append((path, method))
        if "application/zip" in content and not query_example(op):
            missing.append((path, method))
    assert missing == []


def test_every_required_query_parameter_has_an_example(spec: dict[str, Any]) -> None:
    missing = [(path, p["name"]) for path, _, op in operations(spec)
               for p in op.get("parameters", [])
               if p["in"] == "query" and p.get("required") and "example" not in p["schema"]]
    assert missing == []


@pytest.mark.parametrize("operation", [("/v1/events", "post"),
                                       ("/v1/admin/factor-versions", "post"),
                                       ("/v1/admin/factor-versions/preview", "post")],
                         ids=" ".join)
def test_one_example_per_mode(spec: dict[str, Any], operation: tuple[str, str]) -> None:
    path, method = operation
    values = body_examples(spec["paths"][path][method]).values()
    assert sorted(v["mode"] for v in values) == sorted(METHODOLOGIES)


@pytest.mark.parametrize("operation", sorted(BODY_RUNS), ids=" ".join)
def test_body_examples_are_accepted(examples_app: Flask, spec: dict[str, Any],
                                    operation: tuple[str, str]) -> None:
    path, method = operation
    examples = body_examples(spec["paths"][path][method])
    assert examples
    caller = Caller(examples_app)
    for name, value in examples.items():
        r = BODY_RUNS[operation](caller, spec, name, value)
        assert 200 <= r.status_code < 300, (name, r.status_code, r.json)


def test_query_examples_are_accepted(examples_app: Flask, spec: dict[str, Any],
                                     tmp_path: Path) -> None:
    caller = Caller(examples_app)
    sent = []
    for path, method, op in operations(spec):
        query = query_example(op)
        if not query:
            continue
        if method == "get":
            headers = (caller.headers("doc-partner", "partner") if path in PARTNER_QUERIES
                       else caller.new_user()[1] if path in USER_QUERIES
                       else caller.admin())
            r = caller.client.get(path, query_string=query, headers=headers)
        else:
            assert path == "/v1/admin/networks/{city}", path  # the one binary body
            feed = sample_feed().write_zip(tmp_path / "feed.zip").read_bytes()
            # Another city: the example city's network stays the demo one.
            r = caller.client.post(path.replace("{city}", "lakeside"), query_string=query,
                                   data=feed, headers={**caller.admin(),
                                                       "Content-Type": "application/zip"})
        assert 200 <= r.status_code < 300, (path, query, r.status_code, r.json)
        sent.append(path)
    assert {"/v1/reports/reduction", "/v1/reports/verification",
            "/v1/admin/networks/{city}", "/v1/leaderboards/teams"} <= set(sent)
