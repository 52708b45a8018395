"""/v1/admin/webhooks: client platforms' endpoints, their deliveries, replays."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.schemas.examples import REPLAY_EXAMPLE, WEBHOOK_EXAMPLE
from carbon_credits.schemas.webhooks import (
    DeliveryListSchema,
    DeliveryQuerySchema,
    DeliverySchema,
    ReplayInSchema,
    WebhookCreatedSchema,
    WebhookInSchema,
    WebhookListSchema,
)
from carbon_credits.webhooks import endpoints

blp = Blueprint("webhooks", __name__, url_prefix="/v1/admin/webhooks",
                description="Webhooks to client platforms")


@blp.route("")
class Webhooks(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(WebhookInSchema, example=WEBHOOK_EXAMPLE)
    @blp.response(201, WebhookCreatedSchema)
    def post(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Register a client platform's endpoint; its signing secret is answered once."""
        return endpoints.register(runtime(), current_principal(), data), 201

    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, WebhookListSchema)
    def get(self) -> dict[str, Any]:
        """List the endpoints."""
        return {"items": endpoints.list_all(runtime())}


@blp.route("/deliveries")
class Deliveries(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(DeliveryQuerySchema, location="query")
    @blp.response(200, DeliveryListSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List deliveries, newest first: state, attempts, last answer."""
        return {"items": endpoints.deliveries(runtime(), query["endpoint_id"], query["state"],
                                              query["limit"])}


@blp.route("/<string:endpoint_id>/deliveries/<string:delivery_id>/replay")
class Replay(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ReplayInSchema, example=REPLAY_EXAMPLE)
    @blp.response(200, DeliverySchema)
    def post(self, data: dict[str, Any], endpoint_id: str, delivery_id: str
             ) -> dict[str, Any]:
        """Send a delivery again with the same delivery id; audited."""
        return endpoints.replay(runtime(), current_principal(), endpoint_id, delivery_id,
                                data["reason"])
