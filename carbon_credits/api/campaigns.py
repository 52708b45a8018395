"""Campaigns: the admins' (/v1/admin/campaigns) and a user's progress (/v1/me/campaigns)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.campaigns import service
from carbon_credits.schemas.campaigns import (
    CampaignEndInSchema,
    CampaignInSchema,
    CampaignListSchema,
    CampaignQuerySchema,
    CampaignSchema,
    MyCampaignListSchema,
)
from carbon_credits.schemas.examples import CAMPAIGN_END_EXAMPLE, CAMPAIGN_EXAMPLE

blp = Blueprint("campaigns", __name__, url_prefix="/v1", description="Campaigns")


@blp.route("/admin/campaigns")
class Campaigns(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(CampaignInSchema, example=CAMPAIGN_EXAMPLE)
    @blp.response(201, CampaignSchema)
    def post(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Create a campaign (goal, bonus, budget, window, city); audited."""
        return service.create(runtime(), current_principal(), data), 201

    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(CampaignQuerySchema, location="query")
    @blp.response(200, CampaignListSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List campaigns with their spent budget."""
        return {"items": service.list_all(runtime(), query["city"])}


@blp.route("/admin/campaigns/<string:campaign_id>/end")
class CampaignEnd(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(CampaignEndInSchema, example=CAMPAIGN_END_EXAMPLE)
    @blp.response(200, CampaignSchema)
    def post(self, data: dict[str, Any], campaign_id: str) -> dict[str, Any]:
        """End a campaign early (later events do not count); audited."""
        return service.end(runtime(), current_principal(), campaign_id, data["reason"])


@blp.route("/me/campaigns")
class MyCampaigns(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, MyCampaignListSchema)
    def get(self) -> dict[str, Any]:
        """Your city's campaigns with your progress."""
        return {"items": service.mine(runtime(), current_principal())}
