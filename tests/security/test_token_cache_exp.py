"""The verified-token cache expires a token exactly when PyJWT does.

Found in review: the cache compared with float(exp) where PyJWT truncates to int(exp), so
a token with a fractional ``exp`` (a NumericDate may be fractional, RFC 7519 2) stayed
accepted from the cache for up to a second after PyJWT refused it."""

from __future__ import annotations

import math
import time

import jwt
import pytest

from carbon_credits import tokens
from carbon_credits.errors import Unauthorized
from carbon_credits.runtime import Runtime
from tests.conftest import JWT_SECRET


def test_cached_token_expires_when_pyjwt_says_so(rt: Runtime,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    codec = rt.codec
    t0 = math.floor(time.time()) + 5.0  # a whole second, in the future of the real clock
    exp = t0 - tokens.LEEWAY_S + 0.9  # int(exp) == t0 - 30
    claims = {"sub": "u-frac-exp", "role": "user", "city": "shenzhen", "iat": int(t0) - 60,
              "exp": exp, "iss": codec.issuer, "aud": codec.audience}
    token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")

    clock = {"now": t0 - 0.5}  # before t0: valid for both
    monkeypatch.setattr(tokens.time, "time", lambda: clock["now"])
    monkeypatch.setattr(jwt.api_jwt, "datetime", _FakeDatetime(clock))
    assert codec.decode(token).sub == "u-frac-exp"  # verified and cached

    clock["now"] = t0 + 0.5  # PyJWT: int(exp) = t0 - 30 <= now - 30: expired
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(token, JWT_SECRET, algorithms=["HS256"], audience=codec.audience,
                   issuer=codec.issuer, leeway=tokens.LEEWAY_S)
    with pytest.raises(Unauthorized):
        codec.decode(token)  # the cache still answers with the principal


class _FakeDatetime:
    """Stands in for datetime inside jwt.api_jwt so PyJWT reads the same clock."""

    def __init__(self, clock: dict[str, float]) -> None:
        import datetime as real

        self._real, self._clock = real.datetime, clock

    def now(self, tz=None):  # type: ignore[no-untyped-def]
        return self._real.fromtimestamp(self._clock["now"], tz)

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        return getattr(self._real, name)
