"""POST /v1/events and GET /v1/events/{event_id}."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from carbon_credits.api import device
from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.device import device_id
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import (
    Blueprint,
    json_body,
    rate_checks,
    rate_headers,
)
from carbon_credits.ingest import events
from carbon_credits.schemas import EVENT_SCHEMAS, BatchResultSchema, BatchSchema, EventResultSchema
from carbon_credits.schemas.examples import BATCH_EXAMPLE, EVENT_EXAMPLES

blp = Blueprint("events", __name__, url_prefix="/v1/events",
                description="Trips and steps in; grams and points out")

_EVENT_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"oneOf": [
        {"$ref": f"#/components/schemas/{type(schema).__name__.removesuffix('Schema')}"}
        for schema in EVENT_SCHEMAS.values()
    ]}, "examples": EVENT_EXAMPLES}},
}


@blp.route("")
class EventCollection(MethodView):
    @requires("user")
    @blp.doc(requestBody=_EVENT_BODY, security=[{"bearerAuth": []}],
             parameters=[device.PARAMETER])
    @blp.response(201, EventResultSchema, description="new event applied")
    @blp.alt_response(200, schema=EventResultSchema,
                      description="replay of an event_id already applied")
    def post(self) -> tuple[dict[str, Any], int]:
        """Post one bus ride, metro trip or day's step count."""
        rt, limits = runtime(), rate_checks(events.ROUTE)
        try:
            body, device = json_body(), device_id()
        except Exception as exc:
            events.count_refused(rt, limits, exc)
            raise
        result = events.post(rt, current_principal(), body, device, limits)
        rate_headers(result.limit)
        return result.event, 201 if result.created else 200


@blp.route("/batch")
class EventBatch(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}], parameters=[device.PARAMETER])
    @blp.arguments(BatchSchema, example=BATCH_EXAMPLE)
    @blp.response(200, BatchResultSchema)
    def post(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Post up to 500 events; each item succeeds or fails on its own."""
        results, decision = events.post_batch(runtime(), current_principal(),
                                              batch["events"], device_id(),
                                              rate_checks(events.ROUTE))
        rate_headers(decision)
        return {"results": results}


@blp.route("/<string:event_id>")
class EventItem(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, EventResultSchema)
    def get(self, event_id: str) -> dict[str, Any]:
        """Show one of your events with its full explanation."""
        return events.get_event(runtime(), current_principal(), event_id)
