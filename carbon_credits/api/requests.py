"""Request helpers shared by handlers: JSON bodies, argument parsing and rate limits."""

from __future__ import annotations

import json
from typing import Any

import flask_smorest
from flask import Request, Response, after_this_request, request
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from carbon_credits.antifraud.ratelimit import (
    Check,
    Decision,
    admit,
    check_for,
    client_ip,
    device_subject,
)
from carbon_credits.api.auth import current_principal
from carbon_credits.api.extensions import runtime
from carbon_credits.errors import ServiceError, UnsupportedMedia


class _Repeated(dict[str, Any]):
    """A decoded object in which the key ``repeated`` appeared more than once."""

    repeated: str = ""


def _repeated_key(value: Any) -> str:
    """The path (``events.3.event_id``) of a repeated key in ``value``, which holds one.

    Iterative: a body may nest as deep as the parser allows, deeper than Python recursion.
    """
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Repeated):
            return path + node.repeated
        children = (node.items() if isinstance(node, dict)
                    else enumerate(node) if isinstance(node, list) else ())
        stack.extend((child, f"{path}{key}.") for key, child in children
                     if isinstance(child, dict | list))
    raise AssertionError("no repeated key in a body flagged as having one")


def decode_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8 only (RFC 8259; json.loads would guess UTF-16/32), bounded nesting,
    and no key twice in one object."""
    repeats = 0

    def to_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeats
        decoded = dict(pairs)
        if len(decoded) == len(pairs):
            return decoded
        repeats += 1
        flagged = _Repeated(pairs)
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                flagged.repeated = key
                break
            seen.add(key)
        return flagged

    try:
        decoded = json.loads(raw.decode("utf-8"), object_pairs_hook=to_object)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # ValueError covers JSONDecodeError; RecursionError is nesting too deep to parse.
        raise ServiceError("the request body is not valid JSON", code="malformed_json",
                           fields={"body": ["malformed JSON"]}) from None
    if repeats:
        # RFC 8259 leaves repeated names to the parser: Python keeps the last value, others
        # the first, so a gateway or a log reading this body could see another event.
        key = _repeated_key(decoded)
        raise ServiceError(f"the key {key!r} appears more than once in one object",
                           code="duplicate_key", fields={key: ["appears more than once"]})
    return decoded


def body_bytes(req: Request) -> bytes:
    """The raw body, refusing with 413 one over ``MAX_CONTENT_LENGTH`` also when it came
    chunked: with no Content-Length, werkzeug's limited stream stops reading at the limit
    without raising, and a truncated body would then be reported as malformed JSON."""
    raw = req.get_data(cache=True)
    limit = req.max_content_length
    if req.content_length is None and limit is not None and len(raw) >= limit:
        # Exactly at the limit is allowed (as with a Content-Length): refuse only if the
        # client's stream holds at least one more byte.
        if req.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    return raw


DRAIN_CHUNK = 1 << 16


def drain_unread_body(_exc: BaseException | None = None) -> None:
    """Read what the app left unread of the request body, up to the route's limit
    (teardown_request, so before the server decides whether to keep the connection).

    Many answers come before the body is read: a missing token (401), a rate limit (429,
    told before the body is read), a wrong media type (415). gunicorn then drains at most
    64 KiB of the rest itself and otherwise closes the connection, after its answer has
    already promised to keep it (gunicorn 27, http/parser.py, finish_body). nginx keeps
    that connection in its upstream pool (deploy/nginx.conf) and may send the next request
    on it as it closes: a POST so sent is answered 502 and not retried. Read here, the
    connection stays usable. Behind nginx the body is already whole in nginx (memory
    speed); a body over the limit is not read (the app answers 413 and gunicorn closes)."""
    length = request.content_length
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if not length and not chunked:
        return
    limit = request.max_content_length
    if length is not None and limit is not None and length > limit:
        return
    # request.stream, not wsgi.input: it ends at the body's end (Content-Length, or the
    # server's end of a chunked body) and shares the app's position in it, while a raw
    # wsgi.input (werkzeug's development server gives the socket itself) would wait for
    # bytes the client never sends.
    try:
        while request.stream.read(DRAIN_CHUNK):
            pass
    except (OSError, HTTPException):  # a client gone, or a chunked body over the limit
        return


def json_body() -> Any:
    """The parsed JSON body, or a 400/415 naming what is wrong with it."""
    if not request.is_json:
        raise UnsupportedMedia("send the body as application/json",
                               fields={"Content-Type": ["expected application/json"]})
    return decode_json(body_bytes(request))


class StrictJsonParser(FlaskParser):
    """webargs' parser with the same strict JSON decoding as ``json_body``."""

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return core.missing
        return decode_json(body_bytes(req))


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    """flask-smorest's Blueprint parsing arguments with ``StrictJsonParser``."""

    ARGUMENTS_PARSER = StrictJsonParser()


def rate_checks(route: str) -> list[Check]:
    """This request's checks on ``route``: one per dimension with a rate (``RATE_LIMITS``,
    see carbon_credits.antifraud.ratelimit) and a subject (the user, the device, the client IP)."""
    rates = runtime().config.rate_limits.for_route(route)
    subjects = {"user": current_principal().sub,
                "device": device_subject(request.headers.get("X-Device-Id")),
                "ip": client_ip(request.remote_addr)}
    return [check_for(route, dim, subject, rate) for dim, rate in rates.items()
            if (subject := subjects.get(dim)) is not None]


def limit_rate(route: str, cost: int = 1) -> None:
    """Count ``cost`` units of ``route`` for this request's user, device and client IP.

    Every dimension is checked in one Redis round trip. Over any limit: 429 with
    Retry-After from the refusing dimension that frees last. Admitted: RateLimit-* headers
    of the tightest dimension (``rate_headers``).
    """
    rate_headers(admit(runtime().limiter, route, rate_checks(route), cost))


def rate_headers(decision: Decision | None) -> None:
    """The RateLimit-* headers of an admitted request's decision, on its response."""
    headers = decision.headers() if decision is not None else {}
    if headers:
        @after_this_request
        def _headers(response: Response) -> Response:
            response.headers.update(headers)
            return response
