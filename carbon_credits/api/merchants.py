"""/v1/merchant: a merchant's own rewards, their voucher codes and redemptions."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint, body_bytes, decode_json
from carbon_credits.errors import UnsupportedMedia
from carbon_credits.rewards import catalogue, redemptions, vouchers
from carbon_credits.schemas.examples import (
    CODES_EXAMPLE,
    FULFILMENT_EXAMPLE,
    REWARD_EDIT_EXAMPLE,
    REWARD_EXAMPLES,
)
from carbon_credits.schemas.rewards import (
    CodesInSchema,
    CodesUploadedSchema,
    FulfilmentInSchema,
    MerchantRedemptionListSchema,
    MerchantRedemptionSchema,
    MerchantRewardListSchema,
    MerchantRewardSchema,
    RewardEditSchema,
    RewardInSchema,
    VoucherUsedSchema,
)

blp = Blueprint("merchants", __name__, url_prefix="/v1/merchant",
                description="Merchants' rewards")


@blp.route("/rewards")
class MerchantRewards(MethodView):
    @requires("merchant")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, MerchantRewardListSchema)
    def get(self) -> dict[str, Any]:
        """List your rewards."""
        return {"items": catalogue.merchant_list(runtime(), current_principal())}

    @requires("merchant")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(RewardInSchema, examples=REWARD_EXAMPLES)
    @blp.response(201, MerchantRewardSchema)
    def post(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Offer a reward; it waits for an admin's approval before users see it."""
        return catalogue.create(runtime(), current_principal(), data), 201


@blp.route("/rewards/<int:reward_id>")
class MerchantReward(MethodView):
    @requires("merchant")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, MerchantRewardSchema)
    def get(self, reward_id: int) -> dict[str, Any]:
        """Show one of your rewards and its review."""
        return catalogue.merchant_get(runtime(), current_principal(), reward_id)

    @requires("merchant")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(RewardEditSchema, example=REWARD_EDIT_EXAMPLE)
    @blp.response(200, MerchantRewardSchema)
    def patch(self, data: dict[str, Any], reward_id: int) -> dict[str, Any]:
        """Change one of your rewards; it goes back to review."""
        return catalogue.edit(runtime(), current_principal(), reward_id, data)


@blp.route("/rewards/<int:reward_id>/codes")
class Codes(MethodView):
    @requires("merchant")
    @blp.doc(security=[{"bearerAuth": []}], requestBody={
        "required": True,
        "description": "the codes, as JSON or as CSV (the first column; a 'code' header "
                       "row is skipped); repeated or existing codes are refused",
        "content": {"application/json": {"schema": CodesInSchema, "example": CODES_EXAMPLE},
                    "text/csv": {"schema": {"type": "string"}}}})
    @blp.response(201, CodesUploadedSchema)
    def post(self, reward_id: int) -> tuple[dict[str, Any], int]:
        """Upload voucher codes to a pool reward of yours."""
        if request.mimetype not in ("application/json", "text/csv"):
            raise UnsupportedMedia("send the codes as application/json or text/csv",
                                   fields={"Content-Type": ["expected JSON or CSV"]})
        raw = body_bytes(request)
        codes = (vouchers.pool_from_csv(raw) if request.mimetype == "text/csv"
                 else vouchers.pool_from_json(decode_json(raw)))
        return vouchers.upload(runtime(), current_principal(), reward_id, codes), 201


@blp.route("/rewards/<int:reward_id>/redemptions")
class RewardRedemptions(MethodView):
    @requires("merchant")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, MerchantRedemptionListSchema)
    def get(self, reward_id: int) -> dict[str, Any]:
        """List the redemptions of one of your rewards, newest first (users by pseudonym)."""
        return {"items": redemptions.for_merchant(runtime(), current_principal(), reward_id)}


@blp.route("/vouchers/<string:code>/use")
class VoucherUse(MethodView):
    @requires("merchant")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, VoucherUsedSchema)
    @blp.alt_response(409, description="the code was already used, or its redemption "
                                       "cancelled")
    def post(self, code: str) -> dict[str, Any]:
        """Mark a voucher code of your reward used (once)."""
        return vouchers.mark_used(runtime(), current_principal(), code)


@blp.route("/redemptions/<int:redemption>/fulfilment")
class Fulfilment(MethodView):
    @requires("merchant")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(FulfilmentInSchema, example=FULFILMENT_EXAMPLE)
    @blp.response(200, MerchantRedemptionSchema)
    def post(self, data: dict[str, Any], redemption: int) -> dict[str, Any]:
        """Move a physical good on: pending -> shipped -> delivered, or cancel a pending one
        you cannot send. Shipping spends the points its redemption held (409
        `hold_not_covered` when a reversal left the user's balance short of them);
        cancelling releases them."""
        return redemptions.ship(runtime(), current_principal(), redemption, data["state"])
