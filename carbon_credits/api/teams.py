"""Teams (admin: create, list; users: join, leave; the team report) and friend links."""

from __future__ import annotations

from typing import Any

from flask import Response, make_response
from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.schemas.examples import FRIEND_EXAMPLE, JOIN_EXAMPLE, TEAM_EXAMPLE
from carbon_credits.schemas.teams import (
    FriendRequestSchema,
    FriendSchema,
    JoinSchema,
    MembershipSchema,
    TeamCreateSchema,
    TeamQuerySchema,
    TeamReportQuerySchema,
    TeamReportSchema,
    TeamSchema,
)
from carbon_credits.teams import service

blp = Blueprint("teams", __name__, url_prefix="/v1", description="Teams and friends")


@blp.route("/admin/teams")
class AdminTeamsView(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(TeamCreateSchema, example=TEAM_EXAMPLE)
    @blp.response(201, TeamSchema)
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Create a team (a company, school or organisation) in a city, with an invite
        code; audited."""
        return service.create_team(runtime(), current_principal(), body["city"],
                                   body["name"], body["kind"], body["reason"]), 201

    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(TeamQuerySchema, location="query")
    @blp.response(200, TeamSchema(many=True))
    def get(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """List teams (of one city with `city`)."""
        return service.list_teams(runtime(), query["city"])


@blp.route("/me/teams")
class MyTeamsView(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, MembershipSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """List your teams (at most one per city)."""
        return service.my_teams(runtime(), current_principal())

    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(JoinSchema, example=JOIN_EXAMPLE)
    @blp.response(201, MembershipSchema)
    def post(self, body: dict[str, Any]) -> Response:
        """Join a team with its invite code (200 if you are in it already)."""
        joined, created = service.join(runtime(), current_principal(), body["invite_code"])
        return make_response(MembershipSchema().dump(joined), 201 if created else 200)


@blp.route("/me/teams/<string:city>")
class MyTeamView(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(204)
    def delete(self, city: str) -> None:
        """Leave your team in a city."""
        service.leave(runtime(), current_principal(), city)


@blp.route("/teams/<int:team_id>/report")
class TeamReportView(MethodView):
    @requires("user", "admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(TeamReportQuerySchema, location="query")
    @blp.response(200, TeamReportSchema)
    def get(self, query: dict[str, Any], team_id: int) -> dict[str, Any]:
        """A team's credited grams (its members, its city) by mode over local dates; rows
        of fewer than k members are suppressed, as in partner reports (admins see all)."""
        return service.report(runtime(), current_principal(), team_id, query["from_"],
                              query["to"])


@blp.route("/me/friends")
class FriendsView(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, FriendSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """List your friends and pending requests."""
        return service.friends(runtime(), current_principal())

    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(FriendRequestSchema, example=FRIEND_EXAMPLE)
    @blp.response(201, FriendSchema)
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Ask someone to be friends (accepts, if they asked you first)."""
        return service.request_friend(runtime(), current_principal(), body["user_id"]), 201


@blp.route("/me/friends/<string:user_id>/accept")
class AcceptFriendView(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, FriendSchema)
    def post(self, user_id: str) -> dict[str, Any]:
        """Accept a friend request."""
        return service.accept_friend(runtime(), current_principal(), user_id)


@blp.route("/me/friends/<string:user_id>")
class FriendView(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(204)
    def delete(self, user_id: str) -> None:
        """Remove a friend, or decline or withdraw a request."""
        service.remove_friend(runtime(), current_principal(), user_id)
