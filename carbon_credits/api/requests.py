"""Request helpers shared by handlers: JSON bodies and rate limits."""

from __future__ import annotations

from typing import Any

from flask import Response, after_this_request, request
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from carbon_credits.errors import RateLimited, ServiceError, UnsupportedMedia
from carbon_credits.extensions import runtime


def json_body() -> Any:
    """The parsed JSON body, or a 400/415 naming what is wrong with it."""
    try:
        body = request.get_json()
        # json.loads also guesses UTF-16/32 from bytes; JSON on the wire is UTF-8 (RFC 8259).
        request.get_data(cache=True).decode("utf-8")
        return body
    except UnsupportedMediaType:
        raise UnsupportedMedia("send the body as application/json",
                               fields={"Content-Type": ["expected application/json"]}) from None
    except (BadRequest, UnicodeDecodeError, RecursionError):
        # Syntax errors, bodies that are not UTF-8, and nesting too deep to parse.
        raise ServiceError("the request body is not valid JSON", code="malformed_json",
                           fields={"body": ["malformed JSON"]}) from None


def limit_rate(route: str, subject: str, limit: int, window_s: int = 60) -> None:
    """Count one request of ``subject`` on ``route``; 429 with Retry-After when over."""
    decision = runtime().limiter.hit(f"{route}:{subject}", limit, window_s)
    headers = {"RateLimit-Limit": str(decision.limit),
               "RateLimit-Remaining": str(decision.remaining),
               "RateLimit-Reset": str(decision.reset_s)}
    if not decision.allowed:
        raise RateLimited(f"more than {limit} requests in {window_s} s; retry later",
                          headers={**headers, "Retry-After": str(decision.reset_s)})

    @after_this_request
    def _headers(response: Response) -> Response:
        response.headers.update(headers)
        return response
