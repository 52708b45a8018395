"""GET /v1/me/account and /v1/me/ledger."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.ledger import settlement, statements
from carbon_credits.schemas import (
    AccountQuerySchema,
    AccountSchema,
    ClaimSchema,
    LedgerPageSchema,
    LedgerQuerySchema,
)

blp = Blueprint("me", __name__, url_prefix="/v1/me", description="Your points")


@blp.route("/account")
class AccountView(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(AccountQuerySchema, location="query")
    @blp.response(200, AccountSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Show your balance, lifetime totals, today's use of each daily cap and, under
        `day`, that of the day asked for with `date` (a past day within the backfill
        window; default today)."""
        return statements.account_view(runtime(), current_principal(), query["date"])


@blp.route("/claims")
class Claims(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, ClaimSchema)
    def post(self) -> dict[str, Any]:
        """Claim your settled points (cities with a claim window, CLAIM_DAYS); points left
        unclaimed past the window lapse. Claiming again claims nothing more."""
        return settlement.claim(runtime(), current_principal())


@blp.route("/ledger")
class LedgerView(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(LedgerQuerySchema, location="query")
    @blp.response(200, LedgerPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List your ledger entries, newest first (cursor pagination)."""
        return statements.ledger_page(runtime(), current_principal(), query["limit"],
                                    query["cursor"])
