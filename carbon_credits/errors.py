"""Domain errors, each carrying its HTTP status, and the one error body every answer uses.

``{"error": {"code": "...", "message": "...", "fields": {...}}}``: built by ``error_body``
for whole responses (api/errors.py) and batch items (ingest) alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carbon_credits import messages

RETRY_AFTER_S = 5
"""How long a client should wait after a dependency failure before retrying (seconds)."""


class ServiceError(Exception):
    """A refusal the client can act on; each subclass carries its status."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, Any] | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.params = dict(params or {})
        """Named values for the code's message template in other languages (messages.py)."""
        if code:
            self.code = code
        self.headers = headers or {}


class UnsupportedMedia(ServiceError):
    status = 415
    code = "unsupported_media_type"


class InvalidInput(ServiceError):
    status = 422
    code = "invalid_input"


def invalid_fields(messages: Any, message: str = "the request has invalid fields"
                   ) -> InvalidInput:
    """The 422 of a schema's validation messages (marshmallow's ``ValidationError``), each
    under its field; messages not tied to a field under ``_schema``."""
    return InvalidInput(message, fields=messages if isinstance(messages, dict)
                        else {"_schema": messages})


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class TooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class RateLimited(ServiceError):
    status = 429
    code = "rate_limited"


class Unavailable(ServiceError):
    status = 503
    code = "unavailable"


def error_body(code: str, message: str, fields: dict[str, Any] | None = None,
               params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``error`` object of an answer: a response's body, or one batch item's, in the
    request's language (messages.py; ``message`` itself in English)."""
    body: dict[str, Any] = {"code": code, "message": messages.error_message(code, message,
                                                                            params)}
    if fields:
        body["fields"] = messages.field_messages(fields)
    return body
