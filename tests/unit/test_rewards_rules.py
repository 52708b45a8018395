"""The rewards' decisions and voucher codes, without a database."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pypdf
import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbon_credits.errors import InvalidInput
from carbon_credits.rewards import certificates, rules, vouchers
from carbon_credits.storage.models import Reward, RewardRedemption

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def reward(**overrides: object) -> Reward:
    values: dict[str, object] = dict(
        kind="voucher", status="approved", price_points=10, stock=10, stock_left=10,
        per_user_limit=2, valid_from=NOW - timedelta(days=1),
        valid_until=NOW + timedelta(days=1), city="shenzhen")
    values.update(overrides)
    return Reward(**values)


def refusal_code(r: Reward, quantity: int = 1, already: int = 0, city: str = "shenzhen"
                 ) -> str | None:
    found = rules.redeem_refusal(r, now=NOW, city=city, quantity=quantity, already=already)
    return None if found is None else found.code


def test_an_approved_valid_reward_in_stock_of_the_users_city_may_be_redeemed() -> None:
    assert refusal_code(reward()) is None


@pytest.mark.parametrize(("overrides", "quantity", "already", "city", "code"), [
    ({"status": "pending_review"}, 1, 0, "shenzhen", "reward_not_approved"),
    ({"status": "rejected"}, 1, 0, "shenzhen", "reward_not_approved"),
    ({"valid_from": NOW + timedelta(seconds=1)}, 1, 0, "shenzhen", "reward_not_yet_valid"),
    ({"valid_until": NOW}, 1, 0, "shenzhen", "reward_expired"),
    ({}, 1, 0, "wuhan", "reward_other_city"),
    ({}, 1, 2, "shenzhen", "over_user_limit"),
    ({}, 3, 0, "shenzhen", "over_user_limit"),
    ({"stock_left": 0}, 1, 0, "shenzhen", "out_of_stock"),
    ({"stock_left": 1}, 2, 0, "shenzhen", "out_of_stock"),
])
def test_a_reward_is_refused_with_a_reason_code(overrides: dict[str, object], quantity: int,
                                                already: int, city: str, code: str) -> None:
    assert refusal_code(reward(**overrides), quantity, already, city) == code


def made(state: str, age: timedelta = timedelta(hours=1)) -> RewardRedemption:
    return RewardRedemption(state=state, quantity=1, points=10, created_at=NOW - age)


WEEK = timedelta(days=7)


@pytest.mark.parametrize(("kind", "state", "used", "age", "code"), [
    ("voucher", "issued", 0, timedelta(hours=1), None),
    ("physical", "pending", 0, timedelta(days=6), None),
    ("voucher", "issued", 1, timedelta(hours=1), "voucher_used"),
    ("voucher", "used", 1, timedelta(hours=1), "voucher_used"),
    ("physical", "shipped", 0, timedelta(hours=1), "already_shipped"),
    ("donation", "donated", 0, timedelta(hours=1), "not_cancellable"),
    ("voucher", "issued", 0, WEEK, "cancel_window_closed"),
])
def test_cancellation_rules(kind: str, state: str, used: int, age: timedelta,
                            code: str | None) -> None:
    found = rules.cancel_refusal(reward(kind=kind), made(state, age), used_codes=used, now=NOW,
                                 window=WEEK)
    assert (None if found is None else found.code) == code


def test_a_physical_good_moves_pending_shipped_delivered_and_no_other_way() -> None:
    assert rules.next_shipping("physical", "pending", "shipped") is None
    assert rules.next_shipping("physical", "shipped", "delivered") is None
    for state, wanted in [("pending", "delivered"), ("delivered", "shipped"),
                          ("shipped", "shipped"), ("cancelled", "shipped")]:
        refused = rules.next_shipping("physical", state, wanted)
        assert refused is not None and refused.code == "invalid_transition"
    refused = rules.next_shipping("voucher", "issued", "shipped")
    assert refused is not None and refused.code == "not_physical"


def test_generated_codes_use_the_unambiguous_alphabet_and_differ() -> None:
    codes = {vouchers.generate() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == vouchers.GENERATED_LENGTH and set(c) <= set(vouchers.ALPHABET)
               for c in codes)
    assert not set("01OIL") & set(vouchers.ALPHABET)


def test_a_pool_upload_is_read_from_json_or_csv() -> None:
    assert vouchers.pool_from_json({"codes": ["ABCD-1", "ABCD-2"]}) == ["ABCD-1", "ABCD-2"]
    assert vouchers.pool_from_json(["ABCD-1"]) == ["ABCD-1"]
    assert vouchers.pool_from_csv(b"code\r\nABCD-1,extra\r\n\r\nABCD-2\r\n") == [
        "ABCD-1", "ABCD-2"]


@pytest.mark.parametrize("value", [
    {"codes": ["ABCD-1", "ABCD-1"]}, {"codes": ["no spaces"]}, {"codes": []}, {"codes": [1]},
    {"codes": ["ABCD-1"], "more": 1}, "ABCD-1"])
def test_a_bad_or_repeated_json_pool_is_refused_naming_the_codes(value: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        vouchers.pool_from_json(value)
    assert set(refused.value.fields) == {"codes"}


@pytest.mark.parametrize("body", [b"ABCD-1\nABCD-2\nABCD-1\n", b"\xff\xfe", b"code\n"])
def test_a_bad_or_repeated_csv_pool_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidInput) as refused:
        vouchers.pool_from_csv(body)
    assert set(refused.value.fields) <= {"codes", "body"}


@given(st.lists(st.from_regex(vouchers.CODE, fullmatch=True), min_size=1, max_size=30))
def test_an_upload_passes_exactly_when_no_code_repeats(codes: list[str]) -> None:
    if len(set(codes)) == len(codes):
        assert vouchers.check_pool(codes) == codes
    else:
        with pytest.raises(InvalidInput):
            vouchers.check_pool(codes)


def test_the_certificate_is_a_pdf_naming_the_donor_project_units_date_and_hash() -> None:
    facts = {"user": "u-0123456789abcdef0123", "project": "Alxa desert greening",
             "unit": "1 tree planted", "units": 3, "date": "2026-12-07", "points": 300,
             "hash": "ab" * 32, "title_zh": "种一棵梭梭树", "title_en": "Plant a saxaul tree"}
    pdf = certificates.render(facts)
    assert pdf.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    for value in ("u-0123456789abcdef0123", "Alxa desert greening", "3 x 1 tree planted",
                  "2026-12-07", "ab" * 32, "种一棵梭梭树"):
        assert value in text


def test_only_a_physical_goods_points_are_held() -> None:
    assert [kind for kind in rules.KINDS if rules.holds(kind)] == ["physical"]


@pytest.mark.parametrize("state, wanted, hold, balance, code", [
    ("pending", "shipped", True, 30, None),
    ("pending", "shipped", True, 29, "hold_not_covered"),  # a reversal took reserved points
    ("pending", "shipped", False, 0, None),  # spent at once before holds: nothing to cover
    ("shipped", "delivered", True, 0, None),  # spent at shipping: delivery moves no points
    ("cancelled", "shipped", True, 100, "invalid_transition"),  # a cancellation won
    ("shipped", "shipped", True, 100, "invalid_transition"),  # shipped once: spent once
])
def test_shipping_a_held_good_needs_the_balance_to_cover_its_points(
        state: str, wanted: str, hold: bool, balance: int, code: str | None) -> None:
    refusal = rules.fulfil_refusal("physical", state, wanted, hold=hold, points=30,
                                   balance=balance)
    assert (refusal.code if refusal else None) == code


@pytest.mark.parametrize("kind, state, code", [
    ("physical", "pending", None),
    ("physical", "shipped", "already_shipped"),
    ("physical", "delivered", "already_shipped"),
    ("voucher", "issued", "not_physical"),
])
def test_a_merchant_cancels_only_a_good_not_yet_shipped(kind: str, state: str,
                                                        code: str | None) -> None:
    refusal = rules.merchant_cancel_refusal(kind, state)
    assert (refusal.code if refusal else None) == code
