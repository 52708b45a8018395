"""Badges: GET /v1/me/badges, and the admins' /v1/admin/badges (audited)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.badges import catalogue
from carbon_credits.schemas.badges import (
    BadgeEditSchema,
    BadgeInSchema,
    BadgeListSchema,
    BadgeRetireSchema,
    BadgeSchema,
    MyBadgesSchema,
)
from carbon_credits.schemas.examples import (
    BADGE_EDIT_EXAMPLES,
    BADGE_EXAMPLES,
    BADGE_RETIRE_EXAMPLES,
)

blp = Blueprint("badges", __name__, url_prefix="/v1", description="Badges (勋章)")


@blp.route("/me/badges")
class MyBadges(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, MyBadgesSchema)
    def get(self) -> dict[str, Any]:
        """List the badges you earned (with the event that earned each) and those open."""
        return catalogue.mine(runtime(), current_principal())


@blp.route("/admin/badges")
class Badges(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, BadgeListSchema)
    def get(self) -> dict[str, Any]:
        """List every badge, active and retired."""
        return {"items": catalogue.listing(runtime())}

    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(BadgeInSchema, examples=BADGE_EXAMPLES)
    @blp.response(201, BadgeSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a badge with a rule over users' credited history; audited."""
        return catalogue.create(runtime(), current_principal(), data)


@blp.route("/admin/badges/<string:code>")
class BadgeItem(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(BadgeEditSchema, examples=BADGE_EDIT_EXAMPLES)
    @blp.response(200, BadgeSchema)
    def patch(self, data: dict[str, Any], code: str) -> dict[str, Any]:
        """Edit a badge's names, descriptions or rule (a new version); audited."""
        return catalogue.edit(runtime(), current_principal(), code, data)


@blp.route("/admin/badges/<string:code>/retirement")
class BadgeRetirement(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(BadgeRetireSchema, examples=BADGE_RETIRE_EXAMPLES)
    @blp.response(200, BadgeSchema)
    def post(self, data: dict[str, Any], code: str) -> dict[str, Any]:
        """Retire a badge: no longer awarded, awards made stand; audited."""
        return catalogue.retire(runtime(), current_principal(), code, data["reason"])
