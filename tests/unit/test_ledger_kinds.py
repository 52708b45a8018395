"""verify-ledger's rule on entry kinds (ledger/verification.py ``_kind_problem``): an
entry is accepted only as the code path of its kind writes it; pure, no database."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from carbon_credits.config import Config, ConfigError, parse_chain_keys
from carbon_credits.ledger.verification import _kind_problem
from carbon_credits.storage.models import Event, LedgerEntry, Redemption, RewardRedemption


def _entry(kind: str, points: int, **more: object) -> LedgerEntry:
    return LedgerEntry(user_id="u", seq=1, kind=kind, points=points, ug=more.pop("ug", 0),
                       balance_after=points, **more)


def _event(status: str = "credited", user: str = "u") -> Event:
    return Event(id=7, user_id=user, event_id="e", status=status, points=3,
                 credited_ug=3_000_000)


REDEMPTION = Redemption(id=9, user_id="u", points=10)


def test_earn_and_reversal_follow_their_event() -> None:
    assert _kind_problem(_entry("earn", 3, ug=3_000_000), _event(), None, None) is None
    assert _kind_problem(_entry("reversal", -3, ug=-3_000_000), _event("reversed"),
                         None, None) is None
    assert "which is credited" in str(_kind_problem(
        _entry("reversal", -3, ug=-3_000_000), _event(), None, None))
    assert "another user" in str(_kind_problem(
        _entry("earn", 3, ug=3_000_000), _event(user="v"), None, None))
    assert "without its event" in str(_kind_problem(_entry("earn", 3), None, None, None))


def test_redeem_follows_its_redemption() -> None:
    assert _kind_problem(_entry("redeem", -10), None, REDEMPTION, None) is None
    assert "without a redemption" in str(_kind_problem(_entry("redeem", -10), None, None, None))
    assert "for redemption of 10" in str(_kind_problem(_entry("redeem", -11), None,
                                                       REDEMPTION, None))


@pytest.mark.parametrize("made, forged", [
    (None, True),
    (RewardRedemption(state="issued", points=10), True),
    (RewardRedemption(state="cancelled", points=10), False)])
def test_an_adjustment_is_only_a_cancelled_reward_redemptions_refund(
        made: RewardRedemption | None, forged: bool) -> None:
    problem = _kind_problem(_entry("adjustment", 10), None, REDEMPTION, made)
    assert (problem is not None and "forged" in problem) is forged
    assert "forged" in str(_kind_problem(_entry("adjustment", 10), None, None, None))


@pytest.mark.parametrize("kind, made, points, problem", [
    ("hold", RewardRedemption(state="pending", points=10, hold=True), 0, None),
    ("hold", RewardRedemption(state="shipped", points=10, hold=True), 0, None),
    ("hold", RewardRedemption(state="pending", points=10, hold=False), 0, "forged"),
    ("hold", None, 0, "forged"),
    ("hold", RewardRedemption(state="pending", points=10, hold=True), -10, "moves points"),
    ("release", RewardRedemption(state="cancelled", points=10, hold=True), 0, None),
    ("release", RewardRedemption(state="pending", points=10, hold=True), 0, "not cancelled"),
    ("release", RewardRedemption(state="cancelled", points=10, hold=False), 0, "forged"),
    ("redeem", RewardRedemption(state="shipped", points=10, hold=True), -10, None),
    ("redeem", RewardRedemption(state="pending", points=10, hold=True), -10, "not shipped"),
    ("redeem", RewardRedemption(state="cancelled", points=10, hold=True), -10,
     "not shipped"),
    ("adjustment", RewardRedemption(state="cancelled", points=10, hold=True), 10, "forged"),
])
def test_holds_and_releases_follow_a_held_reward_redemption(
        kind: str, made: RewardRedemption | None, points: int, problem: str | None) -> None:
    found = _kind_problem(_entry(kind, points), None, REDEMPTION, made)
    assert (found is None) if problem is None else (problem in str(found))
    assert "without a redemption" in str(_kind_problem(_entry(kind, points), None, None,
                                                       made))


def test_a_kind_no_code_path_writes_is_forged() -> None:
    assert "written by no code path" in str(_kind_problem(_entry("gift", 5), None, None, None))


def test_chain_keys_parse_in_order_and_bad_ones_name_the_setting() -> None:
    k1, k2 = base64.b64encode(b"1" * 32).decode(), base64.b64encode(b"2" * 16).decode()
    assert parse_chain_keys(f"k2:{k2}, k1:{k1}") == (("k2", b"2" * 16), ("k1", b"1" * 32))
    for bad in ("k1", f"k1:{base64.b64encode(b'short').decode()}", "k1:!!!",
                f"k1:{k1},k1:{k1}", ","):
        with pytest.raises(ConfigError, match="LEDGER_CHAIN_KEYS"):
            parse_chain_keys(bad)


def test_without_keys_a_random_one_is_kept_in_instance(tmp_path: Path) -> None:
    path = tmp_path
    first = Config(instance_path=path).ledger_chain_keyring()
    assert first == Config(instance_path=path).ledger_chain_keyring()
    assert first[0][0] == "instance" and len(first[0][1]) == 32
    assert (path / "ledger-chain-key").stat().st_mode & 0o077 == 0
