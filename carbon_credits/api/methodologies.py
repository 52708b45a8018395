"""GET /v1/methodologies."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.networks import methodologies
from carbon_credits.schemas import MethodologyListSchema, MethodologyQuerySchema

blp = Blueprint("methodologies", __name__, url_prefix="/v1/methodologies",
                description="How events become grams")


@blp.route("")
class MethodologyList(MethodView):
    @blp.arguments(MethodologyQuerySchema, location="query")
    @blp.response(200, MethodologyListSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List each mode's factors in force now, with units and sources."""
        rt = runtime()
        return methodologies.current(rt, query["city"] or rt.config.default_city)
