"""/docs in a real browser with no internet: the Swagger UI comes from this server alone.

Chromium runs with every host name but 127.0.0.1 unresolvable and every non-loopback
connection sent to a proxy that is not there, as on a city intranet. The page must still
draw the operations of /openapi.json, and Chromium's own network log must show that the
page asked for nothing outside the server. A control serves the same page with its assets on
the public CDN that /docs used before: under the same flags it draws nothing, which shows
the blocking is real.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask

from carbon_credits.factory import SWAGGER_UI_ASSETS
from tests.e2e.conftest import browse, serve

OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
           # Literal IP addresses skip the resolver: send them to a closed loopback port
           # (Chromium never proxies loopback itself).
           "--proxy-server=http://127.0.0.1:9")
"""Chromium flags that leave the browser only the loopback server."""

CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist/"
"""Where /docs loaded Swagger UI from before it was served by the app."""


def opblocks(dom: str) -> list[str]:
    """The operations Swagger UI drew, as their documented paths."""
    return re.findall(r'<div class="opblock opblock-[a-z]+[^"]*"[^>]*>.*?'
                      r'data-path="([^"]+)"', dom, re.S)


def page_requests(net_log: Path, origin: str) -> list[str]:
    """URLs the page itself requested (not Chromium's own background calls): the main
    frame's load and every request the page's origin initiated, from Chromium's NetLog."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params: dict[str, Any] = event.get("params") or {}
        if event["type"] == start and "url" in params and (
                params.get("initiator") == origin or params.get("request_type") == "main frame"):
            urls.append(params["url"])
    return urls


def outside(urls: Iterable[str], origin: str) -> list[str]:
    return [u for u in urls if not u.startswith(origin + "/")]


def load_offline(url: str, origin: str, tmp_path: Path) -> tuple[str, list[str]]:
    net_log = tmp_path / "net-log.json"
    dom = browse(url, tmp_path, *OFFLINE, f"--log-net-log={net_log}", "--dump-dom")
    return dom, page_requests(net_log, origin)


def test_docs_draw_every_operation_with_no_internet(
        app: Flask, server: str, tmp_path: Path) -> None:
    spec = app.test_client().get("/openapi.json").json
    operations = [path for path, item in spec["paths"].items() for method in item
                  if method in ("get", "put", "post", "delete", "patch")]

    dom, requested = load_offline(f"{server}/docs", server, tmp_path)

    drawn = opblocks(dom)
    assert len(drawn) > 10, dom[-3000:]
    assert "/v1/events" in drawn and "/v1/admin/factor-versions" in drawn
    assert sorted(drawn) == sorted(operations)
    assert f"{server}{SWAGGER_UI_ASSETS}swagger-ui-bundle.js" in requested, requested
    assert f"{server}/openapi.json" in requested, requested
    assert outside(requested, server) == []


def test_control_the_same_page_from_the_cdn_draws_nothing(app: Flask, tmp_path: Path
                                                          ) -> None:
    """Without this, a browser that happened to reach the internet would pass the test
    above with assets from anywhere."""
    page = app.test_client().get("/docs").get_data(as_text=True)
    on_cdn = page.replace(SWAGGER_UI_ASSETS, CDN).encode()
    assert CDN in on_cdn.decode()

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/docs-from-cdn":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [on_cdn]
        result: Iterable[bytes] = app(environ, start_response)
        return result

    with serve(wsgi) as base:
        dom, requested = load_offline(f"{base}/docs-from-cdn", base, tmp_path)

    assert opblocks(dom) == []
    assert f"{CDN}swagger-ui-bundle.js" in outside(requested, base), requested
