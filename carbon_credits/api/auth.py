"""Bearer authentication and role checks for HTTP handlers (the token rules: tokens.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, g, request

from carbon_credits.errors import Forbidden, Unauthorized
from carbon_credits.ledger import chain
from carbon_credits.tokens import Principal, Role, TokenCodec


def authenticate() -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token", code="missing_token",
                           headers={"WWW-Authenticate": 'Bearer realm="carbon-credits"'})
    rt = current_app.extensions["carbon_credits"]
    codec: TokenCodec = rt.codec
    try:
        principal = codec.decode(token.strip())
        if rt.erased.is_erased(rt.db, chain.keyring().keys, principal.sub):
            # Erased (privacy/erasure.py): every token of the subject stops working; the
            # identity service gives a new account a new subject.
            raise Unauthorized("this account was erased", code="account_erased")
        return principal
    except Unauthorized as exc:
        # Every 401 carries a challenge (RFC 7235 3.1); RFC 6750 3.1 calls an expired,
        # malformed or badly signed token "invalid_token".
        exc.headers.setdefault(
            "WWW-Authenticate", 'Bearer realm="carbon-credits", error="invalid_token"')
        raise


F = TypeVar("F", bound=Callable[..., Any])


def requires(*roles: Role) -> Callable[[F], F]:
    """Allow a view only to tokens carrying one of ``roles``; sets ``g.principal``."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate()
            if principal.role not in roles:
                raise Forbidden(f"role {principal.role!r} may not call this endpoint")
            g.principal = principal
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


def current_principal() -> Principal:
    principal: Principal = g.principal
    return principal
