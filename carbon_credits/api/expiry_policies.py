"""/v1/admin/expiry-policies: when a city's points expire."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.schemas.examples import EXPIRY_POLICY_EXAMPLES
from carbon_credits.schemas.expiry import (
    ExpiryPolicyInSchema,
    ExpiryPolicyListSchema,
    ExpiryPolicySchema,
)
from carbon_credits.tuning import expiry_policies

blp = Blueprint("expiry_policies", __name__, url_prefix="/v1/admin/expiry-policies",
                description="Points expiry: when a city's points expire")


@blp.route("/<string:city>")
class CityExpiry(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, ExpiryPolicyListSchema)
    def get(self, city: str) -> dict[str, Any]:
        """A city's expiry policy in force (``never`` where none was set) and its history."""
        return expiry_policies.show(runtime(), city)

    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ExpiryPolicyInSchema, examples=EXPIRY_POLICY_EXAMPLES)
    @blp.response(200, ExpiryPolicySchema)
    def put(self, data: dict[str, Any], city: str) -> dict[str, Any]:
        """Set a city's points expiry policy, for points earned from now on; audited.

        Points already earned keep the date the policy in force then gave them. The
        expiry job (`flask expire-points`, daily from cron) writes the 'expiry' entries."""
        return expiry_policies.set_policy(runtime(), current_principal(), city, data)
