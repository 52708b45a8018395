"""Every error answer in the one JSON shape: domain errors, HTTP aborts and dependency
failures (503 with Retry-After), mapped in one place."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, has_request_context, jsonify
from marshmallow import ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from carbon_credits import messages, metrics
from carbon_credits.api import i18n
from carbon_credits.errors import RETRY_AFTER_S, ServiceError, error_body, invalid_fields

log = logging.getLogger(__name__)


def error_response(
    status: int,
    code: str,
    message: str,
    fields: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> Response:
    if has_request_context():
        i18n.activate()
    response = jsonify({"error": error_body(code, message, fields, params)})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def http_exception_response(exc: HTTPException) -> Response:
    """Werkzeug and flask-smorest/webargs aborts in our shape (``exc.data`` holds fields)."""
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    fields: dict[str, Any] | None = None
    by_location = data.get("messages") if isinstance(data, dict) else None
    if isinstance(by_location, dict):
        # webargs nests by location ("json", "query"); clients want the field names.
        fields = {}
        for value in by_location.values():
            if isinstance(value, dict):
                fields.update(value)
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
            413: "payload_too_large", 415: "unsupported_media_type",
            422: "invalid_input"}.get(status, (exc.name or "error").lower().replace(" ", "_"))
    message = exc.description or exc.name or "error"
    if code not in messages.ERROR_TEMPLATES:
        if has_request_context():
            i18n.activate()
        message = messages.http_status_message(status, exc.name or "error", message)
    # Keep the exception's own headers (Allow on a 405, Retry-After on a 429/503).
    headers = {name: value for name, value in exc.get_headers()
               if name.lower() != "content-type"}
    return error_response(status, code, message, fields, headers)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service(exc: ServiceError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.fields, exc.headers,
                              exc.params)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        return _service(invalid_fields(exc.messages))

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)
    def _database(exc: OperationalError | InterfaceError | PoolTimeout) -> Response:
        # Connection loss, restart, lock timeout: the unit of work was rolled back whole.
        # (A ProgrammingError is a bug of ours, not an outage: it stays a plain 500, so
        # clients are not told to retry something that cannot succeed.)
        # (PoolTimeout: no pooled connection came free in time, an overload.)
        orig = getattr(exc, "orig", None)
        log.error("database unavailable: %s", type(orig).__name__ if orig else exc)
        metrics.DEPENDENCY_ERRORS.labels("database").inc()
        return error_response(503, "database_unavailable", "the database is unavailable; "
                              "retry with the same event_id", None,
                              {"Retry-After": str(RETRY_AFTER_S)})

    @app.errorhandler(DataError)
    def _data(exc: DataError) -> Response:
        # A value the database refuses (out of range, NUL byte): retrying cannot help, so
        # this is not the 503 of an unavailable database.
        log.warning("database refused a value: %s", type(exc.orig).__name__ if exc.orig else exc)
        return error_response(422, "invalid_value", "a value in the request is out of range "
                              "or cannot be stored")

    @app.errorhandler(OverflowError)
    def _overflow(exc: OverflowError) -> Response:
        # SQLite's driver refuses, while binding it, an integer beyond 64 bits that a client
        # sent (e.g. a page marker); PostgreSQL refuses the same value with the DataError
        # above. Any other overflow is a bug of ours and stays a 500.
        if "too large to convert to SQLite INTEGER" not in str(exc):
            return _unexpected(exc)
        log.warning("database refused a value: OverflowError")
        return error_response(422, "invalid_value", "a value in the request is out of range "
                              "or cannot be stored")

    @app.errorhandler(UnicodeEncodeError)
    def _unencodable(exc: UnicodeEncodeError) -> Response:
        # JSON lets a client escape a lone surrogate ("\ud800"): a Python str, but not text
        # any database driver or hash can encode. Raised while the unit of work flushes, so
        # nothing was written, and retrying the same value cannot help. (The message names
        # no value: it may be anything the client sent.) Any other encoding error is ours.
        if exc.reason != "surrogates not allowed":
            return _unexpected(exc)
        log.warning("refused text that is not valid Unicode: %s", exc.reason)
        return error_response(422, "invalid_text", "a text value in the request is not valid "
                              "Unicode (it holds a lone surrogate such as \\ud800)")

    @app.errorhandler(RedisError)
    def _redis(exc: RedisError) -> Response:
        log.error("redis unavailable: %s", type(exc).__name__)
        metrics.DEPENDENCY_ERRORS.labels("redis").inc()
        return error_response(503, "cache_unavailable", "a dependency is unavailable; retry",
                              None, {"Retry-After": str(RETRY_AFTER_S)})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error")
