"""POST /v1/me/redemptions."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.ledger import redemptions
from carbon_credits.rewards import redemptions as reward_redemptions
from carbon_credits.schemas import RedemptionInSchema, RedemptionSchema
from carbon_credits.schemas.examples import REDEMPTION_EXAMPLES

blp = Blueprint("redemptions", __name__, url_prefix="/v1/me/redemptions",
                description="Spend points")


@blp.route("")
class RedemptionCollection(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(RedemptionInSchema, examples=REDEMPTION_EXAMPLES)
    @blp.response(201, RedemptionSchema, description="points spent")
    @blp.alt_response(200, schema=RedemptionSchema,
                      description="replay of a redemption_id already applied")
    @blp.alt_response(409, description="insufficient points, or redemption_id reused with "
                                       "another payload; for a reward also: out_of_stock, "
                                       "reward_expired, reward_not_yet_valid, "
                                       "reward_not_approved, reward_other_city, "
                                       "over_user_limit")
    def post(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Spend points, or redeem a reward, once per redemption_id; never more than is
        available (a reward: its stock reserved and the points spent, or held until a
        physical good ships, in one transaction)."""
        if "reward_id" in data:
            result, created = reward_redemptions.redeem(runtime(), current_principal(), data)
        else:
            result, created = redemptions.redeem(runtime(), current_principal(), data)
        return result, 201 if created else 200
