"""Tokens: the principal a JWT names, and the codec that signs and verifies them (PyJWT).

The algorithm is pinned by configuration (never read from the token): HS256 with a shared
secret by default, RS256/ES256 with a public key, or with the identity provider's JWK Set
(``JWT_JWKS_URL``: the key is the one the token's ``kid`` names), as options. ``exp``,
``iat``, ``iss``, ``aud``, ``sub`` and ``role`` are required and verified.
"""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal, cast

import jwt

from carbon_credits.config import Config
from carbon_credits.errors import Unauthorized, Unavailable

Role = Literal["user", "partner", "admin", "merchant"]
ROLES: tuple[Role, ...] = ("user", "partner", "admin", "merchant")
"""A merchant's ``sub`` is its merchant id: it offers rewards (carbon_credits/rewards)."""
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "role"]
LEEWAY_S = 30
"""Clock skew tolerated between the identity service and this one, seconds (policy)."""
JWKS_TIMEOUT_S = 5
"""How long a fetch of the JWK Set may take (policy): a request waits for it."""
JWKS_RETRY_AFTER_S = 5
VERIFIED_CACHE_SIZE = 10_000
"""Verified tokens remembered per process (a few MB); a client reuses its token for many
requests, so most requests skip the signature check."""


@dataclass(frozen=True)
class Principal:
    sub: str
    role: Role
    city: str | None


class TokenCodec:
    def __init__(self, config: Config) -> None:
        self.algorithm = config.jwt_algorithm
        self.issuer = config.jwt_issuer
        self.audience = config.jwt_audience
        self._jwks = (jwt.PyJWKClient(config.jwt_jwks_url, lifespan=config.jwt_jwks_cache_s,
                                      timeout=JWKS_TIMEOUT_S,
                                      cooldown_duration=config.jwt_jwks_cooldown_s)
                      if config.jwt_jwks_url else None)
        self._verify_key: Any = None
        if self._jwks is None:
            self._verify_key = config.jwt_public_key or config.signing_secret()
        self._signing_key = (None if config.jwt_public_key or self._jwks
                             else self._verify_key)
        self._verified: dict[str, tuple[Principal, int, int]] = {}
        """token -> (principal, nbf, exp) of tokens that passed verification."""

    def encode(self, sub: str, role: Role, city: str | None, ttl_s: int) -> str:
        if self._signing_key is None:
            raise RuntimeError("this instance only verifies tokens (JWT_PUBLIC_KEY or "
                               "JWT_JWKS_URL is set)")
        now = int(time.time())
        claims: dict[str, Any] = {"sub": sub, "role": role, "iat": now, "exp": now + ttl_s,
                                  "iss": self.issuer, "aud": self.audience}
        if city:
            claims["city"] = city
        return jwt.encode(claims, self._signing_key, algorithm=self.algorithm)

    def decode(self, token: str) -> Principal:
        """The token's principal, or 401. A token already verified is not verified again
        until it expires: its bytes fix its claims and signature, so the cached answer is
        the one a fresh verification would give, as long as ``exp`` (and ``nbf``) still
        hold, which are checked on every hit (with the same leeway as PyJWT's)."""
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None:
            principal, not_before, expires = hit
            if not_before - LEEWAY_S <= now < expires + LEEWAY_S:
                return principal
        principal, not_before, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()  # crude but bounded; a full cache is refilled at once
        self._verified[token] = (principal, not_before, expires)
        return principal

    def _key(self, token: str) -> Any:
        """The verification key: configured, or from the JWK Set by the token's ``kid``. The
        set unreachable is the identity provider's failure, not the client's: a 503."""
        if self._jwks is None:
            return self._verify_key
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError:
            raise Unavailable("the identity provider's keys cannot be fetched",
                              code="jwks_unavailable",
                              headers={"Retry-After": str(JWKS_RETRY_AFTER_S)}) from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise Unauthorized(f"invalid token: {exc}", code="invalid_token") from None

    def _verify(self, token: str) -> tuple[Principal, int, int]:
        key = self._key(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired", code="token_expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}", code="invalid_token") from None
        role, sub, city = claims.get("role"), claims.get("sub"), claims.get("city")
        if role not in ROLES:
            raise Unauthorized("invalid token: unknown role", code="invalid_token")
        if not _claim_text(sub) or not sub:
            raise Unauthorized("invalid token: bad sub", code="invalid_token")
        if city is not None and not _claim_text(city):
            raise Unauthorized("invalid token: bad city", code="invalid_token")
        # PyJWT refuses a token before its nbf and before its iat (each less the leeway), and
        # from its exp (plus the leeway) on, each claim truncated to whole seconds by int().
        not_before = max(int(claims["iat"]), int(claims.get("nbf", claims["iat"])))
        return Principal(sub=sub, role=cast(Role, role), city=city), not_before, int(
            claims["exp"])


MAX_CLAIM_CHARS = 128


def _claim_text(value: Any) -> bool:
    """A string claim this service can store, compare, log and put in a URL path: at most
    128 characters, no control characters (NUL, newlines: log injection, and PostgreSQL
    refuses NUL in text), no lone surrogates (JSON can escape one, "\\ud800", but no UTF-8
    encoder takes it) and no '/' (admin routes address users as /users/{sub}/..., and
    werkzeug decodes %2F before routing: such a user could never be reviewed or frozen)."""
    return (isinstance(value, str) and len(value) <= MAX_CLAIM_CHARS and "/" not in value
            and not any(unicodedata.category(c) in ("Cc", "Cs") for c in value))
