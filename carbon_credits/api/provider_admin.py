"""/v1/admin/providers: scenario providers, their keys, enabling and disabling; audited."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from carbon_credits.api.auth import current_principal, requires
from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import Blueprint
from carbon_credits.providers import registry
from carbon_credits.schemas.examples import (
    PROVIDER_ENABLE_EXAMPLES,
    PROVIDER_EXAMPLE,
    PROVIDER_KEY_EXAMPLES,
    PROVIDER_KEY_REVOKE_EXAMPLE,
)
from carbon_credits.schemas.providers import (
    KeyCreatedSchema,
    KeyInSchema,
    KeySchema,
    ProviderInSchema,
    ProviderListSchema,
    ProviderReasonInSchema,
    ProviderSchema,
)

blp = Blueprint("provider_admin", __name__, url_prefix="/v1/admin/providers",
                description="Scenario providers (administration)")


@blp.route("")
class Providers(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, ProviderListSchema)
    def get(self) -> dict[str, Any]:
        """List scenario providers with their keys (never a secret)."""
        return {"items": registry.list_all(runtime())}

    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ProviderInSchema, example=PROVIDER_EXAMPLE)
    @blp.response(201, ProviderSchema)
    def post(self, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Register a scenario provider (enabled, no key yet); audited."""
        return registry.register(runtime(), current_principal().sub, provider_id=data["id"],
                                 name=data["name"], city=data["city"], modes=data["modes"],
                                 reason=data["reason"]), 201


@blp.route("/<string:provider_id>")
class ProviderView(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, ProviderSchema)
    def get(self, provider_id: str) -> dict[str, Any]:
        """Show a provider and its keys."""
        return registry.show(runtime(), provider_id)


@blp.route("/<string:provider_id>/keys")
class ProviderKeys(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(KeyInSchema, examples=PROVIDER_KEY_EXAMPLES)
    @blp.response(201, KeyCreatedSchema)
    def post(self, data: dict[str, Any], provider_id: str) -> tuple[dict[str, Any], int]:
        """Add a signing key: an HMAC-SHA256 secret (generated, shown in this answer only)
        or the provider's Ed25519 public key. Two may be active at once (rotation); a
        third is 409 until one is revoked. Audited, without the secret."""
        return registry.add_key(runtime(), current_principal().sub, provider_id,
                                algorithm=data["algorithm"], public_key=data["public_key"],
                                key_id=data["key_id"], reason=data["reason"]), 201


@blp.route("/<string:provider_id>/keys/<string:key_id>/revoke")
class ProviderKeyRevoke(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ProviderReasonInSchema, example=PROVIDER_KEY_REVOKE_EXAMPLE)
    @blp.response(200, KeySchema)
    def post(self, data: dict[str, Any], provider_id: str, key_id: str) -> dict[str, Any]:
        """Revoke a key: its signatures are refused from now on; audited."""
        return registry.revoke_key(runtime(), current_principal().sub, provider_id, key_id,
                                   data["reason"])


@blp.route("/<string:provider_id>/<any(enable, disable):action>")
class ProviderEnable(MethodView):
    @requires("admin")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ProviderReasonInSchema, examples=PROVIDER_ENABLE_EXAMPLES)
    @blp.response(200, ProviderSchema)
    def post(self, data: dict[str, Any], provider_id: str, action: str) -> dict[str, Any]:
        """Disable a provider (its signed requests are refused) or enable it again;
        audited."""
        return registry.set_enabled(runtime(), current_principal().sub, provider_id,
                                    action == "enable", data["reason"])
