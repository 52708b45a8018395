"""/docs names nothing outside this server: every asset it loads is served here.

The browser side (Chromium with the network cut off) is tests/e2e/test_docs.py; this test
reads the page the server renders and the stylesheet it loads.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from flask.testing import FlaskClient

URL_ATTRIBUTES = {"src", "href", "action", "poster", "data", "srcset", "formaction"}
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}
ANY_URL = re.compile(r"""(?:[a-z][a-z0-9+.-]*:)?//[^\s"'<>)]+""", re.I)
"""An absolute (scheme://) or protocol-relative (//host) URL anywhere in a text."""


class Links(HTMLParser):
    """Every URL-valued attribute of the page, and the text of its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value:
                self.urls.append((tag, name, value))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.scripts.append(data)


def docs_page(client: FlaskClient) -> tuple[str, Links]:
    r = client.get("/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    links = Links()
    links.feed(page)
    return page, links


def same_origin_path(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and url.startswith("/")


def test_the_docs_page_names_no_other_host(client: FlaskClient) -> None:
    page, links = docs_page(client)
    assert ANY_URL.findall(page) == []
    assert links.urls, "no asset found: the parser or the page changed"
    assert [u for _, _, u in links.urls if not same_origin_path(u)] == []


def test_every_asset_of_the_docs_page_is_served_here(client: FlaskClient) -> None:
    _, links = docs_page(client)
    tags = {(tag, attribute) for tag, attribute, _ in links.urls}
    assert {("script", "src"), ("link", "href")} <= tags
    # The spec URL is set in the inline script, not in an attribute.
    spec_urls = [u for s in links.scripts for u in re.findall(r'url:\s*"([^"]*)"', s)]
    assert spec_urls == ["/openapi.json"]
    for url in [u for _, _, u in links.urls] + spec_urls:
        with client.get(url) as r:  # a static file: close it
            assert r.status_code == 200, url
            suffix = re.search(r"\.[a-z]+$", urlsplit(url).path)
            assert suffix and r.mimetype == CONTENT_TYPES[suffix.group()], (url, r.mimetype)
            assert len(r.data) > 100, url


def test_the_stylesheets_fetch_nothing_but_inline_data(client: FlaskClient) -> None:
    _, links = docs_page(client)
    sheets = [u for tag, _, u in links.urls if tag == "link"]
    assert sheets
    for sheet in sheets:
        with client.get(sheet) as r:
            css = r.get_data(as_text=True)
        referenced = re.findall(r"""url\(\s*['"]?([^'")]+)""", css)
        assert [u for u in referenced if not u.startswith("data:")] == [], sheet
        assert "@import" not in css


def test_swagger_ui_does_not_call_the_online_validator(client: FlaskClient) -> None:
    """Swagger UI's default validatorUrl sends the spec's address to validator.swagger.io
    for a badge; null turns it off (localhost alone would hide it, so only this shows it)."""
    _, links = docs_page(client)
    assert any(re.search(r'"validatorUrl":\s*null', s) for s in links.scripts), links.scripts
