"""GET /v1/reports/reduction and /v1/reports/verification: JSON, or CSV streamed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from flask import Response, request
from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint, limit_rate
from carbon_credits.reports import partner
from carbon_credits.reports import points as points_report
from carbon_credits.schemas.reports import (
    PointsQuerySchema,
    PointsReportSchema,
    ReductionQuerySchema,
    ReductionReportSchema,
    ReportRangeQuerySchema,
    VerificationReportSchema,
)

blp = Blueprint("reports", __name__, url_prefix="/v1/reports",
                description="Aggregate reductions for partners and verifiers")

_CSV = {"text/csv": {"schema": {"type": "string"}}}


def _json_or_csv(schema: type) -> dict[str, Any]:
    """The 200 of a report: JSON by default, CSV on request. (A ``responses`` doc replaces
    the content flask-smorest derives from ``@blp.response``, so both are named here.)"""
    return {"200": {"description": "the report",
                    "content": {"application/json": {"schema": schema}, **_CSV}}}


def wants_csv(query: dict[str, Any]) -> bool:
    """format=csv, or an Accept header preferring text/csv to JSON."""
    if query["format"] is not None:
        return bool(query["format"] == "csv")
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    return best == "text/csv"


def csv_response(lines: Iterator[str], name: str) -> Response:
    response = Response((line.encode() for line in lines), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    response.headers["Vary"] = "Accept"
    return response


def _name(kind: str, city: str, start: date, end: date) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in city)
    return f"{kind}-{safe}-{start.isoformat()}-{end.isoformat()}"


@blp.route("/reduction")
class Reduction(MethodView):
    @requires("partner", "admin")
    @blp.doc(security=[{"bearerAuth": []}], responses=_json_or_csv(ReductionReportSchema))
    @blp.arguments(ReductionQuerySchema, location="query")
    @blp.response(200, ReductionReportSchema)
    def get(self, query: dict[str, Any]) -> Response | dict[str, Any]:
        """Credited reduction of a city by day, week or month, optionally by mode, district
        and methodology version: grams, tonnes, points, events, distinct participants.

        Partners read their own city, with cells of fewer than k participants suppressed;
        admins any city. CSV with Accept: text/csv or format=csv (streamed).
        """
        rt = runtime()
        scope = partner.scope_for(rt, current_principal(), query["city"])
        limit_rate("reports")
        q = partner.ReductionQuery(query["from_"], query["to"], query["granularity"],
                                   tuple(query["group_by"]))
        if wants_csv(query):
            return csv_response(partner.reduction_csv(rt, scope, q),
                                _name("reduction", scope.city, q.start, q.end))
        return partner.reduction(rt, scope, q)


@blp.route("/verification")
class Verification(MethodView):
    @requires("partner", "admin")
    @blp.doc(security=[{"bearerAuth": []}],
             responses=_json_or_csv(VerificationReportSchema))
    @blp.arguments(ReportRangeQuerySchema, location="query")
    @blp.response(200, VerificationReportSchema)
    def get(self, query: dict[str, Any]) -> Response | dict[str, Any]:
        """Verification (MRV) export: per mode and methodology version, the factor as
        published, events, person-km (or steps), avoided and credited grams, and the
        recomputation check factor x activity.
        """
        rt = runtime()
        scope = partner.scope_for(rt, current_principal(), query["city"])
        limit_rate("reports")
        document = partner.verification(rt, scope, query["from_"], query["to"])
        if wants_csv(query):
            return csv_response(partner.verification_csv(document),
                                _name("verification", scope.city, query["from_"],
                                      query["to"]))
        return document


@blp.route("/points")
class Points(MethodView):
    @requires("partner", "admin")
    @blp.doc(security=[{"bearerAuth": []}], responses=_json_or_csv(PointsReportSchema))
    @blp.arguments(PointsQuerySchema, location="query")
    @blp.response(200, PointsReportSchema)
    def get(self, query: dict[str, Any]) -> Response | dict[str, Any]:
        """Points of a city per day, week or month for the city platform: earned, redeemed,
        refunded, net spent (to cancel upstream, Shenzhen's rule), expired, lapsed and
        reversed.

        Partners read their own city, admins any. CSV with Accept: text/csv or format=csv.
        """
        rt = runtime()
        scope = partner.scope_for(rt, current_principal(), query["city"])
        limit_rate("reports")
        document = points_report.points(rt, scope, query["from_"], query["to"],
                                        query["granularity"])
        if wants_csv(query):
            return csv_response(points_report.points_csv(document),
                                _name("points", scope.city, query["from_"], query["to"]))
        return document
