"""Bad input on the HTTP API: always a 4xx in the one error shape, and nothing written.

``{"error": {"code": str, "message": str, "fields": {...}}}``; never a 500 for client input.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests import factories


def error_of(r: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert ``r`` is ``status`` with the JSON error shape; return the error object."""
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    body = r.json
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    assert set(error) <= {"code", "message", "fields"}
    if "fields" in error:
        assert isinstance(error["fields"], dict) and error["fields"]
    if code is not None:
        assert error["code"] == code, error
    return error


Post = Callable[..., TestResponse]
"""The ``post`` fixture: POST /v1/events, then check nothing was written."""


def fields_of(r: TestResponse, status: int = 422, code: str | None = "invalid_input"
              ) -> dict[str, Any]:
    fields: dict[str, Any] = error_of(r, status, code).get("fields", {})
    return fields


def assert_nothing_written(client: FlaskClient, auth: dict[str, str], event_id: Any) -> None:
    account = client.get("/v1/me/account", headers=auth)
    assert account.status_code == 200, account.json
    assert account.json["balance"] == 0
    assert account.json["lifetime_points"] == 0
    assert account.json["today"]["total"]["events"] == 0
    ledger = client.get("/v1/me/ledger", headers=auth)
    assert ledger.status_code == 200 and ledger.json["items"] == [], ledger.json
    if isinstance(event_id, str) and event_id:
        r = client.get(f"/v1/events/{quote(event_id, safe='')}", headers=auth)
        # 422 only where PostgreSQL refuses the id itself (a NUL byte).
        assert r.status_code in (404, 422), (event_id, r.json)
        error_of(r, r.status_code)


@pytest.fixture
def post(client: FlaskClient, auth: dict[str, str]) -> Post:
    """POST /v1/events as a fresh user, then check that the rejected event left no trace."""

    def send(body: Any = None, *, raw: bytes | str | None = None,
             content_type: str = "application/json") -> TestResponse:
        data = raw if raw is not None else json.dumps(body)
        r = client.post("/v1/events", data=data, content_type=content_type, headers=auth)
        event_id = body.get("event_id") if isinstance(body, dict) else None
        if event_id is None and raw is not None:
            event_id = _event_id_in(raw)
        assert_nothing_written(client, auth, event_id)
        return r

    return send


def _event_id_in(raw: bytes | str) -> str | None:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    marker = '"event_id": "'
    start = text.find(marker)
    if start < 0:
        return None
    start += len(marker)
    return text[start:text.index('"', start)]


# --- the body as a whole ---------------------------------------------------------------------

def test_malformed_json_is_400_malformed_json(post: Post) -> None:
    event = factories.metro()
    r = post(raw=json.dumps(event)[:-1])
    error = error_of(r, 400, "malformed_json")
    assert "body" in error["fields"]


def test_non_json_content_type_is_415_with_a_json_error(post: Post) -> None:
    r = post(raw=json.dumps(factories.metro()), content_type="text/plain")
    error = error_of(r, 415, "unsupported_media_type")
    assert "Content-Type" in error["fields"]


def test_form_encoded_body_is_415(post: Post) -> None:
    r = post(raw="event_id=x&mode=steps", content_type="application/x-www-form-urlencoded")
    error_of(r, 415, "unsupported_media_type")


def test_missing_body_is_a_json_error(post: Post) -> None:
    r = post(raw=b"")
    error_of(r, 400, "malformed_json")


@pytest.mark.parametrize("body", [[factories.metro()], "an event", 42, None, True])
def test_body_that_is_not_a_json_object_is_422_naming_schema(post: Post, body: Any) -> None:
    assert "_schema" in fields_of(post(raw=json.dumps(body)))


def test_non_utf8_body_is_400(post: Post) -> None:
    event = factories.steps(1000, city="São Paulo")
    r = post(raw=json.dumps(event, ensure_ascii=False).encode("latin-1"))
    error_of(r, 400, "malformed_json")


def test_utf16_body_is_400(post: Post) -> None:
    """JSON on the wire is UTF-8 (RFC 8259 8.1); json.loads alone would guess UTF-16."""
    r = post(raw=json.dumps(factories.steps(1000)).encode("utf-16"))
    error_of(r, 400, "malformed_json")


def test_deeply_nested_json_is_400_not_500(post: Post) -> None:
    depth = 100_000
    r = post(raw="[" * depth + "]" * depth)
    error_of(r, 400, "malformed_json")


def test_json_with_nan_is_rejected(post: Post) -> None:
    event = factories.steps(1000)
    text = json.dumps(event).replace('"steps": 1000', '"steps": NaN')
    assert "NaN" in text
    assert "steps" in fields_of(post(raw=text))


def test_body_over_max_content_length_is_413_with_a_json_error(post: Post) -> None:
    event = factories.steps(1000, padding="x" * (1 << 20))
    error_of(post(event), 413, "payload_too_large")


# --- required fields, types and ranges ---------------------------------------------------------

@pytest.mark.parametrize("field", ["event_id", "mode", "city"])
def test_missing_required_field_is_422_naming_it(post: Post, field: str) -> None:
    event = factories.metro()
    del event[field]
    assert field in fields_of(post(event))


@pytest.mark.parametrize("field", ["entry_station_id", "exit_station_id", "started_at",
                                   "ended_at"])
def test_missing_metro_field_is_422_naming_it(post: Post, field: str) -> None:
    event = factories.metro()
    del event[field]
    assert list(fields_of(post(event))) == [field]


@pytest.mark.parametrize("field", ["date", "steps"])
def test_missing_steps_field_is_422_naming_it(post: Post, field: str) -> None:
    event = factories.steps(1000)
    del event[field]
    assert list(fields_of(post(event))) == [field]


@pytest.mark.parametrize("mode", ["plane", "", "BUS", 1, None, ["bus"]])
def test_unknown_mode_is_422_fields_mode(post: Post, mode: Any) -> None:
    assert "mode" in fields_of(post(factories.metro(mode=mode)))


@pytest.mark.parametrize("steps", ["100", 1.5, True, None, [100], {"n": 100}, 1e400])
def test_steps_of_the_wrong_type_is_422_fields_steps(post: Post, steps: Any) -> None:
    assert list(fields_of(post(factories.steps(0, steps=steps)))) == ["steps"]


@pytest.mark.parametrize("steps", [-1, 1_000_001, 10**30])
def test_steps_out_of_range_is_422_fields_steps(post: Post, steps: int) -> None:
    assert list(fields_of(post(factories.steps(steps)))) == ["steps"]


@pytest.mark.parametrize("distance", ["1000", 1000.5, False, -1, 500_001])
def test_bad_bus_distance_is_422_fields_distance_m(post: Post, distance: Any) -> None:
    assert list(fields_of(post(factories.bus(distance_m=distance)))) == ["distance_m"]


@pytest.mark.parametrize("field", ["event_id", "city", "entry_station_id"])
@pytest.mark.parametrize("value", [123, None, {"id": "x"}])
def test_non_string_id_is_422_naming_it(post: Post, field: str, value: Any) -> None:
    assert field in fields_of(post(factories.metro(**{field: value})))


def test_naive_datetime_is_422_fields_started_at(post: Post) -> None:
    start = factories.today_at(8).replace(tzinfo=None)
    assert list(fields_of(post(factories.metro(started_at=start.isoformat())))) == [
        "started_at"]


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T08:00:00+08:00",
                                   "2024-01-01T08:00:00+25:00", "", 1700000000])
def test_unparseable_datetime_is_422_fields_started_at(post: Post, value: Any) -> None:
    assert "started_at" in fields_of(post(factories.metro(started_at=value)))


@pytest.mark.parametrize("start", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:00:00-08:00",
                                   "1970-01-01T00:00:00+00:00", "2200-01-01T00:00:00+00:00"])
def test_datetime_outside_the_sane_era_is_422_not_500(post: Post, start: str) -> None:
    event = factories.bus(started_at=start)
    assert list(fields_of(post(event))) == ["started_at"]


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1999-12-31", "2024-02-30",
                                 "2024-1-1x"])
def test_steps_date_unparseable_or_outside_the_era_is_422_fields_date(post: Post,
                                                                     day: str) -> None:
    assert list(fields_of(post(factories.steps(1000, date=day)))) == ["date"]


def test_trip_older_than_the_backfill_window_is_422_event_too_old(post: Post) -> None:
    # (A trip before the city's first factor version but inside the window is 422
    # no_methodology: see tests/integration/test_ingest.py.)
    event = factories.metro(started_at="2001-01-01T08:00:00+08:00",
                            ended_at="2001-01-01T08:30:00+08:00")
    assert list(fields_of(post(event), code="event_too_old")) == ["started_at"]


def test_ended_at_before_started_at_is_422_fields_ended_at(post: Post) -> None:
    start = factories.today_at(8)
    event = factories.metro(start=start)
    event["ended_at"] = start.replace(hour=7).isoformat()
    assert list(fields_of(post(event))) == ["ended_at"]


def test_unknown_extra_field_is_422_naming_it(post: Post) -> None:
    assert list(fields_of(post(factories.metro(points=1000)))) == ["points"]


def test_field_of_another_mode_is_422_naming_it(post: Post) -> None:
    assert list(fields_of(post(factories.steps(1000, line_id="bus-1")))) == ["line_id"]


@pytest.mark.parametrize("event_id", ["e" * 65, "has space", "", "-leading-dash", "tab\there",
                                      "e-trailing-newline\n", "e" * 64 + "\n", "中文",
                                      "nul\x00byte"])
def test_bad_event_id_is_422_fields_event_id(post: Post, event_id: str) -> None:
    assert list(fields_of(post(factories.steps(1000, event_id=event_id)))) == ["event_id"]


def test_event_id_of_64_characters_is_accepted(client: FlaskClient,
                                               auth: dict[str, str]) -> None:
    event = factories.steps(1000, event_id="e" * 64)
    assert client.post("/v1/events", json=event, headers=auth).status_code == 201


def test_city_with_trailing_newline_is_422_fields_city(post: Post) -> None:
    assert list(fields_of(post(factories.metro(city="shenzhen\n")))) == ["city"]


# --- values the methodology cannot quantify ---------------------------------------------------

@pytest.mark.parametrize("field", ["entry_station_id", "exit_station_id"])
def test_unknown_metro_station_is_422_unquantifiable(post: Post, field: str) -> None:
    r = post(factories.metro(**{field: "atlantis-central"}))
    assert list(fields_of(r, code="unquantifiable")) == [field]


def test_unknown_bus_line_is_422_fields_line_id(post: Post) -> None:
    r = post(factories.bus(line_id="bus-999"))
    assert list(fields_of(r, code="unquantifiable")) == ["line_id"]


def test_metro_line_given_as_a_bus_line_is_422_fields_line_id(post: Post) -> None:
    r = post(factories.bus(line_id="metro-1"))
    assert list(fields_of(r, code="unquantifiable")) == ["line_id"]


@pytest.mark.parametrize("field", ["board_stop_id", "alight_stop_id"])
def test_bus_stop_not_on_the_line_is_422_naming_it(post: Post, field: str) -> None:
    # b-shaoniangong exists, but on bus-10, not on bus-1.
    r = post(factories.bus(**{field: "b-shaoniangong"}))
    assert list(fields_of(r, code="unquantifiable")) == [field]


def test_metro_station_id_given_for_a_bus_stop_is_422(post: Post) -> None:
    r = post(factories.bus(board_stop_id="luohu"))
    assert list(fields_of(r, code="unquantifiable")) == ["board_stop_id"]


@pytest.mark.parametrize("make", [factories.metro, factories.bus,
                                  lambda **kw: factories.steps(1000, **kw)])
def test_city_without_a_methodology_is_422_fields_city(post: Post, make: Any) -> None:
    assert list(fields_of(post(make(city="atlantis")), code="no_methodology")) == ["city"]


# --- other endpoints -------------------------------------------------------------------------

@pytest.mark.parametrize("limit", ["0", "-1", "201", "abc", "1.5", ""])
def test_ledger_with_a_bad_limit_is_422_fields_limit(client: FlaskClient,
                                                     auth: dict[str, str], limit: str) -> None:
    r = client.get(f"/v1/me/ledger?limit={limit}", headers=auth)
    assert list(fields_of(r)) == ["limit"]


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "bGU6", "bGU6YWJj", "x" * 65,
                                    base64.urlsafe_b64encode(b"\xff\xfe").decode()])
def test_ledger_with_a_bad_cursor_is_422_fields_cursor(client: FlaskClient,
                                                       auth: dict[str, str],
                                                       cursor: str) -> None:
    r = client.get("/v1/me/ledger", query_string={"cursor": cursor}, headers=auth)
    assert list(fields_of(r)) == ["cursor"]


@pytest.mark.parametrize("entry_id", ["99999999999999999999999", "9223372036854775808"])
def test_ledger_cursor_beyond_int64_is_422_fields_cursor(client: FlaskClient,
                                                         auth: dict[str, str],
                                                         entry_id: str) -> None:
    cursor = base64.urlsafe_b64encode(f"le:{entry_id}".encode()).decode().rstrip("=")
    r = client.get("/v1/me/ledger", query_string={"cursor": cursor}, headers=auth)
    assert list(fields_of(r)) == ["cursor"]


def test_event_lookup_with_a_nul_byte_is_a_4xx_json_error(client: FlaskClient,
                                                          auth: dict[str, str]) -> None:
    """PostgreSQL refuses NUL in text; that must not read as "database unavailable"."""
    r = client.get("/v1/events/a%00b", headers=auth)
    assert r.status_code in (404, 422)
    error_of(r, r.status_code)
    assert "Retry-After" not in r.headers


def test_event_lookup_with_an_overlong_id_is_404(client: FlaskClient,
                                                 auth: dict[str, str]) -> None:
    r = client.get(f"/v1/events/{'e' * 5000}", headers=auth)
    error_of(r, 404, "not_found")


def test_methodologies_with_a_bad_city_is_422_fields_city(client: FlaskClient) -> None:
    r = client.get("/v1/methodologies", query_string={"city": "no spaces allowed"})
    assert list(fields_of(r)) == ["city"]


def test_unknown_url_is_404_json(client: FlaskClient) -> None:
    error_of(client.get("/v1/nothing-here"), 404, "not_found")


def test_unknown_url_with_a_token_is_404_json(client: FlaskClient,
                                              auth: dict[str, str]) -> None:
    error_of(client.post("/v2/events", json=factories.metro(), headers=auth), 404, "not_found")


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_wrong_method_on_events_is_405_json(client: FlaskClient, auth: dict[str, str],
                                            method: str) -> None:
    r = getattr(client, method)("/v1/events", json=factories.metro(), headers=auth)
    error_of(r, 405, "method_not_allowed")
    assert "POST" in r.headers["Allow"]


def test_get_on_events_collection_is_405_json(client: FlaskClient,
                                              auth: dict[str, str]) -> None:
    error_of(client.get("/v1/events", headers=auth), 405, "method_not_allowed")


@pytest.mark.parametrize("path", ["/v1/events/batch", "/v1/me/redemptions"])
def test_deeply_nested_json_is_400_on_schema_parsed_endpoints(
        client: FlaskClient, auth: dict[str, str], path: str) -> None:
    body = "[" * 100_000 + "]" * 100_000
    r = client.post(path, data=body, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json["error"]["code"] == "malformed_json"


@pytest.mark.parametrize("path", ["/v1/events/batch", "/v1/me/redemptions"])
def test_utf16_json_is_400_on_schema_parsed_endpoints(
        client: FlaskClient, auth: dict[str, str], path: str) -> None:
    r = client.post(path, data='{"events": []}'.encode("utf-16"),
                    headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json["error"]["code"] == "malformed_json"


# --- repeated keys -------------------------------------------------------------------------------

def test_a_repeated_key_is_400_naming_it(post: Post) -> None:
    """Python keeps a repeated key's last value, other parsers the first: refuse the body."""
    event = factories.metro(event_id="first")
    text = json.dumps(event)
    raw = text[:-1] + ', "event_id": "second"}'
    r = post(raw=raw)
    error = error_of(r, 400, "duplicate_key")
    assert error["fields"] == {"event_id": ["appears more than once"]}


def test_a_repeated_key_in_a_batch_item_refuses_the_batch_naming_the_item(
        client: FlaskClient, auth: dict[str, str]) -> None:
    items = [json.dumps(factories.steps(1000, event_id="s-1")),
             json.dumps(factories.metro(event_id="m-1"))[:-1] + ', "mode": "bus"}']
    raw = '{"events": [' + ", ".join(items) + "]}"
    r = client.post("/v1/events/batch", data=raw, headers=auth,
                    content_type="application/json")
    error = error_of(r, 400, "duplicate_key")
    assert error["fields"] == {"events.1.mode": ["appears more than once"]}
    # Nothing of the batch was applied: the first item is unknown.
    assert client.get("/v1/events/s-1", headers=auth).status_code == 404


def test_the_same_key_in_two_objects_is_not_a_repeat(client: FlaskClient,
                                                     auth: dict[str, str]) -> None:
    body = {"events": [factories.steps(1000), factories.metro()]}
    r = client.post("/v1/events/batch", json=body, headers=auth)
    assert r.status_code == 200, r.json
    assert [item["status"] for item in r.json["results"]] == [201, 201]
