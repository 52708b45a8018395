"""/v1/admin/trust-policies: whose word credits a city's trips of each mode."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.schemas.examples import TRUST_POLICY_EXAMPLES
from carbon_credits.schemas.trust import (
    TrustPolicyInSchema,
    TrustPolicyListSchema,
    TrustPolicySchema,
)
from carbon_credits.tuning import trust_policies

blp = Blueprint("trust_policies", __name__, url_prefix="/v1/admin/trust-policies",
                description="Trust policies: client posts, operator records, or both")


@blp.route("/<string:city>")
class CityPolicies(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, TrustPolicyListSchema)
    def get(self, city: str) -> dict[str, Any]:
        """Each mode's trust policy in a city (``client`` where none was set)."""
        return {"items": trust_policies.list_policies(runtime(), city)}


@blp.route("/<string:city>/<string:mode>")
class ModePolicy(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(TrustPolicyInSchema, examples=TRUST_POLICY_EXAMPLES)
    @blp.response(200, TrustPolicySchema)
    def put(self, data: dict[str, Any], city: str, mode: str) -> dict[str, Any]:
        """Set a city's trust policy for a mode; audited.

        ``client``: the user's app is believed; ``operator_confirms``: a client post is
        held until a scenario provider's record of the same trip arrives (then credited
        once, with the provider's figures), and rejected (``not_confirmed``) after
        ``confirm_days``; ``operator_only``: client posts of the mode are refused."""
        return trust_policies.set_policy(runtime(), current_principal(), city, mode, data)
