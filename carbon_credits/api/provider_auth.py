"""Signed provider requests for HTTP handlers (the signature rules: providers/signatures).

A provider route takes no bearer token: a request without a valid signature is refused,
whatever its Authorization header holds. A provider, holding no JWT, reaches no other route.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import g, request

from carbon_credits.api.extensions import runtime
from carbon_credits.api.requests import body_bytes
from carbon_credits.providers import signatures
from carbon_credits.providers.registry import Provider

F = TypeVar("F", bound=Callable[..., Any])

SECURITY: list[dict[str, list[str]]] = [{"httpSignature": []}]
"""The OpenAPI security of provider routes (the scheme: factory.register_extensions)."""


def provider_required(view: F) -> F:
    """Allow a view only to a request signed by an enabled provider; sets ``g.provider``."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.provider = signatures.authenticate(runtime(), request, body_bytes(request))
        return view(*args, **kwargs)

    return cast(F, wrapper)


def current_provider() -> Provider:
    provider: Provider = g.provider
    return provider
