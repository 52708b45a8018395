"""The cache of verified tokens (tokens.TokenCodec.decode) answers as PyJWT would.

A token is verified once and then remembered; every later use must still be refused once
the token expires, and a token that is not yet valid is never remembered as valid.
The tests step a fake clock (the cache's and PyJWT's) past ``exp`` or ``nbf`` instead of
sleeping: with the real clock a slow moment on a busy machine could pass ``exp`` before the
token was first used.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import jwt
import pytest

from carbon_credits import tokens
from carbon_credits.config import Config
from carbon_credits.errors import Unauthorized
from carbon_credits.tokens import LEEWAY_S, TokenCodec
from tests.conftest import JWT_SECRET


@pytest.fixture
def codec(tmp_path: Path) -> TokenCodec:
    config = Config.from_env(tmp_path, {})
    config.jwt_secret = JWT_SECRET
    return TokenCodec(config)


def sign(codec: TokenCodec, **claims: object) -> str:
    return jwt.encode({"sub": "cached", "role": "user", "iss": codec.issuer,
                       "aud": codec.audience, **claims}, JWT_SECRET, algorithm="HS256")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """``clock["now"]`` is the time for the cache (time.time) and for PyJWT (its
    datetime.now) alike; it starts at the real time, on a whole second."""
    clock = {"now": float(int(time.time()))}
    real = datetime.datetime

    class Datetime(real):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> datetime.datetime:
            return real.fromtimestamp(clock["now"], tz)

    monkeypatch.setattr(tokens.time, "time", lambda: clock["now"])
    monkeypatch.setattr(jwt.api_jwt, "datetime", Datetime)
    return clock


def test_a_remembered_token_is_refused_once_it_expires(
        codec: TokenCodec, monkeypatch: pytest.MonkeyPatch, clock: dict[str, float]) -> None:
    monkeypatch.setattr(tokens, "LEEWAY_S", 0)  # PyJWT and the cache both read it
    now = int(clock["now"])
    token = sign(codec, iat=now, exp=now + 2)
    assert codec.decode(token).sub == "cached"
    assert token in codec._verified
    clock["now"] = now + 1.999
    assert codec.decode(token).sub == "cached"  # from the cache
    clock["now"] = now + 2  # exp: expired from this instant on
    with pytest.raises(Unauthorized) as refused:
        codec.decode(token)
    assert refused.value.code == "token_expired"


def test_a_token_not_yet_valid_is_refused_until_it_is(
        codec: TokenCodec, monkeypatch: pytest.MonkeyPatch, clock: dict[str, float]) -> None:
    monkeypatch.setattr(tokens, "LEEWAY_S", 0)
    now = int(clock["now"])
    token = sign(codec, iat=now, nbf=now + 2, exp=now + 600)
    for instant in (now, now + 1.999):
        clock["now"] = instant
        with pytest.raises(Unauthorized):
            codec.decode(token)
    assert token not in codec._verified
    clock["now"] = now + 2  # nbf: valid from this instant on
    assert codec.decode(token).sub == "cached"


def test_the_leeway_of_a_remembered_token_matches_pyjwt(codec: TokenCodec) -> None:
    """Expired by less than the leeway: PyJWT accepts it, and so does the cache."""
    now = int(time.time())
    token = sign(codec, iat=now - 100, exp=now - LEEWAY_S + 5)
    assert codec.decode(token).sub == "cached"
    assert codec.decode(token).sub == "cached"


def test_the_cache_is_bounded(codec: TokenCodec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_CACHE_SIZE", 5)
    now = int(time.time())
    for i in range(12):
        codec.decode(sign(codec, iat=now, exp=now + 600, jti=str(i)))
        assert len(codec._verified) <= 5
