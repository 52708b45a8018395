"""GET /v1/leaderboards/{scope}, its /me, /v1/leaderboards/teams (team against team), and
/v1/me/privacy."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.leaderboards import service
from carbon_credits.schemas.examples import PRIVACY_EXAMPLE, TEAM_BOARD_EXAMPLE
from carbon_credits.schemas.leaderboards import (
    LeaderboardQuerySchema,
    LeaderboardSchema,
    MyPlaceSchema,
    PrivacySchema,
    TeamBoardQuerySchema,
    TeamBoardSchema,
)

blp = Blueprint("leaderboards", __name__, url_prefix="/v1",
                description="Leaderboards of credited grams CO2")


@blp.route("/leaderboards/teams")
class TeamBoardView(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(TeamBoardQuerySchema, location="query")
    @blp.response(200, TeamBoardSchema, example=TEAM_BOARD_EXAMPLE)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Show teams against teams in your city: ranked by their members' credited grams
        over a day, week, month or all time, and your team's place; a team with fewer than
        `min_members` members with grams in the period is not shown."""
        return service.read_teams(runtime(), current_principal(), query["period"],
                                  query["limit"])


@blp.route("/leaderboards/<string:scope>")
class LeaderboardView(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(LeaderboardQuerySchema, location="query")
    @blp.response(200, LeaderboardSchema)
    def get(self, query: dict[str, Any], scope: str) -> dict[str, Any]:
        """Show the top of a leaderboard of your city (`city`, `district`, your `team`, or
        your `friends`) over a day, week, month or all time, and your own place."""
        return service.read(runtime(), current_principal(), scope, query["period"],
                            query["limit"], query["district"])


@blp.route("/leaderboards/<string:scope>/me")
class LeaderboardMeView(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(LeaderboardQuerySchema, location="query")
    @blp.response(200, MyPlaceSchema)
    def get(self, query: dict[str, Any], scope: str) -> dict[str, Any]:
        """Show your own place on a leaderboard (`me` null when you have no credit
        there)."""
        return service.read(runtime(), current_principal(), scope, query["period"], 0,
                            query["district"])


@blp.route("/me/privacy")
class PrivacyView(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, PrivacySchema)
    def get(self) -> dict[str, Any]:
        """Show whether others see you on leaderboards."""
        return service.privacy(runtime(), current_principal())

    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(PrivacySchema, example=PRIVACY_EXAMPLE)
    @blp.response(200, PrivacySchema)
    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Opt out of (or back into) being shown to others on leaderboards."""
        return service.set_privacy(runtime(), current_principal(), body["hidden"])
