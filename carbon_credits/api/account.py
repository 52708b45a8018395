"""GET /v1/me/carbon-account: the carbon account's first screen."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from carbon_credits.account import screen
from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.schemas.account import CarbonAccountSchema

blp = Blueprint("carbon_account", __name__, url_prefix="/v1/me",
                description="Your carbon account (碳账户)")


@blp.route("/carbon-account")
class CarbonAccountView(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, CarbonAccountSchema)
    def get(self) -> dict[str, Any]:
        """Show your carbon account: totals per mode, trends per day, week and month,
        everyday equivalents and your green-travel streak."""
        return screen.carbon_account(runtime(), current_principal())
