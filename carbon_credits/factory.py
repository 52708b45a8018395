"""The Flask application factory: ``create_app`` builds the app and its extensions."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import redis
from flask import Blueprint, Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from carbon_credits import cli
from carbon_credits.antifraud.ratelimit import Limiter, LocalLimiter, RedisLimiter
from carbon_credits.api import i18n, register_blueprints
from carbon_credits.api import metrics as api_metrics
from carbon_credits.api.errors import register_error_handlers
from carbon_credits.api.extensions import JsonErrorApi
from carbon_credits.api.requests import drain_unread_body
from carbon_credits.config import Config
from carbon_credits.ingest import events
from carbon_credits.ingest.group_commit import GroupCommit
from carbon_credits.leaderboards import rebuild as leaderboards_rebuild
from carbon_credits.leaderboards.store import MemoryStore, RedisStore
from carbon_credits.ledger import chain
from carbon_credits.networks.catalog import Catalog
from carbon_credits.runtime import Runtime
from carbon_credits.setup import init_db
from carbon_credits.storage.db import Database
from carbon_credits.tokens import TokenCodec

REDIS_TIMEOUT_S = 0.5
"""Redis calls sit on the ingest path: fail fast and apply the failure policy."""

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
