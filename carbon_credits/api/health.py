"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask.views import MethodView

from carbon_credits import health
from carbon_credits.api import metrics as api_metrics
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.errors import RETRY_AFTER_S
from carbon_credits.schemas import HealthSchema

blp = Blueprint("health", __name__, description="Operations")


@blp.route("/healthz")
class Liveness(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, Any]:
        """Answer if the process is alive (checks nothing else)."""
        return {"status": "ok", "checks": {}}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="a dependency is down")
    def get(self) -> Response | dict[str, Any]:
        """Answer 200 when the database (and Redis, if configured) respond. The reports
        replica (REPORTS_DATABASE_URL), if configured, is named too: unavailable or lagging,
        it makes the status "degraded" but not a 503, since taking this instance out of
        rotation would stop ingest and not mend the replica."""
        checks = health.check(runtime())
        vital = {k: v for k, v in checks.items() if k != health.REPORTS_CHECK}
        if all(v == "ok" for v in vital.values()):
            degraded = checks.get(health.REPORTS_CHECK, "ok") != "ok"
            return {"status": "degraded" if degraded else "ok", "checks": checks}
        response = jsonify({"status": "unavailable", "checks": checks})
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.doc(responses={"200": {"description": "Prometheus text format (version 0.0.4)",
                                "content": {"text/plain": {"schema": {"type": "string"}}}}})
    def get(self) -> Response:
        """Prometheus metrics of the whole server (every gunicorn worker): requests by route
        and status, events by mode and outcome, credited grams, rate-limit refusals, Redis
        fallbacks and dependency failures. Volumes only, no user data."""
        return api_metrics.exposition()
