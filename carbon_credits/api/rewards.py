"""The rewards catalogue for users (/v1/rewards), their reward redemptions
(/v1/me/redemptions/{redemption_id}...) and the admins' review (/v1/admin/rewards)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.rewards import catalogue, certificates, redemptions
from carbon_credits.schemas import RedemptionSchema
from carbon_credits.schemas.examples import REWARD_REVIEW_EXAMPLES
from carbon_credits.schemas.rewards import (
    MerchantRewardListSchema,
    MerchantRewardSchema,
    ReviewQuerySchema,
    RewardDecisionInSchema,
    RewardListSchema,
    RewardSchema,
)

blp = Blueprint("rewards", __name__, url_prefix="/v1", description="Rewards catalogue")


@blp.route("/rewards")
class Catalogue(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, RewardListSchema)
    def get(self) -> dict[str, Any]:
        """List the rewards you may redeem now: approved, valid, in your city, in stock."""
        return {"items": catalogue.offered(runtime(), current_principal())}


@blp.route("/rewards/<int:reward_id>")
class CatalogueItem(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, RewardSchema)
    def get(self, reward_id: int) -> dict[str, Any]:
        """Show one approved reward of your city."""
        return catalogue.shown(runtime(), current_principal(), reward_id)


@blp.route("/me/redemptions/<string:redemption_id>")
class MyRedemption(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, RedemptionSchema)
    def get(self, redemption_id: str) -> dict[str, Any]:
        """Show a reward redemption of yours: its state and voucher codes."""
        return redemptions.show(runtime(), current_principal(), redemption_id)


@blp.route("/me/redemptions/<string:redemption_id>/cancellation")
class Cancellation(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, RedemptionSchema)
    @blp.alt_response(409, description="used voucher, shipped good, donation, or the "
                                       "cancellation window closed")
    def post(self, redemption_id: str) -> dict[str, Any]:
        """Cancel an unused voucher or unshipped good within the window: a voucher's points
        refunded, a good's held points released, stock back (once; cancelling again
        answers the same)."""
        return redemptions.cancel(runtime(), current_principal(), redemption_id)


@blp.route("/me/redemptions/<string:redemption_id>/certificate")
class Certificate(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}], responses={"200": {
        "description": "the donation certificate",
        "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
    def get(self, redemption_id: str) -> Response:
        """Download a donation's certificate (PDF) with its verification hash."""
        pdf, name = certificates.certificate(runtime(), current_principal(), redemption_id)
        return Response(pdf, mimetype="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="{name}"'})


@blp.route("/admin/rewards")
class ReviewQueue(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ReviewQuerySchema, location="query")
    @blp.response(200, MerchantRewardListSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List rewards by review status (default: awaiting review), oldest first."""
        return {"items": catalogue.review_queue(runtime(), query["status"])}


@blp.route("/admin/rewards/<int:reward_id>/<any(approve, reject):decision>")
class Review(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(RewardDecisionInSchema, examples=REWARD_REVIEW_EXAMPLES)
    @blp.response(200, MerchantRewardSchema)
    def post(self, data: dict[str, Any], reward_id: int, decision: str) -> dict[str, Any]:
        """Approve a reward (users see it from now) or reject it with a reason; audited."""
        return catalogue.review(runtime(), current_principal(), reward_id,
                                decision == "approve", data["reason"])
