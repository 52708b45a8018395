"""The client device id (X-Device-Id), as far as a client can be trusted to send it."""

from __future__ import annotations

import re

from flask import request

from carbon_credits.errors import InvalidInput

HEADER = "X-Device-Id"
_PATTERN = r"[A-Za-z0-9._:@/+=-]{1,128}"
_SHAPE = re.compile(_PATTERN)
PARAMETER = {
    "in": "header", "name": HEADER, "required": False,
    "schema": {"type": "string", "pattern": f"^{_PATTERN}$"},
    "description": "the client device's id, as the app sees it (optional): rate limits per "
                   "device and the one-device-many-accounts fraud rule use it",
}
"""The header as an OpenAPI parameter, for the operations that read it."""


def device_id() -> str | None:
    """The request's device id, or None; a malformed one is 422 rather than silently dropped.

    Clients choose this value, so it only catches careless farms (one phone, many accounts);
    it is a signal for review, never proof.
    """
    raw = request.headers.get(HEADER)
    if raw is None or raw == "":
        return None
    if not _SHAPE.fullmatch(raw):
        raise InvalidInput("malformed device id", fields={HEADER: [
            "1-128 characters: letters, digits and . _ : @ / + = -"]})
    return raw
