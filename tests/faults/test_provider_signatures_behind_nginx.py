"""A provider's signed request through real nginx (deploy/nginx.conf) and gunicorn: the
URI the app checks (RFC 9421 "@target-uri") is the one the provider sent, port included,
when the app trusts nginx's X-Forwarded-Host and -Proto (PROXY_FIX_X_HOST, _X_PROTO)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.faults.nginx import Nginx
from tests.faults.servers import flask_cli, sqlite_gunicorn
from tests.signing import Key, body_of, sign

pytestmark = pytest.mark.slow

PATH = "/v1/provider/binding-codes"


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


@pytest.mark.parametrize(("trust", "expected"), [("1", 201), ("0", 401)],
                         ids=["proxy-trusted", "proxy-not-trusted"])
def test_a_signed_request_through_nginx(tmp_path: Path, trust: str, expected: int) -> None:
    settings = {"PROXY_FIX_X_FOR": "1", "PROXY_FIX_X_PROTO": trust, "PROXY_FIX_X_HOST": trust}
    with sqlite_gunicorn(tmp_path, **settings) as server:
        env = {**server.env}
        added = flask_cli(env, "provider", "add", "nginx-metro", "--name", "Metro",
                          "--city", "shenzhen", "--mode", "metro")
        assert added.returncode == 0, added.stderr
        made = flask_cli(env, "provider", "key-add", "nginx-metro")
        assert made.returncode == 0, made.stderr
        created = json.loads(made.stdout)
        key = Key.hmac(created["key_id"], created["secret"])
        nginx = Nginx(f"127.0.0.1:{server.port}")
        nginx.start()
        try:
            body = body_of({"user_ref": "card-1"})
            # nginx listens on a port of its own: $host alone would lose it.
            status, answer = post(nginx.base + PATH, body,
                                  sign(key, "POST", PATH, body, base=nginx.base))
        finally:
            nginx.stop()
    assert status == expected, answer
    if expected == 401:
        assert answer["error"]["code"] == "bad_signature"
