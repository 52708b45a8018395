"""GET /v1/reports/reduction and /v1/reports/verification over HTTP: access, formats,
privacy suppression, periods, validation, and the MRV recomputation check."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from carbon_credits.runtime import Runtime
from tests.integration.test_rollups import (
    TODAY,
    YESTERDAY,
    bus,
    ledger_truth,
    metro,
    post,
    seed_city,
    steps,
)

Token = Callable[..., str]


def bearer(token: Token, sub: str, role: str, city: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, role=role, city=city)}"}


@pytest.fixture
def city(rt: Runtime, request: pytest.FixtureRequest) -> str:
    """A city with 12 riders over two days: metro from both districts, bus, steps."""
    name = seed_city(rt, "api")
    prefix = request.node.name
    for i in range(12):
        user = f"{prefix}-{i}"
        for day in (YESTERDAY, TODAY):
            post(rt, name, user, metro(day, 7, i, entry_station_id="luohu" if i % 2
                                       else "shaoniangong", exit_station_id="chegongmiao"))
        post(rt, name, user, bus(TODAY, 12, i))
    for i in range(3):  # a small group: only three walkers
        post(rt, name, f"{prefix}-walker-{i}", steps(TODAY, 6000))
    return name


def query(**params: Any) -> str:
    base = {"from": YESTERDAY.isoformat(), "to": TODAY.isoformat()}
    base.update({k: v for k, v in params.items() if v is not None})
    return "/v1/reports/reduction?" + "&".join(f"{k}={v}" for k, v in base.items())


# ---------------------------------------------------------------- access

def test_a_partner_reads_its_own_city(client: FlaskClient, token: Token, rt: Runtime,
                                      city: str) -> None:
    r = client.get(query(group_by="mode"), headers=bearer(token, "bureau", "partner", city))
    assert r.status_code == 200, r.json
    body = r.json
    assert body["city"] == city and body["timezone"] == "Asia/Shanghai"
    truth = ledger_truth(rt, city, YESTERDAY, TODAY)
    totals = body["totals"]
    assert (totals["ug"], totals["points"], totals["events"], totals["participants"]) == (
        truth["ug"], truth["points"], truth["events"], truth["participants"])
    assert totals["grams"] == truth["ug"] // 10**6
    assert totals["tonnes"] == pytest.approx(totals["grams"] / 10**6)
    assert "user_id" not in r.get_data(as_text=True)
    assert not [k for row in body["rows"] for k in row if "user" in k]


def test_a_partner_asking_for_another_city_is_403(client: FlaskClient, token: Token,
                                                  city: str) -> None:
    r = client.get(query(city="shenzhen"), headers=bearer(token, "bureau", "partner", city))
    assert r.status_code == 403 and r.json["error"]["code"] == "other_city"
    same = client.get(query(city=city), headers=bearer(token, "bureau", "partner", city))
    assert same.status_code == 200


def test_a_user_token_is_403_and_no_token_401(client: FlaskClient, token: Token,
                                              city: str) -> None:
    for path in (query(), "/v1/reports/verification?from=2026-01-01&to=2026-01-02"):
        r = client.get(path, headers=bearer(token, "someone", "user", city))
        assert r.status_code == 403 and r.json["error"]["code"] == "forbidden"
        assert client.get(path).status_code == 401


def test_a_partner_token_without_a_city_is_403(client: FlaskClient, token: Token) -> None:
    r = client.get(query(), headers=bearer(token, "bureau", "partner", None))
    assert r.status_code == 403 and r.json["error"]["code"] == "no_city"


def test_an_admin_reads_any_city_without_suppression(client: FlaskClient, token: Token,
                                                     city: str) -> None:
    admin = bearer(token, "ops", "admin", None)
    r = client.get(query(city=city, group_by="mode"), headers=admin)
    assert r.status_code == 200 and r.json["privacy"]["applied"] is False
    walkers = [row for row in r.json["rows"] if row["mode"] == "steps"]
    assert walkers and walkers[0]["participants"] == 3 and not walkers[0]["suppressed"]
    default = client.get(query(), headers=admin)  # no city: the service's default city
    assert default.status_code == 200 and default.json["city"] == "shenzhen"


# ---------------------------------------------------------------- privacy

def test_partner_cells_under_k_participants_are_suppressed(client: FlaskClient,
                                                           token: Token, city: str) -> None:
    r = client.get(query(group_by="mode"), headers=bearer(token, "bureau", "partner", city))
    rows = {(row["period"], row["mode"]): row for row in r.json["rows"]}
    walkers = rows[(TODAY.isoformat(), "steps")]
    assert walkers["suppressed"] is True
    assert all(walkers[f] is None for f in
               ("events", "grams", "tonnes", "ug", "points", "participants"))
    metro_today = rows[(TODAY.isoformat(), "metro")]
    assert metro_today["suppressed"] is False and metro_today["participants"] == 12
    assert r.json["privacy"] == {"k": 10, "applied": True, "suppressed_rows": 1}


def test_k_is_configurable(make_app: Callable[..., Flask], token: Token, city: str) -> None:
    client = make_app(report_min_participants=3).test_client()
    r = client.get(query(group_by="mode"), headers=bearer(token, "bureau", "partner", city))
    assert r.json["privacy"]["suppressed_rows"] == 0
    strict = make_app(report_min_participants=13).test_client()
    r = strict.get(query(), headers=bearer(token, "bureau", "partner", city))
    by_day = {row["period"]: row["suppressed"] for row in r.json["rows"]}
    assert by_day == {YESTERDAY.isoformat(): True, TODAY.isoformat(): False}  # 12, 15 people
    assert r.json["totals"]["suppressed"] is False


# ---------------------------------------------------------------- CSV

@pytest.mark.parametrize("how", ["accept", "format"])
def test_csv_by_accept_header_or_format(client: FlaskClient, token: Token, city: str,
                                        how: str) -> None:
    headers = bearer(token, "bureau", "partner", city)
    if how == "accept":
        r = client.get(query(group_by="mode,district"), headers={**headers,
                                                                 "Accept": "text/csv"})
    else:
        r = client.get(query(group_by="mode,district", format="csv"), headers=headers)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"].startswith("attachment; filename=")
    assert r.is_streamed
    rows = list(csv.DictReader(io.StringIO(r.get_data().decode("utf-8"))))
    assert list(rows[0]) == ["period", "period_start", "period_end", "mode", "district",
                             "events", "grams", "tonnes", "ug", "points", "participants",
                             "suppressed"]
    as_json = client.get(query(group_by="mode,district"), headers=headers).json["rows"]
    assert len(rows) == len(as_json)
    for line, row in zip(rows, as_json, strict=True):
        assert (line["period"], line["mode"], line["district"]) == (
            row["period"], row["mode"], row["district"])
        assert line["suppressed"] == ("true" if row["suppressed"] else "false")
        assert line["grams"] == ("" if row["grams"] is None else str(row["grams"]))
    suppressed = [line for line in rows if line["suppressed"] == "true"]
    # Six metro riders per district and three walkers are under k; the twelve bus riders
    # all board in Luohu.
    assert {line["mode"] for line in suppressed} == {"metro", "steps"}
    assert all(line["ug"] == line["participants"] == "" and line["district"]
               for line in suppressed)


# ---------------------------------------------------------------- periods and groups

def test_weeks_and_months_sum_the_days(client: FlaskClient, token: Token, city: str) -> None:
    admin = bearer(token, "ops", "admin", None)
    start = TODAY - timedelta(days=40)
    days = client.get(query(city=city, **{"from": start.isoformat()}), headers=admin).json
    for granularity in ("week", "month"):
        body = client.get(query(city=city, granularity=granularity,
                                **{"from": start.isoformat()}), headers=admin).json
        assert body["totals"] == days["totals"]
        assert sum(r["ug"] for r in body["rows"]) == days["totals"]["ug"]
        for row in body["rows"]:
            assert row["period_start"] >= start.isoformat()
            assert row["period_end"] <= TODAY.isoformat()
            assert row["period_start"] <= row["period_end"]
    weeks = client.get(query(city=city, granularity="week"), headers=admin).json["rows"]
    monday = TODAY - timedelta(days=TODAY.weekday())
    assert weeks[-1]["period"] == monday.isoformat()


def test_group_by_every_key(client: FlaskClient, token: Token, city: str) -> None:
    admin = bearer(token, "ops", "admin", None)
    r = client.get(query(city=city, group_by="methodology_version,district,mode"),
                   headers=admin)
    assert r.json["group_by"] == ["mode", "district", "methodology_version"]
    keys = {(row["mode"], row["district"], row["methodology_version"])
            for row in r.json["rows"]}
    assert ("metro", "luohu", "sz-2021.1") in keys and ("metro", "futian", "sz-2021.1") in keys
    assert ("steps", "unknown", "sz-2021.1") in keys


@pytest.mark.parametrize(("params", "field"), [
    ({"granularity": "year"}, "granularity"),
    ({"group_by": "mode,user_id"}, "group_by"),
    ({"from": "2026-02-30"}, "from"),
    ({"to": (YESTERDAY - timedelta(days=1)).isoformat()}, "to"),
    ({"from": "2001-01-01"}, "to"),
    ({"format": "xml"}, "format"),
])
def test_bad_queries_are_422_naming_the_field(client: FlaskClient, token: Token,
                                              params: dict[str, str], field: str) -> None:
    r = client.get(query(**params), headers=bearer(token, "ops", "admin", None))
    assert r.status_code == 422, r.json
    assert field in r.json["error"]["fields"]


def test_from_and_to_are_required(client: FlaskClient, token: Token) -> None:
    r = client.get("/v1/reports/reduction", headers=bearer(token, "ops", "admin", None))
    assert r.status_code == 422 and {"from", "to"} <= set(r.json["error"]["fields"])


# ---------------------------------------------------------------- verification (MRV)

def test_verification_export_recomputes_from_factor_and_activity(
        client: FlaskClient, token: Token, city: str) -> None:
    path = f"/v1/reports/verification?from={YESTERDAY}&to={TODAY}"
    r = client.get(path + f"&city={city}", headers=bearer(token, "ops", "admin", None))
    assert r.status_code == 200, r.json
    rows = {row["mode"]: row for row in r.json["rows"]}
    assert set(rows) == {"metro", "bus", "steps"}
    for row in rows.values():
        assert row["check"] == "ok" and row["suppressed"] is False
        factor = Fraction(Decimal(row["factor_value"]))
        recomputed = int(factor * 10**6 * Fraction(Decimal(row["activity"])))
        assert recomputed == row["recomputed_ug"]
        assert 0 <= recomputed - row["avoided_ug"] < row["events"]
        assert row["credited_ug"] <= row["avoided_ug"]
        assert row["avoided_grams"] == row["avoided_ug"] // 10**6
        assert row["factors"] and row["methodology_version"] == "sz-2021.1"
    assert rows["metro"]["factor_value"] == "46.8"
    assert rows["metro"]["activity_unit"] == "person-km"
    assert rows["steps"]["activity"] == "18000" and rows["steps"]["factor_unit"] == "g CO2/step"
    total = sum(row["credited_ug"] for row in rows.values())
    reduction = client.get(query(city=city), headers=bearer(token, "ops", "admin", None))
    assert total == reduction.json["totals"]["ug"]

    partner = client.get(path, headers=bearer(token, "bureau", "partner", city))
    suppressed = {row["mode"]: row["suppressed"] for row in partner.json["rows"]}
    assert suppressed == {"bus": False, "metro": False, "steps": True}
    as_csv = client.get(path + "&format=csv", headers=bearer(token, "bureau", "partner", city))
    lines = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    assert [line["mode"] for line in lines] == [row["mode"] for row in partner.json["rows"]]
    assert {line["check"] for line in lines} == {"ok", ""}


# ---------------------------------------------------------------- docs and the page

def test_openapi_documents_the_reports(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").json
    for path in ("/v1/reports/reduction", "/v1/reports/verification"):
        operation = spec["paths"][path]["get"]
        assert operation["security"] == [{"bearerAuth": []}]
        assert "text/csv" in operation["responses"]["200"]["content"]
        names = {p["name"] for p in operation["parameters"]}
        assert {"from", "to", "city", "format"} <= names
    assert "text/html" in spec["paths"]["/dashboard"]["get"]["responses"]["200"]["content"]


def test_the_dashboard_page_needs_no_token_and_sets_a_strict_csp(client: FlaskClient) -> None:
    r = client.get("/dashboard")
    assert r.status_code == 200 and r.mimetype == "text/html"
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    nonce = csp.split("'nonce-")[1].split("'")[0]
    page = r.get_data(as_text=True)
    assert f'<script nonce="{nonce}">' in page and "/v1/reports/reduction" in page
    assert f'value="{TODAY.isoformat()}"' in page  # the range ends today, city time
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page


# ---------------------------------------------------------------- rate limit

def test_reports_are_rate_limited_per_token(make_app: Callable[..., Flask], token: Token
                                            ) -> None:
    """A script polling reports in a loop gets 429 with Retry-After; another partner of the
    same city does not; a refused city (403) spends nothing."""
    from carbon_credits.antifraud.ratelimit import parse_rate_limits

    app = make_app(rate_limits=parse_rate_limits("reports:user=2/60"))
    client = app.test_client()
    run = uuid.uuid4().hex[:8]
    poller = bearer(token, f"poller-{run}", "partner", "shenzhen")
    assert client.get(query(city="guangzhou"), headers=poller).status_code == 403
    statuses = [client.get(query(), headers=poller).status_code for _ in range(2)]
    assert statuses == [200, 200]
    refused = client.get("/v1/reports/verification?from=2026-11-01&to=2026-11-02",
                         headers=poller)
    assert refused.status_code == 429, refused.json
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json["error"]["code"] == "rate_limited"
    other = bearer(token, f"other-{run}", "partner", "shenzhen")
    assert client.get(query(), headers=other).status_code == 200
