"""HTTP handlers: parse with a schema, call one service function, dump with a schema."""

from __future__ import annotations

from typing import Any

from carbon_credits.api import (
    account,
    admin,
    badges,
    bindings,
    campaigns,
    dashboard,
    events,
    expiry_policies,
    health,
    leaderboards,
    me,
    merchants,
    methodologies,
    privacy,
    provider_admin,
    provider_records,
    redemptions,
    reports,
    rewards,
    teams,
    trust_policies,
    webhooks,
)
from carbon_credits.schemas import EVENT_SCHEMAS


def register_blueprints(api: Any) -> None:
    for schema in EVENT_SCHEMAS.values():
        # Named so that the oneOf request body of POST /v1/events can refer to them.
        api.spec.components.schema(type(schema).__name__.removesuffix("Schema"),
                                   schema=type(schema))
    for module in (events, me, account, badges, redemptions, rewards, merchants,
                   methodologies, reports, admin, trust_policies, expiry_policies, health,
                   dashboard, privacy, leaderboards, teams):
        api.register_blueprint(module.blp)
    api.register_blueprint(provider_admin.blp)
    api.register_blueprint(bindings.blp)
    api.register_blueprint(bindings.provider_blp)
    api.register_blueprint(provider_records.blp)
    api.register_blueprint(campaigns.blp)
    api.register_blueprint(webhooks.blp)
