"""GET /v1/leaderboards/{scope}(/me) and PUT /v1/me/privacy, through the test client."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from flask import Flask

from carbon_credits.leaderboards import periods as lb_periods
from carbon_credits.leaderboards import service
from carbon_credits.runtime import Runtime
from carbon_credits.schemas import leaderboards as lb_schemas
from carbon_credits.teams import service as teams
from carbon_credits.tokens import Principal
from tests import factories
from tests.integration.test_rollups import metro, post, seed_city

TODAY = factories.NOW.date()


def riders_in_a_city(app: Flask, n: int) -> tuple[Runtime, str, list[str]]:
    """``n`` riders of a new city, the first credited most (more trips)."""
    rt: Runtime = app.extensions["carbon_credits"]
    city = seed_city(rt, "lba")
    riders = [f"lba-{uuid.uuid4().hex[:8]}" for _ in range(n)]
    for i, rider in enumerate(riders):
        for trip in range(n - i):
            post(rt, city, rider, metro(TODAY, 6 + trip, i))
    return rt, city, riders


def bearer(rt: Runtime, user: str, city: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {rt.codec.encode(user, 'user', city, 600)}"}


def test_top_and_my_place(app: Flask) -> None:
    rt, city, riders = riders_in_a_city(app, 3)
    client = app.test_client()
    answer = client.get("/v1/leaderboards/city?period=week&limit=2",
                        headers=bearer(rt, riders[2], city))
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert (body["scope"], body["period"], body["size"]) == ("city", "week", 3)
    assert body["label"] == lb_periods.period_of("week", TODAY).label
    assert [row["user_id"] for row in body["top"]] == riders[:2]
    assert [row["rank"] for row in body["top"]] == [1, 2]
    assert body["top"][0]["grams"] > body["top"][1]["grams"] > 0
    assert body["me"]["rank"] == 3
    mine = client.get("/v1/leaderboards/city/me?period=all",
                      headers=bearer(rt, riders[2], city)).json
    assert mine["me"] == body["me"] and "top" not in mine
    nobody = client.get("/v1/leaderboards/city/me?period=day",
                        headers=bearer(rt, "lba-nobody", city)).json
    assert nobody["me"] is None and nobody["size"] == 3


def test_an_opted_out_user_is_anonymous_to_others_but_not_to_themself(app: Flask) -> None:
    rt, city, riders = riders_in_a_city(app, 2)
    client = app.test_client()
    put = client.put("/v1/me/privacy", json={"hidden": True},
                     headers=bearer(rt, riders[0], city))
    assert put.status_code == 200 and put.json == {"hidden": True, "hidden_as": "anonymous"}
    seen = client.get("/v1/leaderboards/city", headers=bearer(rt, riders[1], city)).json
    assert seen["top"][0] == {"rank": 1, "user_id": None, "grams": seen["top"][0]["grams"],
                              "anonymous": True, "me": False}
    own = client.get("/v1/leaderboards/city", headers=bearer(rt, riders[0], city)).json
    assert own["top"][0]["user_id"] == riders[0] and own["top"][0]["me"]
    assert client.get("/v1/me/privacy", headers=bearer(rt, riders[0], city)).json["hidden"]
    client.put("/v1/me/privacy", json={"hidden": False}, headers=bearer(rt, riders[0], city))
    again = client.get("/v1/leaderboards/city", headers=bearer(rt, riders[1], city)).json
    assert again["top"][0]["user_id"] == riders[0]


def test_omitted_users_are_left_out_and_others_keep_their_rank(
        make_app: Callable[..., Flask]) -> None:
    app = make_app(leaderboard_hidden_as="omitted")
    rt, city, riders = riders_in_a_city(app, 3)
    client = app.test_client()
    client.put("/v1/me/privacy", json={"hidden": True}, headers=bearer(rt, riders[0], city))
    seen = client.get("/v1/leaderboards/city?limit=2",
                      headers=bearer(rt, riders[2], city)).json
    assert [(r["user_id"], r["rank"]) for r in seen["top"]] == [(riders[1], 2),
                                                                 (riders[2], 3)]


def test_bad_scope_period_and_missing_district(app: Flask) -> None:
    rt, city, riders = riders_in_a_city(app, 1)
    client = app.test_client()
    headers = bearer(rt, riders[0], city)
    scope = client.get("/v1/leaderboards/planet", headers=headers)
    assert scope.status_code == 404 and scope.json["error"]["code"] == "unknown_leaderboard"
    period = client.get("/v1/leaderboards/city?period=year", headers=headers)
    assert period.status_code == 422 and "period" in period.json["error"]["fields"]
    district = client.get("/v1/leaderboards/district", headers=headers)
    assert district.status_code == 422
    assert district.json["error"]["code"] == "district_required"
    team = client.get("/v1/leaderboards/team", headers=headers)
    assert team.status_code == 404 and team.json["error"]["code"] == "not_in_team"
    privacy = client.put("/v1/me/privacy", json={"hidden": "maybe"}, headers=headers)
    assert privacy.status_code == 422 and "hidden" in privacy.json["error"]["fields"]


def test_schema_constants_follow_the_domain() -> None:
    assert lb_schemas.PERIODS == lb_periods.PERIODS
    assert lb_schemas.MAX_TOP == service.MAX_TOP


def test_teams_against_teams_through_the_api(make_app: Callable[..., Flask]) -> None:
    app = make_app(report_min_participants=2)
    rt, city, riders = riders_in_a_city(app, 3)
    admin = Principal("lba-admin", "admin", None)
    team = teams.create_team(rt, admin, city, "Lianhua School", "school", "test")
    for rider in riders[:2]:
        teams.join(rt, Principal(rider, "user", city), team["invite_code"])
    client = app.test_client()
    answer = client.get("/v1/leaderboards/teams?period=month&limit=5",
                        headers=bearer(rt, riders[1], city))
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert (body["scope"], body["period"], body["size"], body["min_members"]) == (
        "teams", "month", 1, 2)
    [row] = body["top"]
    assert (row["team_id"], row["name"], row["kind"], row["members"], row["mine"]) == (
        team["id"], "Lianhua School", "school", 2, True)
    assert body["my_team"]["rank"] == 1 and body["my_team"]["grams"] == row["grams"] > 0
    outsider = client.get("/v1/leaderboards/teams", headers=bearer(rt, riders[2], city))
    assert outsider.status_code == 200 and outsider.json["my_team"] is None
    assert outsider.json["period"] == "week"
    bad = client.get("/v1/leaderboards/teams?period=year", headers=bearer(rt, riders[2], city))
    assert bad.status_code == 422 and "period" in bad.json["error"]["fields"]
    admin_token = {"Authorization": f"Bearer {rt.codec.encode('ops', 'admin', city, 600)}"}
    assert client.get("/v1/leaderboards/teams", headers=admin_token).status_code == 403
