"""Scenario providers' records over HTTP: a signed POST of records answered per record,
and a signed file upload processed as a job (in-process here: no Redis), with its status
and error report; the trust policies and bindings apply to both."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from http_message_signatures import ContentDigest

from tests import factories
from tests.api.test_providers import add_hmac, new_id, register
from tests.signing import Key, body_of, sign

RECORDS = "/v1/provider/records"
FILES = "/v1/provider/files"


@pytest.fixture
def admin(token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('ops-admin', 'admin')}"}


@pytest.fixture
def app_no_redis(make_app: Callable[..., Flask], tmp_path: Any) -> Flask:
    """Files processed in this process (the embedded default), uploads in tmp."""
    return make_app(redis_url=None, upload_dir=tmp_path / "uploads", record_chunk_rows=3)


@pytest.fixture
def client(app_no_redis: Flask) -> FlaskClient:
    return app_no_redis.test_client()


def bound(client: FlaskClient, admin: dict[str, str], token: Callable[..., str],
          modes: list[str], refs: int = 1) -> tuple[str, Key, list[str]]:
    """A provider of ``modes`` with a key, and ``refs`` users bound to it as card-0..."""
    provider_id = register(client, admin, modes=modes)["id"]
    key = add_hmac(client, admin, provider_id)
    users = []
    for n in range(refs):
        body = body_of({"user_ref": f"card-{n}"})
        code = client.post("/v1/provider/binding-codes", data=body, headers=sign(
            key, "POST", "/v1/provider/binding-codes", body)).json["code"]
        user = new_id("u")
        r = client.post("/v1/me/bindings", json={"provider_id": provider_id, "code": code},
                        headers={"Authorization": f"Bearer {token(user)}"})
        assert r.status_code == 201, r.json
        users.append(user)
    return provider_id, key, users


def metro(record_id: str, ref: str = "card-0", hour: int = 8, **overrides: Any
          ) -> dict[str, Any]:
    start = factories.today_at(hour)
    return {"record_id": record_id, "user_ref": ref, "kind": "metro_trip",
            "entry_station_id": "luohu", "exit_station_id": "shaoniangong",
            "tapped_in_at": start.isoformat(),
            "tapped_out_at": (start + timedelta(minutes=25)).isoformat(), **overrides}


def post(client: FlaskClient, key: Key, records: list[dict[str, Any]]) -> Any:
    body = body_of({"records": records})
    return client.post(RECORDS, data=body, headers=sign(key, "POST", RECORDS, body))


def test_records_are_answered_one_by_one(client: FlaskClient, admin: dict[str, str],
                                         token: Callable[..., str]) -> None:
    provider_id, key, (user,) = bound(client, admin, token, ["metro"])
    first = metro("r1")
    r = post(client, key, [first, metro("r2", ref="card-9", hour=10),
                           {**metro("r3", hour=12), "tapped_out_at": "soon"},
                           {"record_id": "r4", "user_ref": "card-0", "kind": "bike_ride",
                            "started_at": factories.today_at(14).isoformat(),
                            "ended_at": factories.today_at(15).isoformat(),
                            "distance_m": 3000}])
    assert r.status_code == 200, r.json
    items = r.json["results"]
    assert [i["index"] for i in items] == [0, 1, 2, 3]
    assert (items[0]["status"], items[0]["result"]["status"],
            items[0]["result"]["source"]) == (201, "credited", provider_id)
    assert (items[1]["status"], items[1]["error"]["code"]) == (422, "not_bound")
    assert items[2]["status"] == 422 and "tapped_out_at" in items[2]["error"]["fields"]
    assert (items[3]["status"], items[3]["error"]["code"]) == (403, "mode_not_allowed")
    again = post(client, key, [first, {**first, "exit_station_id": "laojie"}])
    assert [i["status"] for i in again.json["results"]] == [200, 409]
    event_id = items[0]["result"]["event_id"]
    seen = client.get(f"/v1/events/{event_id}",
                      headers={"Authorization": f"Bearer {token(user)}"})
    assert seen.status_code == 200 and seen.json["confirmed_by"] == provider_id


def test_a_revoked_binding_stops_the_records(client: FlaskClient, admin: dict[str, str],
                                             token: Callable[..., str]) -> None:
    provider_id, key, (user,) = bound(client, admin, token, ["metro"])
    auth = {"Authorization": f"Bearer {token(user)}"}
    assert client.delete(f"/v1/me/bindings/{provider_id}", headers=auth).status_code == 200
    r = post(client, key, [metro("r1")])
    assert r.json["results"][0]["error"]["code"] == "not_bound"
    assert client.get("/v1/me/account", headers=auth).json["balance"] == 0


def test_more_than_1000_records_are_a_file(client: FlaskClient, admin: dict[str, str],
                                           token: Callable[..., str]) -> None:
    _, key, _ = bound(client, admin, token, ["metro"])
    r = post(client, key, [metro(f"r{i}") for i in range(1001)])
    assert r.status_code == 422 and "records" in r.json["error"]["fields"]


def test_a_user_token_does_not_reach_the_records(client: FlaskClient,
                                                 token: Callable[..., str]) -> None:
    r = client.post(RECORDS, json={"records": [metro("r1")]},
                    headers={"Authorization": f"Bearer {token('someone')}"})
    assert r.status_code == 401 and r.json["error"]["code"] == "signature_missing"


# ---------------------------------------------------------------- files

def upload(client: FlaskClient, key: Key, data: bytes, content_type: str = "text/csv",
           digest: str | None = None) -> Any:
    headers = sign(key, "POST", FILES, data, digest=digest)
    headers["Content-Type"] = content_type
    return client.post(FILES, data=data, headers=headers)


def wait_done(client: FlaskClient, key: Key, file_id: str) -> dict[str, Any]:
    """Poll the job: a generous bound on a condition, not a timing assertion."""
    deadline = time.monotonic() + 120
    while True:
        path = f"{FILES}/{file_id}"
        r = client.get(path, headers=sign(key, "GET", path))
        assert r.status_code == 200, r.json
        if r.json["status"] in ("done", "failed") or time.monotonic() > deadline:
            result: dict[str, Any] = r.json
            return result
        time.sleep(0.05)


CSV_HEADER = "record_id,user_ref,kind,entry_station_id,exit_station_id,tapped_in_at,tapped_out_at\n"


def csv_row(record: dict[str, Any]) -> str:
    return ",".join(str(record[k]) for k in CSV_HEADER.strip().split(",")) + "\n"


def test_a_file_is_processed_as_a_job_with_an_error_report(
        client: FlaskClient, admin: dict[str, str], token: Callable[..., str]) -> None:
    provider_id, key, users = bound(client, admin, token, ["metro"], refs=2)
    rows = [metro("f1"), metro("f2", ref="card-1", hour=9),
            {**metro("f3", hour=11), "tapped_in_at": "yesterday"},
            metro("f4", ref="card-7", hour=13), metro("f5", hour=15)]
    data = (CSV_HEADER + "".join(csv_row(r) for r in rows)).encode()
    r = upload(client, key, data)
    assert r.status_code == 202, r.json
    done = wait_done(client, key, r.json["file_id"])
    assert done["status"] == "done", done
    assert done["counts"] == {"rows_read": 5, "credited": 3, "held": 0, "replayed": 0,
                              "refused": 2}
    path = f"{FILES}/{done['file_id']}/errors"
    report = client.get(path, headers=sign(key, "GET", path))
    assert report.status_code == 200 and report.mimetype == "text/csv"
    lines = report.get_data(as_text=True).splitlines()
    assert lines[0] == "line,field,code,reason"
    assert [line.split(",")[:3] for line in lines[1:]] == [
        ["4", "tapped_in_at", "invalid_field"], ["5", "user_ref", "not_bound"]]
    for user in users:
        account = client.get("/v1/me/account", headers={"Authorization": f"Bearer {token(user)}"})
        assert account.json["balance"] > 0
    # the same file again: the same job, nothing credited twice
    again = upload(client, key, data)
    assert again.status_code == 200 and again.json["file_id"] == done["file_id"]


def test_a_gzipped_jsonl_file_is_read(client: FlaskClient, admin: dict[str, str],
                                      token: Callable[..., str]) -> None:
    _, key, _ = bound(client, admin, token, ["metro"])
    data = gzip.compress("".join(json.dumps(metro(f"j{i}", hour=6 + 2 * i)) + "\n"
                                 for i in range(4)).encode())
    r = upload(client, key, data, "application/x-ndjson")
    assert r.status_code == 202, r.json
    assert wait_done(client, key, r.json["file_id"])["counts"]["credited"] == 4


def test_a_file_that_is_not_its_signed_digest_keeps_nothing(
        client: FlaskClient, admin: dict[str, str], token: Callable[..., str]) -> None:
    _, key, _ = bound(client, admin, token, ["metro"])
    data = (CSV_HEADER + csv_row(metro("d1"))).encode()
    r = upload(client, key, data, digest=ContentDigest.create(data + b"x"))
    assert r.status_code == 401 and r.json["error"]["code"] == "digest_mismatch"
    r = upload(client, key, data)  # the genuine one is a new job, not a replay
    assert r.status_code == 202, r.json
    assert wait_done(client, key, r.json["file_id"])["counts"]["credited"] == 1


def test_a_file_that_is_not_csv_or_jsonl_is_refused_whole(
        client: FlaskClient, admin: dict[str, str], token: Callable[..., str]) -> None:
    _, key, _ = bound(client, admin, token, ["metro"])
    r = upload(client, key, b"\x89PNG\r\n\x1a\n\x00\x00", "image/png")
    assert r.status_code == 415, r.json
    r = upload(client, key, b"just some words\nand more\n")
    assert r.status_code == 422 and r.json["error"]["fields"], r.json


def test_another_providers_file_is_not_found(client: FlaskClient, admin: dict[str, str],
                                             token: Callable[..., str]) -> None:
    _, key, _ = bound(client, admin, token, ["metro"])
    _, other, _ = bound(client, admin, token, ["metro"])
    r = upload(client, key, (CSV_HEADER + csv_row(metro("o1"))).encode())
    wait_done(client, key, r.json["file_id"])  # its thread done before the app goes
    path = f"{FILES}/{r.json['file_id']}"
    assert client.get(path, headers=sign(other, "GET", path)).status_code == 404
    errors = path + "/errors"
    assert client.get(errors, headers=sign(other, "GET", errors)).status_code == 404
