"""The privacy notice, /v1/me/consents, /v1/me/export and DELETE /v1/me (PIPL rights)."""

from __future__ import annotations

from typing import Any

from flask import Response, make_response
from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint, limit_rate
from carbon_credits.errors import NotFound
from carbon_credits.leaderboards import service as leaderboards
from carbon_credits.ledger import chain
from carbon_credits.privacy import consents, erasure, export
from carbon_credits.privacy.notices import NOTICES
from carbon_credits.schemas.privacy import (
    ConsentInSchema,
    ConsentSchema,
    ConsentStatusSchema,
    ErasureInSchema,
    ErasureSchema,
    ExportSchema,
    NoticeQuerySchema,
    NoticeSchema,
)

blp = Blueprint("privacy", __name__, url_prefix="/v1",
                description="Your personal data: consent, export, erasure")


@blp.route("/privacy-notice")
class Notice(MethodView):
    @blp.arguments(NoticeQuerySchema, location="query")
    @blp.response(200, NoticeSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Show the privacy notice users consent to (by default the version events
        require), in zh-CN and English."""
        required = runtime().config.privacy_notice_version
        notice = NOTICES.get(query["version"] or required)
        if notice is None:
            raise NotFound(f"no privacy notice version {query['version']!r}")
        return {"version": notice.version, "published": notice.published,
                "required": notice.version == required, "texts": notice.texts}


def _status() -> dict[str, Any]:
    rt, principal = runtime(), current_principal()
    return consents.status(rt.db, principal.sub, rt.config.privacy_notice_version,
                           rt.config.consent_required_in(
                               principal.city or rt.config.default_city))


@blp.route("/me/consents")
class Consents(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, ConsentStatusSchema)
    def get(self) -> dict[str, Any]:
        """Show your consent to the privacy notice and its history."""
        return _status()

    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ConsentInSchema, example={"notice_version": "2026-12"})
    @blp.response(201, ConsentSchema)
    @blp.alt_response(200, schema=ConsentSchema,
                      description="already given to that version: the standing acceptance")
    def post(self, data: dict[str, Any]) -> Response:
        """Accept the privacy notice's current version: your events are accepted from now
        on. Recorded with its time."""
        rt = runtime()
        consent, new = consents.accept(rt.db, current_principal().sub, data["notice_version"],
                                       rt.config.privacy_notice_version)
        return make_response(ConsentSchema().dump(consent), 201 if new else 200)

    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, ConsentStatusSchema)
    def delete(self) -> dict[str, Any]:
        """Withdraw your consent: your events are refused from now on (what is stored stays
        until you erase it). Recorded with its time; withdrawing again records nothing."""
        consents.withdraw(runtime().db, current_principal().sub)
        return _status()


EXPORTS = "exports"
"""The rate-limited route of exports (RATE_LIMITS)."""


@blp.route("/me/export")
class Export(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, ExportSchema)
    def get(self) -> dict[str, Any]:
        """Download everything held about you, as JSON: your account, events (with their
        explanations), ledger entries, redemptions, devices, bindings and consents.
        Rate-limited (5 an hour by default)."""
        limit_rate(EXPORTS)
        rt = runtime()
        return export.export(rt.db, current_principal().sub,
                             {"catalog": rt.catalog, "config": rt.config})


def _erase(user_id: str, actor: str, reason: str) -> dict[str, Any]:
    rt = runtime()
    cities = leaderboards.cities_of(rt, user_id)  # read before the rows move
    erased = erasure.erase(rt.db, user_id, chain.keyring().keys, actor, reason,
                           {"catalog": rt.catalog, "config": rt.config}, rt.erased)
    leaderboards.forget(rt, user_id, cities)  # the boards, after the commit
    return erased.view()


@blp.route("/me")
class Me(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, ErasureSchema)
    def delete(self) -> dict[str, Any]:
        """Erase your account: your identifiers and trip details are deleted or replaced by
        a random pseudonym (README "Erasure" lists what is kept, without you), and your
        tokens stop working. Cannot be undone."""
        return _erase(current_principal().sub, "self",
                      "erasure requested by the user (DELETE /v1/me)")


@blp.route("/admin/users/<string:user_id>/erasure")
class AdminErasure(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ErasureInSchema, example={"reason": "PIPL deletion request #2026-118"})
    @blp.response(200, ErasureSchema)
    def post(self, data: dict[str, Any], user_id: str) -> dict[str, Any]:
        """Erase a user (e.g. a deletion request made by phone), with a reason; audited
        under the pseudonym. Erasing again answers the first erasure."""
        return _erase(user_id, current_principal().sub, data["reason"])
