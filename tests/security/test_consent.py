"""Consent to the privacy notice (issue 23, PIPL): events are refused with a clear 403 and
a reason code while the user's consent to the required version is missing or withdrawn,
for the user's own posts (single and batch, per item) and a provider's records for them;
consent and its withdrawal are recorded with their time, as history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from carbon_credits.config import Config
from carbon_credits.privacy import consents
from carbon_credits.privacy.notices import LATEST, NOTICES
from carbon_credits.storage.models import AuditRecord, Consent
from tests import factories
from tests.api.test_provider_records import bound, metro, post


@pytest.fixture
def gated(make_app: Callable[..., Flask], tmp_path: Any) -> Flask:
    """The gate as a new deployment has it (on in every city); in-process record files."""
    return make_app(consent_required="all", redis_url=None, upload_dir=tmp_path / "up")


@pytest.fixture
def client(gated: Flask) -> FlaskClient:
    return gated.test_client()


def accept(client: FlaskClient, headers: dict[str, str], version: str = LATEST) -> Any:
    return client.post("/v1/me/consents", json={"notice_version": version}, headers=headers)


def test_the_gate_is_on_by_default_for_a_new_deployment(tmp_path: Any) -> None:
    config = Config.from_env(tmp_path, {})
    assert config.consent_required == "all"
    assert config.consent_required_in("shenzhen") and config.consent_required_in("beijing")
    assert config.privacy_notice_version == LATEST
    listed = Config.from_env(tmp_path, {"CONSENT_REQUIRED": "beijing, shanghai"})
    assert listed.consent_required_in("shanghai")
    assert not listed.consent_required_in("shenzhen")
    assert not Config.from_env(tmp_path, {"CONSENT_REQUIRED": "none"}).consent_required_in(
        "shenzhen")


def test_events_without_consent_are_refused_with_a_reason_code(
        client: FlaskClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/events", json=factories.metro(), headers=auth)
    assert r.status_code == 403
    assert r.json["error"]["code"] == "consent_required"
    assert LATEST in r.json["error"]["message"]
    batch = client.post("/v1/events/batch", json={"events": [factories.metro(),
                                                             factories.steps(3000)]},
                        headers=auth)
    assert batch.status_code == 200
    assert [(i["status"], i["error"]["code"]) for i in batch.json["results"]] == [
        (403, "consent_required"), (403, "consent_required")]
    assert client.get("/v1/me/account", headers=auth).json["balance"] == 0


def test_consent_then_withdrawal_then_consent_again(
        client: FlaskClient, auth: dict[str, str], gated: Flask, user_id: str) -> None:
    notice = client.get("/v1/privacy-notice", headers={"Accept-Language": "en"})
    assert notice.status_code == 200 and notice.json["version"] == LATEST
    assert set(notice.json["texts"]) == {"zh_CN", "en"} and notice.json["required"]

    given = accept(client, auth)
    assert given.status_code == 201, given.json
    assert given.json["action"] == "accept" and given.json["source"] == "user"
    assert accept(client, auth).status_code == 200  # again: the standing one, no new row
    first = client.post("/v1/events", json=factories.metro(), headers=auth)
    assert first.status_code == 201 and first.json["status"] == "credited"

    withdrawn = client.delete("/v1/me/consents", headers=auth)
    assert withdrawn.status_code == 200
    assert withdrawn.json["given"] is False
    assert withdrawn.json["refusal"] == "consent_withdrawn"
    r = client.post("/v1/events", json=factories.bus(), headers=auth)
    assert r.status_code == 403 and r.json["error"]["code"] == "consent_withdrawn"
    # A replay of the event stored before is refused too: nothing is processed.
    again = client.post("/v1/events", json=factories.metro(event_id=first.json["event_id"]),
                        headers=auth)
    assert again.status_code == 403
    assert client.delete("/v1/me/consents", headers=auth).status_code == 200

    assert accept(client, auth).status_code == 201
    assert client.post("/v1/events", json=factories.bus(), headers=auth).status_code == 201

    status = client.get("/v1/me/consents", headers=auth).json
    assert status["given"] is True and status["refusal"] is None
    assert [(s["action"], s["notice_version"]) for s in status["history"]] == [
        ("accept", LATEST), ("withdraw", LATEST), ("accept", LATEST)]
    times = [s["recorded_at"] for s in status["history"]]
    assert times == sorted(times) and all(times)
    rt = gated.extensions["carbon_credits"]
    with rt.db.transaction() as session:
        rows = session.scalars(select(Consent).where(Consent.user_id == user_id)).all()
    assert len(rows) == 3


def test_a_consent_names_the_current_version(client: FlaskClient,
                                             auth: dict[str, str]) -> None:
    for version, status in (("1999-01", 422), ("", 422)):
        r = accept(client, auth, version)
        assert r.status_code == status
        assert "notice_version" in r.json["error"]["fields"]
    assert client.post("/v1/me/consents", json={}, headers=auth).status_code == 422
    assert client.get("/v1/privacy-notice?version=1999-01").status_code == 404
    assert client.post("/v1/me/consents", json={"notice_version": LATEST}).status_code == 401


def test_a_consent_to_an_older_version_is_asked_again(
        make_app: Callable[..., Flask], auth: dict[str, str], user_id: str) -> None:
    app = make_app(consent_required="all")
    rt = app.extensions["carbon_credits"]
    with rt.db.transaction() as session:
        session.add(Consent(user_id=user_id, notice_version="2000-01", action="accept",
                            source="user"))
    r = app.test_client().post("/v1/events", json=factories.metro(), headers=auth)
    assert r.status_code == 403 and r.json["error"]["code"] == "consent_required"
    assert consents.refusal(("2000-01", "accept"), LATEST) == "consent_required"
    assert consents.refusal((LATEST, "withdraw"), LATEST) == "consent_withdrawn"
    assert consents.refusal((LATEST, "accept"), LATEST) is None
    assert consents.refusal(None, LATEST) == "consent_required"


def test_only_the_cities_listed_require_consent(make_app: Callable[..., Flask],
                                                auth: dict[str, str]) -> None:
    client = make_app(consent_required="beijing").test_client()
    assert client.post("/v1/events", json=factories.metro(), headers=auth).status_code == 201
    status = client.get("/v1/me/consents", headers=auth).json
    assert status["required"] is False and status["refusal"] is None


def test_a_providers_records_for_a_user_without_consent_are_refused_per_record(
        client: FlaskClient, token: Callable[..., str]) -> None:
    admin = {"Authorization": f"Bearer {token('ops-admin', 'admin')}"}
    _provider, key, (consenting, silent) = bound(client, admin, token, ["metro"], refs=2)
    assert accept(client, {"Authorization": f"Bearer {token(consenting)}"}).status_code == 201
    r = post(client, key, [metro("r-1", "card-0"), metro("r-2", "card-1")])
    assert r.status_code == 200, r.json
    results = r.json["results"]
    assert results[0]["status"] == 201
    assert results[1]["status"] == 403
    assert results[1]["error"]["code"] == "consent_required"


def test_refusals_are_translated(client: FlaskClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/events", json=factories.metro(),
                    headers={**auth, "Accept-Language": "zh-CN"})
    assert r.status_code == 403
    assert LATEST in r.json["error"]["message"]
    assert r.json["error"]["message"] != (
        "consent to privacy notice " + LATEST + " is required before events are accepted")


def test_existing_users_migrate_with_a_deemed_consent(
        make_app: Callable[..., Flask], token: Callable[..., str]) -> None:
    """An existing deployment's users (they posted before the gate) get a deemed consent,
    noted and audited; a user who withdrew keeps the withdrawal."""
    open_app = make_app(consent_required="none")
    city = f"c{factories.new_id()[2:14]}"
    old, withdrew = factories.new_id(), factories.new_id()
    for user in (old, withdrew):
        headers = {"Authorization": f"Bearer {token(user, city=city)}"}
        r = open_app.test_client().post("/v1/events", json=factories.metro(), headers=headers)
        assert r.status_code == 201, r.json
    withdrawer = {"Authorization": f"Bearer {token(withdrew, city=city)}"}
    assert accept(open_app.test_client(), withdrawer).status_code == 201
    assert open_app.test_client().delete("/v1/me/consents", headers=withdrawer).json[
        "refusal"] is None  # not required in this city (gate off), but withdrawn:
    assert open_app.test_client().get("/v1/me/consents", headers=withdrawer).json[
        "given"] is False
    consents.deem(open_app.extensions["carbon_credits"].db, LATEST, "no rows yet", "t",
                  city="none-such")  # another city: nobody
    gated_app = make_app(consent_required="all")
    result = gated_app.test_cli_runner().invoke(args=[
        "deem-consent", "--city", city, "--note", "accepted the 2025 user agreement"])
    assert result.exit_code == 0, result.output
    assert "for 1 users" in result.output
    rt = gated_app.extensions["carbon_credits"]
    with rt.db.transaction() as session:
        audit = session.scalars(select(AuditRecord).where(
            AuditRecord.action == "consent.deem", AuditRecord.target == f"city:{city}")).one()
        rows = session.scalars(select(Consent).where(Consent.user_id == old)).all()
    assert audit.after == {"notice_version": LATEST, "users": 1}
    assert [(c.source, c.note) for c in rows] == [("deemed", "accepted the 2025 user agreement")]
    headers = {"Authorization": f"Bearer {token(old, city=city)}"}
    client = gated_app.test_client()
    assert client.post("/v1/events", json=factories.bus(city="shenzhen"),
                       headers=headers).status_code == 201
    refused = client.post("/v1/events", json=factories.bus(city="shenzhen"),
                          headers=withdrawer)
    assert refused.json["error"]["code"] == "consent_withdrawn"
    assert NOTICES[LATEST].texts["zh_CN"]
