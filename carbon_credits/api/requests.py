"""Request helpers shared by handlers: JSON bodies, argument parsing and rate limits."""

from __future__ import annotations

import json
from typing import Any

import flask_smorest
from flask import Request, Response, after_this_request, request
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from carbon_credits.errors import RateLimited, ServiceError, UnsupportedMedia
from carbon_credits.extensions import runtime


def decode_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8 only (RFC 8259; json.loads would guess UTF-16/32), bounded nesting."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        # ValueError covers JSONDecodeError; RecursionError is nesting too deep to parse.
        raise ServiceError("the request body is not valid JSON", code="malformed_json",
                           fields={"body": ["malformed JSON"]}) from None


def json_body() -> Any:
    """The parsed JSON body, or a 400/415 naming what is wrong with it."""
    if not request.is_json:
        raise UnsupportedMedia("send the body as application/json",
                               fields={"Content-Type": ["expected application/json"]})
    return decode_json(request.get_data(cache=True))


class StrictJsonParser(FlaskParser):
    """webargs' parser with the same strict JSON decoding as ``json_body``."""

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return core.missing
        return decode_json(req.get_data(cache=True))


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    """flask-smorest's Blueprint parsing arguments with ``StrictJsonParser``."""

    ARGUMENTS_PARSER = StrictJsonParser()


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
