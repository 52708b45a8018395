"""The access logger (carbon_credits/serving.py) writes exactly gunicorn's line, for its
default format and for formats using every atom, headers and environ values."""

from __future__ import annotations

import datetime
import logging

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from carbon_credits.serving import AccessLogger


class Response:
    status = "201 CREATED"
    sent = 512
    headers = [("Content-Type", "application/json"), ("RateLimit-Remaining", "59"),
               ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


class Request:
    headers = [("HOST", "api.example"), ("X-REQUEST-ID", 'abc"def'),
               ("USER-AGENT", "mini-program/3.2 \"wx\""),
               ("X-FORWARDED-FOR", "1.1.1.1"), ("X-FORWARDED-FOR", "2.2.2.2")]


ENVIRON = {
    "REMOTE_ADDR": "10.0.0.7", "REQUEST_METHOD": "POST", "RAW_URI": "/v1/events?x=1",
    "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": "/v1/events", "QUERY_STRING": "x=1",
    "HTTP_USER_AGENT": "mini-program/3.2 \"wx\"", "HTTP_AUTHORIZATION": "Bearer abc",
    "wsgi.url_scheme": "https",
}

FORMATS = [
    Config().access_log_format,  # gunicorn's default
    " ".join(f"%({atom})s" for atom in "hlutrsmUqHbBfaTDMLp"),
    '%({x-request-id}i)s %({content-type}o)s %({ratelimit-remaining}o)s %({missing}i)s '
    '%({wsgi.url_scheme}e)s %({remote_addr}e)s %(nonsense)s %({x}z)s',
    '%({x-forwarded-for}i)s %({set-cookie}o)s',  # repeated headers: the last one
]


def line(logger_class: type[glogging.Logger], fmt: str,
         caplog: pytest.LogCaptureFixture) -> str:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", fmt)
    logger = logger_class(cfg)
    logger.access_log.propagate = True
    logger.now = lambda: "[04/Dec/2026:14:00:00 +0000]"  # type: ignore[method-assign]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gunicorn.access"):
        logger.access(Response(), Request(), dict(ENVIRON),
                      datetime.timedelta(seconds=1, microseconds=2345))
    [record] = [r for r in caplog.records if r.name == "gunicorn.access"]
    return record.getMessage()


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_line_is_gunicorns(fmt: str, caplog: pytest.LogCaptureFixture) -> None:
    ours = line(AccessLogger, fmt, caplog)
    assert ours == line(glogging.Logger, fmt, caplog)


def test_quotes_are_escaped_and_unknown_atoms_are_dashes(
        caplog: pytest.LogCaptureFixture) -> None:
    assert line(AccessLogger, FORMATS[2], caplog) == (
        'abc\\"def application/json 59 - https 10.0.0.7 - -')
