"""Extensions created once without an app and bound in ``create_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import redis
from flask import Response, current_app
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from carbon_credits.antifraud.ratelimit import Limiter
from carbon_credits.auth import TokenCodec
from carbon_credits.config import Config
from carbon_credits.errors import http_exception_response
from carbon_credits.ingest.group_commit import GroupCommit
from carbon_credits.networks.catalog import Catalog
from carbon_credits.schemas import ErrorSchema
from carbon_credits.storage.db import Database
from carbon_credits.storage.models import utcnow

if TYPE_CHECKING:
    from carbon_credits.errors import ServiceError
    from carbon_credits.ingest.events import Ingested, Post


class JsonErrorApi(Api):  # type: ignore[misc]
    """flask-smorest's Api, answering HTTP errors in this service's one error shape."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> Response:
        return http_exception_response(error)



@dataclass
class Runtime:
    """Everything a service needs from the running app, passed explicitly."""

    config: Config
    db: Database
    catalog: Catalog
    limiter: Limiter
    codec: TokenCodec
    redis: redis.Redis | None
    posts: GroupCommit[Post, Ingested | ServiceError]
    """This process's single posts, applied in groups under load (``group_commit``)."""
    clock: Callable[[], datetime] = field(default=utcnow)
    """Business time: event windows, 'today', versions in force. Tests pin it."""


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["carbon_credits"]
    return rt
