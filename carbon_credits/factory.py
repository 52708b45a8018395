"""The Flask application factory: ``create_app`` builds the app and its extensions."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import redis
from flask import Blueprint, Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from carbon_credits import cli
from carbon_credits.account import hooks as account_hooks
from carbon_credits.account import personal_data as account_data
from carbon_credits.antifraud import personal_data as antifraud_data
from carbon_credits.antifraud.ratelimit import Limiter, LocalLimiter, RedisLimiter
from carbon_credits.api import i18n, register_blueprints
from carbon_credits.api import metrics as api_metrics
from carbon_credits.api.errors import register_error_handlers
from carbon_credits.api.extensions import JsonErrorApi
from carbon_credits.api.requests import drain_unread_body
from carbon_credits.badges import personal_data as badges_data
from carbon_credits.campaigns import personal_data as campaigns_data
from carbon_credits.campaigns import progress
from carbon_credits.config import Config
from carbon_credits.ingest import events
from carbon_credits.ingest import personal_data as ingest_data
from carbon_credits.ingest.group_commit import GroupCommit
from carbon_credits.leaderboards import personal_data as leaderboards_data
from carbon_credits.leaderboards import rebuild as leaderboards_rebuild
from carbon_credits.leaderboards import service as leaderboard_service
from carbon_credits.leaderboards.store import MemoryStore, RedisStore
from carbon_credits.ledger import chain, hooks
from carbon_credits.ledger import personal_data as ledger_data
from carbon_credits.networks.catalog import Catalog
from carbon_credits.privacy import personal_data as privacy_data
from carbon_credits.providers import personal_data as providers_data
from carbon_credits.rewards import personal_data as rewards_data
from carbon_credits.runtime import Runtime
from carbon_credits.setup import init_db
from carbon_credits.storage.db import Database
from carbon_credits.teams import personal_data as teams_data
from carbon_credits.tokens import TokenCodec
from carbon_credits.webhooks import delivery, outbox
from carbon_credits.webhooks import personal_data as webhooks_data

REDIS_TIMEOUT_S = 0.5
"""Redis calls sit on the ingest path: fail fast and apply the failure policy."""

PERSONAL_DATA = (privacy_data, ledger_data, ingest_data, antifraud_data, providers_data,
                 rewards_data, account_data, badges_data, leaderboards_data, teams_data,
                 campaigns_data, webhooks_data)
"""The features' personal-data holders (each module registers its own with
``privacy.registry`` when imported): a feature with a table of users' rows adds its module
here (GET /v1/me/export and erasure cover it then; tests/security/
test_personal_data_registry.py fails for a table with a user key that none covers)."""

SWAGGER_UI_ASSETS = "/docs/assets/"
"""Where /docs loads Swagger UI's script and style from: this app, not a CDN, so the docs
work on an intranet with no internet access."""


def create_app(config: Config | None = None) -> Flask:
    app = Flask("carbon_credits", instance_path=str(Path.cwd() / "instance"),
                instance_relative_config=False)
    config = config or Config.from_env(Path(app.instance_path))
    register_extensions(app, config)
    if config.proxy_fix_x_for or config.proxy_fix_x_proto or config.proxy_fix_x_host:
        # The client's address from the X-Forwarded-For the trusted proxies wrote (the rate
        # limits count by it; Config.proxy_fix_x_for says why it is off by default), and
        # the scheme and host the client used (X-Forwarded-Proto, -Host): a provider's
        # signature covers the URI it sent (@target-uri), not the one nginx sent on.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=config.proxy_fix_x_for, x_proto=config.proxy_fix_x_proto,
            x_host=config.proxy_fix_x_host, x_port=0, x_prefix=0)
    register_error_handlers(app)
    app.teardown_request(drain_unread_body)
    api_metrics.init_app(app)
    cli.register(app)
    if config.auto_init_db:
        rt = app.extensions["carbon_credits"]
        init_db(rt.db, config.default_city)
        if isinstance(rt.leaderboards, MemoryStore):
            # The embedded default keeps its boards in process: fill them from the ledger
            # at start, as `flask rebuild-leaderboards` would (a development database).
            for city in leaderboards_rebuild.cities(rt):
                leaderboards_rebuild.rebuild(rt, city)
    return app


def register_extensions(app: Flask, config: Config) -> None:
    app.config.update(
        TESTING=config.testing,
        MAX_CONTENT_LENGTH=config.max_content_length,
        API_TITLE="Carbon credits (碳普惠) API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=SWAGGER_UI_ASSETS,
        # null, not the default validator.swagger.io: Swagger UI would otherwise send the
        # spec's address to that host for a badge, which an intranet cannot reach.
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": None},
        API_SPEC_OPTIONS={"components": {"securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            # OpenAPI 3.0 has no scheme for RFC 9421; the README's "Scenario providers"
            # says how to sign.
            "httpSignature": {
                "type": "apiKey", "in": "header", "name": "Signature",
                "description": "HTTP Message Signatures (RFC 9421) covering \"@method\", "
                               "\"@target-uri\" and \"content-digest\" (RFC 9530), with "
                               "created, keyid and nonce; Signature-Input and "
                               "Content-Digest are sent with it"}}}},
    )
    # Every ledger write path hashes under these keys (ledger/chain.py: process-wide).
    chain.use_keyring(chain.Keyring(config.ledger_chain_keyring()))
    # What the crediting paths run in their unit of work besides the credit (ledger/hooks.py).
    hooks.install([account_hooks.HOOK, progress.HOOK, outbox.HOOK, leaderboard_service.HOOK])
    # First of the request hooks: every answer after it, errors too, is in the request's
    # language.
    i18n.init_app(app, config)
    db = Database()
    db.configure(config.database_url, lock_timeout_ms=config.db_lock_timeout_ms)
    db.configure_reports(config.reports_database_url, config.db_lock_timeout_ms,
                         config.reports_max_lag_s, config.reports_fallback_primary)
    client = (redis.Redis.from_url(config.redis_url, socket_timeout=REDIS_TIMEOUT_S,
                                   socket_connect_timeout=REDIS_TIMEOUT_S)
              if config.redis_url else None)
    limiter: Limiter = RedisLimiter(client) if client is not None else LocalLimiter()
    app.extensions["carbon_credits"] = Runtime(
        config=config, db=db, catalog=Catalog(), limiter=limiter,
        codec=TokenCodec(config), redis=client,
        posts=GroupCommit(max_group=events.ITEMS_PER_TRANSACTION),
        leaderboards=RedisStore(client) if client is not None else MemoryStore())
    # Committed webhook deliveries go to this app's job queue (webhooks/outbox.py).
    outbox.use_sender(delivery.sender(app.extensions["carbon_credits"]))
    # One Api per app: flask-smorest keeps the OpenAPI spec on the Api object.
    api = JsonErrorApi(app)
    register_blueprints(api)
    app.register_blueprint(swagger_ui_assets())


def swagger_ui_assets() -> Blueprint:
    """Swagger UI's dist files as shipped in the flask-swagger-ui wheel (kept in step with
    swagger-ui releases), served as static files under ``SWAGGER_UI_ASSETS``. flask-smorest
    renders the /docs page itself; only the files come from that package."""
    dist = Path(str(files("flask_swagger_ui").joinpath("dist")))
    return Blueprint("swagger_ui_assets", __name__, static_folder=dist,
                     static_url_path=SWAGGER_UI_ASSETS.rstrip("/"))
