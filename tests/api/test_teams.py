"""Teams (admin creates, users join with the invite code, leave), the team report's
k-anonymity, team and friends leaderboards, friend links (request, accept, remove)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from carbon_credits.runtime import Runtime
from carbon_credits.schemas import teams as team_schemas
from carbon_credits.teams import service as teams
from tests import factories
from tests.api.test_leaderboards import bearer, riders_in_a_city

TODAY = factories.NOW.date()


def admin_headers(rt: Runtime) -> dict[str, str]:
    return {"Authorization": "Bearer " + rt.codec.encode("team-admin", "admin", None, 600)}


def make_team(client: FlaskClient, rt: Runtime, city: str, name: str = "Acme"
              ) -> dict[str, Any]:
    answer = client.post("/v1/admin/teams", json={"city": city, "name": name,
                                                  "kind": "company", "reason": "pilot"},
                         headers=admin_headers(rt))
    assert answer.status_code == 201, answer.json
    return answer.json


def test_join_with_the_invite_code_once_per_city_then_leave(app: Flask) -> None:
    rt, city, riders = riders_in_a_city(app, 3)
    client = app.test_client()
    acme, other = make_team(client, rt, city), make_team(client, rt, city, "Other")
    first = client.post("/v1/me/teams", json={"invite_code": acme["invite_code"].lower()},
                        headers=bearer(rt, riders[1], city))
    assert first.status_code == 201 and first.json["team_id"] == acme["id"]
    again = client.post("/v1/me/teams", json={"invite_code": acme["invite_code"]},
                        headers=bearer(rt, riders[1], city))
    assert again.status_code == 200
    second = client.post("/v1/me/teams", json={"invite_code": other["invite_code"]},
                         headers=bearer(rt, riders[1], city))
    assert second.status_code == 409 and second.json["error"]["code"] == "already_in_team"
    wrong = client.post("/v1/me/teams", json={"invite_code": "NOSUCHCODE"},
                        headers=bearer(rt, riders[1], city))
    assert wrong.status_code == 404 and wrong.json["error"]["code"] == "invalid_invite_code"
    client.post("/v1/me/teams", json={"invite_code": acme["invite_code"]},
                headers=bearer(rt, riders[2], city))
    board = client.get("/v1/leaderboards/team?period=all",
                       headers=bearer(rt, riders[2], city)).json
    assert [r["user_id"] for r in board["top"]] == [riders[1], riders[2]]
    assert board["board"] == f"team:{acme['id']}" and board["me"]["rank"] == 2
    mine = client.get("/v1/me/teams", headers=bearer(rt, riders[1], city)).json
    assert [m["team_id"] for m in mine] == [acme["id"]]
    assert client.delete(f"/v1/me/teams/{city}",
                         headers=bearer(rt, riders[1], city)).status_code == 204
    after = client.get("/v1/leaderboards/team?period=all",
                       headers=bearer(rt, riders[2], city)).json
    assert [r["user_id"] for r in after["top"]] == [riders[2]]
    gone = client.delete(f"/v1/me/teams/{city}", headers=bearer(rt, riders[1], city))
    assert gone.status_code == 404 and gone.json["error"]["code"] == "not_in_team"
    with rt.db.transaction() as session:
        assert teams.team_of(session, riders[2], city) == acme["id"]
        assert teams.team_of(session, riders[1], city) is None


def test_the_team_report_suppresses_rows_under_k_for_members_not_admins(
        make_app: Callable[..., Flask]) -> None:
    app = make_app(report_min_participants=3)
    rt, city, riders = riders_in_a_city(app, 3)
    client = app.test_client()
    team = make_team(client, rt, city)
    for rider in riders:
        client.post("/v1/me/teams", json={"invite_code": team["invite_code"]},
                    headers=bearer(rt, rider, city))
    window = f"from={TODAY.isoformat()}&to={TODAY.isoformat()}"
    seen = client.get(f"/v1/teams/{team['id']}/report?{window}",
                      headers=bearer(rt, riders[0], city))
    assert seen.status_code == 200, seen.json
    assert seen.json["total"]["participants"] == 3 and not seen.json["total"]["suppressed"]
    assert seen.json["total"]["grams"] > 0
    client.delete(f"/v1/me/teams/{city}", headers=bearer(rt, riders[2], city))
    small = client.get(f"/v1/teams/{team['id']}/report?{window}",
                       headers=bearer(rt, riders[0], city)).json
    assert small["total"] == {"grams": None, "participants": None, "suppressed": True}
    assert small["team"]["members"] is None
    full = client.get(f"/v1/teams/{team['id']}/report?{window}",
                      headers=admin_headers(rt)).json
    assert full["total"]["participants"] == 2 and full["team"]["members"] == 2
    outsider = client.get(f"/v1/teams/{team['id']}/report?{window}",
                          headers=bearer(rt, riders[2], city))
    assert outsider.status_code == 403


def test_friend_links_are_mutual_and_consented(app: Flask) -> None:
    rt, city, riders = riders_in_a_city(app, 3)
    client = app.test_client()
    ask = client.post("/v1/me/friends", json={"user_id": riders[0]},
                      headers=bearer(rt, riders[2], city))
    assert ask.status_code == 201 and ask.json["state"] == "requested"
    twice = client.post("/v1/me/friends", json={"user_id": riders[0]},
                        headers=bearer(rt, riders[2], city))
    assert twice.status_code == 409
    board = client.get("/v1/leaderboards/friends?period=all",
                       headers=bearer(rt, riders[2], city)).json
    assert [r["user_id"] for r in board["top"]] == [riders[2]]  # not accepted yet
    invited = client.get("/v1/me/friends", headers=bearer(rt, riders[0], city)).json
    assert [(f["user_id"], f["state"]) for f in invited] == [(riders[2], "invited")]
    accepted = client.post(f"/v1/me/friends/{riders[2]}/accept",
                           headers=bearer(rt, riders[0], city))
    assert accepted.status_code == 200 and accepted.json["state"] == "accepted"
    board = client.get("/v1/leaderboards/friends?period=all",
                       headers=bearer(rt, riders[2], city)).json
    assert [(r["user_id"], r["rank"]) for r in board["top"]] == [(riders[0], 1),
                                                                 (riders[2], 2)]
    assert board["me"]["rank"] == 2 and board["size"] == 2
    assert client.delete(f"/v1/me/friends/{riders[0]}",
                         headers=bearer(rt, riders[2], city)).status_code == 204
    assert client.get("/v1/me/friends", headers=bearer(rt, riders[0], city)).json == []
    nobody = client.post("/v1/me/friends", json={"user_id": f"x-{uuid.uuid4().hex}"},
                         headers=bearer(rt, riders[2], city))
    assert nobody.status_code == 404 and nobody.json["error"]["code"] == "no_such_user"
    itself = client.post("/v1/me/friends", json={"user_id": riders[2]},
                         headers=bearer(rt, riders[2], city))
    assert itself.status_code == 422 and "user_id" in itself.json["error"]["fields"]
    accept = client.post(f"/v1/me/friends/{riders[1]}/accept",
                         headers=bearer(rt, riders[2], city))
    assert accept.status_code == 404 and accept.json["error"]["code"] == "no_friend_request"


def test_asking_someone_who_asked_you_accepts(app: Flask) -> None:
    rt, city, riders = riders_in_a_city(app, 2)
    client = app.test_client()
    client.post("/v1/me/friends", json={"user_id": riders[1]},
                headers=bearer(rt, riders[0], city))
    back = client.post("/v1/me/friends", json={"user_id": riders[0]},
                       headers=bearer(rt, riders[1], city))
    assert back.json["state"] == "accepted"
    mine = client.get("/v1/me/friends", headers=bearer(rt, riders[0], city)).json
    assert [f["state"] for f in mine] == ["accepted"]


def test_team_creation_is_audited_and_admin_only(app: Flask) -> None:
    rt, city, riders = riders_in_a_city(app, 1)
    client = app.test_client()
    refused = client.post("/v1/admin/teams", json={"city": city, "name": "x",
                                                   "kind": "company", "reason": "pilot"},
                          headers=bearer(rt, riders[0], city))
    assert refused.status_code == 403
    bad = client.post("/v1/admin/teams", json={"city": city, "name": "x", "kind": "club",
                                               "reason": "pilot"},
                      headers=admin_headers(rt))
    assert bad.status_code == 422 and "kind" in bad.json["error"]["fields"]
    team = make_team(client, rt, city, "Audited")
    log = client.get("/v1/admin/audit?limit=50", headers=admin_headers(rt))
    assert any(r["action"] == "team.create" and r["target"] == f"team:{team['id']}"
               for r in log.json["items"])
    assert team_schemas.KINDS == teams.KINDS
