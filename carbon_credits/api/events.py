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
    limit_rate,
    rate_checks,
    rate_headers,
)
from carbon_credits.ingest import events
from carbon_credits.schemas import (
    BATCH_EXAMPLE,
    EVENT_EXAMPLES,
    EVENT_SCHEMAS,
    BatchResultSchema,
    BatchSchema,
    EventResultSchema,
    load_event,
)

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
        rt = runtime()
        principal = current_principal()
        try:
            posted = events.prepare(rt, principal, load_event(json_body()), device_id())
        except Exception:
            # Refused before it could be applied: it still counts against the limits, and
            # a client over them is told that first (429, not the refusal).
            limit_rate("events")
            raise
        # The limits of an event that can be applied are checked with the posts it is
        # applied with, in one call to the limiter (ingest/events.py).
        result = events.ingest_prepared(rt, posted, rate_checks("events"))
        if result.limit is not None:
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
        rt = runtime()
        principal = current_principal()
        limit_rate("events", cost=max(1, len(batch["events"])))
        return {"results": events.ingest_batch(rt, principal, batch["events"], device_id())}


@blp.route("/<string:event_id>")
class EventItem(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, EventResultSchema)
    def get(self, event_id: str) -> dict[str, Any]:
        """Show one of your events with its full explanation."""
        return events.get_event(runtime(), current_principal(), event_id)
