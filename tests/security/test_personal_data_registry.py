"""Every table that holds a user's rows is covered by a registered personal-data holder
(privacy.registry): the export reads it and erasure clears it. A new feature's table with
a user key (listed in storage/distribution.py, or with a user_id / used_by column) fails
here until its package registers a holder and factory.PERSONAL_DATA imports it."""

from __future__ import annotations

from carbon_credits import factory
from carbon_credits.privacy import registry
from carbon_credits.storage.distribution import DISTRIBUTED
from carbon_credits.storage.models import Base

USER_COLUMNS = ("user_id", "used_by")
"""Columns that name a user, beside a distributed table's user key."""


def user_tables() -> set[str]:
    named = {table.name for table in Base.metadata.sorted_tables
             if any(name in table.columns for name in USER_COLUMNS)}
    return named | set(DISTRIBUTED)


def test_every_table_with_a_user_key_has_a_holder() -> None:
    assert factory.PERSONAL_DATA  # imported: every holder registered
    missing = user_tables() - registry.covered_tables()
    assert not missing, (f"no personal-data holder covers {sorted(missing)}: register one "
                         "(privacy.registry.register) and add its module to "
                         "factory.PERSONAL_DATA")


def test_a_table_is_covered_once() -> None:
    tables = [table for holder in registry.HOLDERS.values() for table in holder.tables]
    assert len(tables) == len(set(tables))
    unknown = set(tables) - {t.name for t in Base.metadata.sorted_tables}
    assert not unknown


def test_every_holder_can_erase() -> None:
    assert factory.PERSONAL_DATA
    assert [name for name, holder in registry.HOLDERS.items() if holder.erase is None] == []
