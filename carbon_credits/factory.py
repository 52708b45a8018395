"""The Flask application factory: ``create_app`` builds the app and its extensions."""

from __future__ import annotations

from pathlib import Path

import redis
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from carbon_credits import cli, metrics
from carbon_credits.api import register_blueprints
from carbon_credits.api.requests import drain_unread_body
from carbon_credits.auth import TokenCodec
from carbon_credits.catalog import Catalog
from carbon_credits.config import Config
from carbon_credits.db import Database
from carbon_credits.errors import register_error_handlers
from carbon_credits.extensions import JsonErrorApi, Runtime
from carbon_credits.group_commit import GroupCommit
from carbon_credits.ratelimit import Limiter, LocalLimiter, RedisLimiter
from carbon_credits.services import events
from carbon_credits.services.setup import init_db

REDIS_TIMEOUT_S = 0.5
"""Redis calls sit on the ingest path: fail fast and apply the failure policy."""


def create_app(config: Config | None = None) -> Flask:
    app = Flask("carbon_credits", instance_path=str(Path.cwd() / "instance"),
                instance_relative_config=False)
    config = config or Config.from_env(Path(app.instance_path))
    register_extensions(app, config)
    if config.proxy_fix_x_for:
        # The client's address from the X-Forwarded-For the trusted proxies wrote (the rate
        # limits count by it); Config.proxy_fix_x_for says why it is off by default. Only
        # the address: nothing in the app builds URLs from the forwarded scheme or host.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=config.proxy_fix_x_for, x_proto=0, x_host=0, x_port=0,
            x_prefix=0)
    register_error_handlers(app)
    app.teardown_request(drain_unread_body)
    metrics.init_app(app)
    cli.register(app)
    if config.auto_init_db:
        init_db(app.extensions["carbon_credits"].db, config.default_city)
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
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        API_SPEC_OPTIONS={"components": {"securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}}},
    )
    db = Database()
    db.configure(config.database_url, lock_timeout_ms=config.db_lock_timeout_ms)
    client = (redis.Redis.from_url(config.redis_url, socket_timeout=REDIS_TIMEOUT_S,
                                   socket_connect_timeout=REDIS_TIMEOUT_S)
              if config.redis_url else None)
    limiter: Limiter = RedisLimiter(client) if client is not None else LocalLimiter()
    app.extensions["carbon_credits"] = Runtime(
        config=config, db=db, catalog=Catalog(), limiter=limiter,
        codec=TokenCodec(config), redis=client,
        posts=GroupCommit(max_group=events.ITEMS_PER_TRANSACTION))
    # One Api per app: flask-smorest keeps the OpenAPI spec on the Api object.
    api = JsonErrorApi(app)
    register_blueprints(api)
