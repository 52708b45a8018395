"""pipl: personal-data rights (issue 23): consents to the privacy notice, erasures

Revision ID: 0009_pipl
Revises: 0008_keyed_chain
Create Date: 2026-12-07 15:30:00

``consents`` is append-only history: each acceptance or withdrawal of a privacy notice
version, with its time (carbon_credits/privacy). Existing users get no row here: whether
their events need one is the deployment's choice (CONSENT_REQUIRED; ``flask deem-consent``
records a deemed acceptance, see the README's "Consent").

``erasures`` records each erased user (a pseudonym, and a keyed hash of the subject). The
ledger's append-only trigger is replaced by one that still refuses every DELETE and every
UPDATE but one: erasure's move of an entry to the erased user's pseudonym (``user_id``
from a subject to an ``erased-...`` pseudonym, and ``hash`` re-chained under the key),
every other column unchanged. The service role gets UPDATE on those two columns only
(storage/roles.py); without the chain key a moved entry fails verify-ledger.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009_pipl'
down_revision = '0009_expiry'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

KEPT = ("id", "seq", "kind", "points", "ug", "balance_after", "event_pk", "redemption_pk",
        "mode", "factor_version_id", "created_at")
"""The ledger entry columns an erasure may not change."""
ERASED = "NEW.user_id LIKE 'erased-%' AND OLD.user_id NOT LIKE 'erased-%'"

PG_ERASURE_TRIGGER = f"""
CREATE FUNCTION ledger_entries_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND {ERASED}
       AND ROW({', '.join('NEW.' + c for c in KEPT)})
           IS NOT DISTINCT FROM ROW({', '.join('OLD.' + c for c in KEPT)}) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$
"""
SQLITE_REFUSE_UPDATE = (
    "CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries {when}"
    "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only: UPDATE refused'); END")


def upgrade() -> None:
    op.create_table(
        'consents',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('notice_version', sa.String(length=32), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('note', sa.String(length=300), nullable=True),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("action IN ('accept', 'withdraw')",
                           name=op.f('ck_consents_known_action')),
        sa.CheckConstraint("source IN ('user', 'deemed')",
                           name=op.f('ck_consents_known_source')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_consents')),
    )
    op.create_index('ix_consents_user_id_id', 'consents', ['user_id', 'id'])
    op.create_table(
        'erasures',
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('subject_mac', sa.LargeBinary(length=32), nullable=False),
        sa.Column('key_name', sa.String(length=64), nullable=False),
        sa.Column('pseudonym', sa.String(length=128), nullable=False),
        sa.Column('erased_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=128), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_erasures')),
        sa.UniqueConstraint('subject_mac', name=op.f('uq_erasures_subject_mac')),
        sa.UniqueConstraint('pseudonym', name=op.f('uq_erasures_pseudonym')),
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(PG_ERASURE_TRIGGER)
        op.execute('DROP TRIGGER ledger_entries_append_only ON ledger_entries')
        op.execute('CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON '
                   'ledger_entries FOR EACH ROW EXECUTE FUNCTION ledger_entries_change()')
    else:
        same = ' AND '.join(f'NEW.{c} IS OLD.{c}' for c in KEPT)
        op.execute('DROP TRIGGER IF EXISTS ledger_entries_no_update')
        op.execute(SQLITE_REFUSE_UPDATE.format(when=f'WHEN NOT ({ERASED} AND {same}) '))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER ledger_entries_append_only ON ledger_entries')
        op.execute('CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON '
                   'ledger_entries FOR EACH ROW EXECUTE FUNCTION refuse_change()')
        op.execute('DROP FUNCTION ledger_entries_change()')
    else:
        op.execute('DROP TRIGGER IF EXISTS ledger_entries_no_update')
        op.execute(SQLITE_REFUSE_UPDATE.format(when=''))
    op.drop_table('erasures')
    op.drop_index('ix_consents_user_id_id', table_name='consents')
    op.drop_table('consents')
