"""/v1/admin: reversals and the audit log."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from flask import request
from flask.views import MethodView
from marshmallow import ValidationError

from carbon_credits import audit
from carbon_credits.antifraud import reviews
from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.errors import InvalidInput, UnsupportedMedia
from carbon_credits.ledger import reversals
from carbon_credits.networks import gtfs_import
from carbon_credits.schemas import (
    ID,
    AuditPageSchema,
    AuditQuerySchema,
    DecisionInSchema,
    EventResultSchema,
    FactorVersionInSchema,
    FactorVersionListSchema,
    FactorVersionQuerySchema,
    FactorVersionSchema,
    FrozenSchema,
    NetworkImportQuerySchema,
    NetworkImportSchema,
    PreviewInSchema,
    PreviewSchema,
    ReversalInSchema,
    ReviewPageSchema,
    ReviewQuerySchema,
)
from carbon_credits.schemas.examples import (
    FREEZE_EXAMPLES,
    REVERSAL_EXAMPLE,
    REVIEW_EXAMPLES,
    factor_version_examples,
    preview_examples,
)
from carbon_credits.tuning import factor_versions

blp = Blueprint("admin", __name__, url_prefix="/v1/admin", description="Administration")


@blp.route("/users/<string:user_id>/events/<string:event_id>/reversal")
class Reversal(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ReversalInSchema, example=REVERSAL_EXAMPLE)
    @blp.response(201, EventResultSchema)
    def post(self, data: dict[str, Any], user_id: str, event_id: str) -> tuple[dict[str, Any],
                                                                               int]:
        """Reverse an event's credit with a reason (fraud found later); audited."""
        return reversals.reverse_event(runtime(), current_principal(), user_id, event_id,
                                       data["reason"]), 201


@blp.route("/audit")
class AuditLog(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, AuditPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List admin actions, newest first."""
        return {"items": audit.page(runtime(), query["limit"], query["before_id"])}


@blp.route("/factor-versions")
class FactorVersions(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(FactorVersionQuerySchema, location="query")
    @blp.response(200, FactorVersionListSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List a city's factor versions per mode, oldest first."""
        return {"items": factor_versions.list_versions(runtime(), query["city"],
                                                       query["mode"])}

    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(FactorVersionInSchema, examples=factor_version_examples())
    @blp.response(201, FactorVersionSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create an immutable factor version; audited.

        It starts at a future instant, at least the clock skew + 60 s ahead and after every
        existing version; a city's first version of a mode may start at any instant, the
        past included, while no event of that city and mode is stored.
        """
        return factor_versions.create_version(runtime(), current_principal(), data)


@blp.route("/factor-versions/preview")
class FactorPreview(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(PreviewInSchema, examples=preview_examples())
    @blp.response(200, PreviewSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Show what draft factors would have given a past window's events; writes nothing."""
        return factor_versions.preview(runtime(), data)


@blp.route("/reviews")
class ReviewQueue(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ReviewQuerySchema, location="query")
    @blp.response(200, ReviewPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List held events awaiting a decision, oldest first."""
        return {"items": reviews.queue(runtime(), query["limit"], query["after_id"],
                                       current_principal().sub)}


@blp.route("/reviews/<string:user_id>/<string:event_id>/<any(approve, reject):decision>")
class ReviewDecision(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(DecisionInSchema, examples=REVIEW_EXAMPLES)
    @blp.response(200, EventResultSchema)
    def post(self, data: dict[str, Any], user_id: str, event_id: str,
             decision: str) -> dict[str, Any]:
        """Approve (credit it now, through the ledger) or reject a held event; audited."""
        return reviews.decide(runtime(), current_principal(), user_id, event_id,
                              decision == "approve", data["reason"])


@blp.route("/users/<string:user_id>/<any(freeze, unfreeze):action>")
class Freeze(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(DecisionInSchema, examples=FREEZE_EXAMPLES)
    @blp.response(200, FrozenSchema)
    def post(self, data: dict[str, Any], user_id: str, action: str) -> dict[str, Any]:
        """Freeze a user (their new events are held) or unfreeze them; audited."""
        return reviews.set_frozen(runtime(), current_principal(), user_id,
                                  action == "freeze", data["reason"])


MAX_FEED_BYTES = 64 << 20
"""A city's GTFS zip is tens of MB; larger feeds go through `flask --app app import-gtfs`."""


@blp.before_request
def _feed_body_limit() -> None:
    """The feed upload's own body limit, set before the view's checks: an answer given
    before the body is read (401, 403, 415) drains it up to this limit, not the app's
    1 MiB, so the connection nginx pools stays usable (api/requests.py
    ``drain_unread_body``; a body left unread there came back from nginx as a 502)."""
    if request.endpoint == f"{blp.name}.{NetworkImport.__name__}":
        request.max_content_length = MAX_FEED_BYTES


@blp.route("/networks/<string:city>")
class NetworkImport(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}], requestBody={
        "required": True, "description": "a GTFS feed as a zip file",
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}})
    @blp.arguments(NetworkImportQuerySchema, location="query")
    @blp.response(201, NetworkImportSchema)
    def post(self, query: dict[str, Any], city: str) -> tuple[dict[str, Any], int]:
        """Import a GTFS zip as the city's newest network version (all or nothing); audited."""
        try:
            ID(city)
        except ValidationError:
            raise InvalidInput("invalid city", fields={"city": ["not a city id"]}) from None
        if request.mimetype not in ("application/zip", "application/x-zip-compressed"):
            raise UnsupportedMedia("send the GTFS feed as application/zip",
                                   fields={"Content-Type": ["expected application/zip"]})
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "feed.zip"
            with path.open("wb") as out:
                shutil.copyfileobj(request.stream, out, 1 << 20)
            summary = gtfs_import.import_gtfs(runtime().db, city, path, query["version"],
                                           actor=current_principal().sub,
                                           reason=query["reason"])
        return summary, 201
