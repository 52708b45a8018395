"""Consent: /v1/me/bindings (users) and /v1/provider/binding-codes (signed providers)."""

from __future__ import annotations

from typing import Any

from flask import Response, make_response
from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.provider_auth import SECURITY, current_provider, provider_required
from carbon_credits.api.requests import Blueprint
from carbon_credits.providers import bindings
from carbon_credits.schemas.examples import BINDING_CODE_EXAMPLE, BINDING_EXAMPLE
from carbon_credits.schemas.providers import (
    BindingCodeInSchema,
    BindingCodeSchema,
    BindingInSchema,
    BindingListSchema,
    BindingQuerySchema,
    BindingSchema,
)

blp = Blueprint("bindings", __name__, url_prefix="/v1/me/bindings",
                description="Your bindings to scenario providers")
provider_blp = Blueprint("provider", __name__, url_prefix="/v1/provider",
                         description="Scenario providers (signed requests, RFC 9421)")


@blp.route("")
class Bindings(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(BindingQuerySchema, location="query")
    @blp.response(200, BindingListSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List your active bindings (with `include_revoked`, the revoked ones too)."""
        return {"items": bindings.list_for(runtime(), current_principal(),
                                           query["include_revoked"])}

    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(BindingInSchema, example=BINDING_EXAMPLE)
    @blp.response(201, BindingSchema)
    @blp.alt_response(200, schema=BindingSchema,
                      description="the same code sent again by you: the binding it made")
    def post(self, data: dict[str, Any]) -> Response:
        """Bind your account to a provider with the one-time code it gave you: it may then
        report your trips, under its own reference of you."""
        binding, new = bindings.bind(runtime(), current_principal(), data["provider_id"],
                                     data["code"])
        return make_response(BindingSchema().dump(binding), 201 if new else 200)


@blp.route("/<string:provider_id>")
class Binding(MethodView):
    @requires("user")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, BindingSchema)
    def delete(self, provider_id: str) -> dict[str, Any]:
        """Revoke your binding to a provider: its records for you are refused from now on.
        The binding is kept, with the time of the revocation."""
        return bindings.revoke(runtime(), current_principal(), provider_id)


@provider_blp.route("/binding-codes")
class BindingCodes(MethodView):
    @provider_required
    @provider_blp.doc(security=SECURITY)
    @provider_blp.arguments(BindingCodeInSchema, example=BINDING_CODE_EXAMPLE)
    @provider_blp.response(201, BindingCodeSchema)
    def post(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Issue a one-time binding code for your reference of a user; the user enters it
        in the app to consent. Signed (RFC 9421), no bearer token."""
        return bindings.issue_code(runtime(), current_provider(), data["user_ref"]), 201
