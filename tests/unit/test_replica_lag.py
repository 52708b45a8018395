"""The replica's lag from what it says of itself (storage.replica.Lag), without a server."""

from __future__ import annotations

from carbon_credits.storage.replica import Lag


def test_a_primary_has_no_lag() -> None:
    assert Lag(standby=False, streaming=False, caught_up=None, replay_age_s=None).seconds == 0


def test_a_caught_up_streaming_replica_has_no_lag_however_old_its_last_replay() -> None:
    """An idle primary sends nothing: the last replayed transaction's age is no lag."""
    lag = Lag(standby=True, streaming=True, caught_up=True, replay_age_s=86_400.0)
    assert lag.seconds == 0 and lag.within(0)


def test_a_replica_replaying_behind_is_as_old_as_its_last_replay() -> None:
    lag = Lag(standby=True, streaming=True, caught_up=False, replay_age_s=42.5)
    assert lag.seconds == 42.5
    assert lag.within(60) and not lag.within(30)


def test_a_replica_not_streaming_has_an_unknown_lag_never_within_a_bound() -> None:
    lag = Lag(standby=True, streaming=False, caught_up=True, replay_age_s=0.1)
    assert lag.seconds is None and not lag.within(10**9)


def test_behind_with_nothing_replayed_yet_is_unknown() -> None:
    lag = Lag(standby=True, streaming=True, caught_up=False, replay_age_s=None)
    assert lag.seconds is None and not lag.within(10**9)
