"""Answers in the request's language: Accept-Language (zh-CN, en), ``?lang=``, and with no
header the city's default (zh_CN for Shenzhen). Error messages by code, marshmallow's
field messages, and events' ``reason_text``.

The rest of the suite runs with DEFAULT_LOCALE=en (conftest) and asserts English texts;
here the app has the production default."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from carbon_credits.api.i18n import choose_locale
from carbon_credits.config import Config, ConfigError
from tests import factories, rewards

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
EN = {"Accept-Language": "en-US,en;q=0.9"}


@pytest.fixture
def zh_app(make_app: Callable[..., Flask]) -> Flask:
    """The production default: no DEFAULT_LOCALE, the Shenzhen time zone -> zh_CN."""
    return make_app(default_locale=None)


@pytest.fixture
def zh_client(zh_app: Flask) -> FlaskClient:
    return zh_app.test_client()


@pytest.mark.parametrize(("lang", "header", "default", "chosen"), [
    (None, "zh-CN", "en", "zh_CN"),
    (None, "zh_cn", "en", "zh_CN"),
    (None, "zh", "en", "zh_CN"),
    (None, "zh-Hans-CN", "en", "zh_CN"),
    (None, "zh-TW", "en", "zh_CN"),  # the language, when its region has no catalog
    (None, "en-GB", "zh_CN", "en"),
    (None, "fr-FR, en;q=0.8, zh;q=0.5", "zh_CN", "en"),  # by quality, not by order
    (None, "zh;q=0.3, en;q=0.7", "zh_CN", "en"),
    (None, "en;q=0, zh", "en", "zh_CN"),  # q=0: not acceptable
    (None, None, "zh_CN", "zh_CN"),  # absent: the default
    (None, "", "en", "en"),
    (None, "fr, de", "zh_CN", "zh_CN"),  # none spoken here: the default
    (None, "*", "zh_CN", "zh_CN"),
    (None, "en;q=bad", "zh_CN", "zh_CN"),
    ("en", "zh-CN", "zh_CN", "en"),  # ?lang= overrides the header
    ("zh-CN", "en", "en", "zh_CN"),
    ("xx", "en", "zh_CN", "en"),  # an unknown ?lang= is ignored
])
def test_the_locale_is_chosen_by_lang_then_accept_language_then_default(
        lang: str | None, header: str | None, default: str, chosen: str) -> None:
    assert choose_locale(lang, header, default) == chosen


def test_the_default_locale_follows_the_city(tmp_path: Path) -> None:
    assert Config.from_env(tmp_path, {}).default_locale == "zh_CN"  # Shenzhen
    assert Config.from_env(tmp_path, {"CITY_TIMEZONE": "Asia/Urumqi"}).default_locale == "zh_CN"
    assert Config.from_env(tmp_path, {"CITY_TIMEZONE": "Europe/Berlin"}
                           ).default_locale == "en"
    assert Config.from_env(tmp_path, {"DEFAULT_LOCALE": "en"}).default_locale == "en"
    with pytest.raises(ConfigError, match="DEFAULT_LOCALE"):
        Config.from_env(tmp_path, {"DEFAULT_LOCALE": "fr"})


@pytest.mark.parametrize(("headers", "message", "language"), [
    ({}, "缺少 Bearer 令牌", "zh-CN"),  # absent: Shenzhen's zh_CN
    (ZH, "缺少 Bearer 令牌", "zh-CN"),
    (EN, "missing bearer token", "en"),
    ({"Accept-Language": "fr-FR"}, "缺少 Bearer 令牌", "zh-CN"),  # unsupported: default
    ({"Accept-Language": "fr-FR, en;q=0.5"}, "missing bearer token", "en"),
])
def test_an_error_message_is_in_the_requests_language(
        zh_client: FlaskClient, headers: dict[str, str], message: str, language: str) -> None:
    r = zh_client.post("/v1/events", json=factories.metro(), headers=headers)
    assert r.status_code == 401
    assert r.json["error"] == {"code": "missing_token", "message": message}
    assert r.headers["Content-Language"] == language
    assert "Accept-Language" in r.headers["Vary"]


def test_lang_in_the_query_overrides_the_header(zh_client: FlaskClient) -> None:
    r = zh_client.get("/v1/me/account?lang=en", headers=ZH)
    assert r.json["error"]["message"] == "missing bearer token"


def test_english_keeps_the_message_with_its_values_and_chinese_fills_the_template(
        zh_client: FlaskClient, auth: dict[str, str]) -> None:
    old = factories.metro(start=factories.today_at(8) - timedelta(days=40))
    en = zh_client.post("/v1/events", json=old, headers={**auth, **EN})
    zh = zh_client.post("/v1/events", json=old, headers={**auth, **ZH})
    assert en.status_code == zh.status_code == 422
    assert en.json["error"] == {
        "code": "event_too_old",
        "message": "the event is older than the 30-day backfill window",
        "fields": {"started_at": ["older than 30 days"]}}
    assert zh.json["error"] == {
        "code": "event_too_old", "message": "事件早于 30 天的补录期限",
        "fields": {"started_at": ["早于 30 天前"]}}


def test_marshmallows_field_messages_are_translated(
        zh_client: FlaskClient, auth: dict[str, str]) -> None:
    body = factories.metro()
    del body["entry_station_id"]
    body["unexpected"] = 1
    zh = zh_client.post("/v1/events", json=body, headers={**auth, **ZH})
    en = zh_client.post("/v1/events", json=body, headers={**auth, **EN})
    assert zh.status_code == en.status_code == 422
    assert en.json["error"]["message"] == "the request has invalid fields"
    assert en.json["error"]["fields"] == {"entry_station_id": ["Missing data for required field."],
                                          "unexpected": ["Unknown field."]}
    assert zh.json["error"]["message"] == "请求中有无效字段"
    assert zh.json["error"]["fields"] == {"entry_station_id": ["缺少必填字段。"],
                                          "unexpected": ["未知字段。"]}


@pytest.mark.parametrize(("path", "method", "code", "zh"), [
    ("/v1/no-such-thing", "get", "not_found", "未找到"),
    ("/dashboard", "delete", "method_not_allowed", "此地址不支持该请求方法"),
])
def test_http_errors_are_translated(zh_client: FlaskClient, path: str, method: str,
                                    code: str, zh: str) -> None:
    r = getattr(zh_client, method)(path, headers=ZH)
    assert r.json["error"] == {"code": code, "message": zh}
    english = getattr(zh_client, method)(path, headers=EN).json["error"]
    assert english["code"] == code and english["message"] != zh


def test_a_malformed_body_is_refused_in_chinese(zh_client: FlaskClient,
                                               auth: dict[str, str]) -> None:
    r = zh_client.post("/v1/events", data="{not json", headers={
        **auth, **ZH, "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json["error"] == {"code": "malformed_json", "message": "请求体不是有效的 JSON",
                               "fields": {"body": ["JSON 格式错误"]}}


def _held(client: FlaskClient, auth: dict[str, str], headers: dict[str, str]
          ) -> dict[str, Any]:
    start = factories.today_at(8)
    body = factories.metro(start=start, ended_at=(start + timedelta(minutes=2)).isoformat())
    r = client.post("/v1/events", json=body, headers={**auth, **headers})
    assert r.status_code == 201, r.json
    assert (r.json["status"], r.json["reason"]) == ("held", "speed_out_of_bounds")
    return dict(r.json)


def test_a_held_events_reason_is_described_in_the_requests_language(
        zh_client: FlaskClient, auth: dict[str, str]) -> None:
    held = _held(zh_client, auth, ZH)
    assert held["reason_text"] == "行程速度超出该出行方式的合理范围"
    again = zh_client.get(f"/v1/events/{held['event_id']}", headers={**auth, **EN}).json
    assert again["reason"] == "speed_out_of_bounds"
    assert again["reason_text"] == ("the trip's speed is outside the plausible range for "
                                    "its mode")
    default = zh_client.get(f"/v1/events/{held['event_id']}", headers=auth).json
    assert default["reason_text"] == held["reason_text"]  # no header: Shenzhen's zh_CN
    honest = zh_client.post("/v1/events", json=factories.metro(start=factories.today_at(11)),
                            headers={**auth, **ZH}).json
    assert honest["status"] == "credited"
    assert honest["reason"] is None and honest["reason_text"] is None


def test_batch_items_carry_reason_text_and_translated_errors(
        zh_client: FlaskClient, auth: dict[str, str]) -> None:
    start = factories.today_at(7)
    fast = factories.metro(start=start, ended_at=(start + timedelta(minutes=2)).isoformat())
    old = factories.metro(start=factories.today_at(8) - timedelta(days=40))
    r = zh_client.post("/v1/events/batch", json={"events": [fast, old]},
                       headers={**auth, **ZH})
    assert r.status_code == 200, r.json
    first, second = r.json["results"]
    assert first["result"]["reason_text"] == "行程速度超出该出行方式的合理范围"
    assert second["error"]["code"] == "event_too_old"
    assert second["error"]["message"] == "事件早于 30 天的补录期限"


def test_the_openapi_document_describes_reason_text(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").json
    prop = spec["components"]["schemas"]["EventResult"]["properties"]["reason_text"]
    assert prop["type"] == "string" and prop["nullable"] is True


def test_rewards_show_their_title_and_description_in_the_requests_language(
        zh_app: Flask, zh_client: FlaskClient, token: Callable[..., str]) -> None:
    rt = zh_app.extensions["carbon_credits"]
    reward_id = rewards.approved(rt, title={"zh": "地铁优惠券", "en": "Metro coupon"},
                                 description={"zh": "一次地铁", "en": "One metro ride"})
    auth = {"Authorization": f"Bearer {token(rewards.user().sub)}"}
    zh = zh_client.get(f"/v1/rewards/{reward_id}", headers={**auth, **ZH}).json
    en = zh_client.get(f"/v1/rewards/{reward_id}", headers={**auth, **EN}).json
    default = zh_client.get(f"/v1/rewards/{reward_id}", headers=auth).json
    assert (zh["title_text"], zh["description_text"]) == ("地铁优惠券", "一次地铁")
    assert (en["title_text"], en["description_text"]) == ("Metro coupon", "One metro ride")
    assert default["title_text"] == "地铁优惠券"
    assert zh["title"] == en["title"] == {"zh": "地铁优惠券", "en": "Metro coupon"}
    listed = zh_client.get("/v1/rewards", headers={**auth, **EN}).json["items"]
    assert {"id": reward_id, "title_text": "Metro coupon"}.items() <= next(
        r for r in listed if r["id"] == reward_id).items()
