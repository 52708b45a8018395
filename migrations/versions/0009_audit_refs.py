"""audit references: the audit log names users by an opaque reference; record-file errors
carry a digest of the row's user reference

Revision ID: 0009_audit_refs
Revises: 0009_notices
Create Date: 2026-12-07 18:30:00

Erasure must leave no user id behind, and the audit log is append-only: so a record
about a user names them by ``subject_ref``, a random reference held with the user's id in
``audit_subjects`` (the one row erasure moves to the pseudonym), never by id.

Existing records named users in their target (``user:<id>`` of a freeze or unfreeze,
``event:<id>/<event_id>`` of a review or a reversal). They are rewritten here, once, by
the tables' owner with the append-only trigger held off for the statement: the target
becomes ``user:<ref>`` / ``event:<surrogate id>`` and ``subject_ref`` is set; nothing
else of any record changes. A user erased before this revision has no row any more:
their records get a reference that leads to nobody (their pseudonym cannot be found
from the subject, by design). A downgrade keeps the rewritten targets.

``record_file_errors.ref_digest``: a 16-byte SHA-256 of (provider, user_ref) of a refused
row, what erasure finds the rows of a user's bindings by; rows written before it have
none (erasure scrubs those that quote the reference).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0009_audit_refs'
down_revision = '0009_notices'
branch_labels = None
depends_on = None

USER_ACTIONS = ('user.freeze', 'user.unfreeze', 'review.approve', 'review.reject',
                'event.reverse')


def upgrade() -> None:
    op.create_table(
        'audit_subjects',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('ref', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_audit_subjects')))
    op.create_index(op.f('ix_audit_subjects_ref'), 'audit_subjects', ['ref'])
    op.add_column('audit_log', sa.Column('subject_ref', sa.String(length=32), nullable=True))
    op.create_index(op.f('ix_audit_log_subject_ref'), 'audit_log', ['subject_ref'])
    op.add_column('record_file_errors',
                  sa.Column('ref_digest', sa.LargeBinary(length=16), nullable=True))
    op.create_index(op.f('ix_record_file_errors_ref_digest'), 'record_file_errors',
                    ['ref_digest'])
    _rewrite_audit_targets()


def _rewrite_audit_targets() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, target FROM audit_log WHERE action IN :actions ORDER BY id"
    ).bindparams(sa.bindparam('actions', expanding=True)),
        {'actions': list(USER_ACTIONS)}).all()
    changes: list[dict[str, object]] = []
    refs: dict[str, str] = {}
    now = datetime.now(UTC)
    for record_id, target in rows:
        kind, _, rest = str(target).partition(':')
        if kind == 'user':
            user_id, event_id = rest, None
        elif kind == 'event' and '/' in rest:
            user_id, _, event_id = rest.partition('/')
        else:
            continue  # written by this revision's code already
        if user_id not in refs:
            refs[user_id] = _ref(bind, user_id, now)
        ref = refs[user_id]
        if event_id is None:
            new_target = f'user:{ref}'
        else:
            pk = bind.execute(sa.text(
                "SELECT id FROM events WHERE user_id = :u AND event_id = :e"),
                {'u': user_id, 'e': event_id}).scalar()
            new_target = f'event:{pk}' if pk is not None else 'event:erased'
        changes.append({'id': record_id, 'target': new_target, 'ref': ref})
    if not changes:
        return
    # The owner's one-time rewrite of names, with the append-only trigger held off.
    postgres = bind.dialect.name == 'postgresql'
    if postgres:
        op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    else:
        op.execute("DROP TRIGGER audit_log_no_update")
    bind.execute(sa.text("UPDATE audit_log SET target = :target, subject_ref = :ref "
                         "WHERE id = :id"), changes)
    if postgres:
        op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    else:
        op.execute("CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
                   "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); "
                   "END")


def _ref(bind: sa.Connection, user_id: str, now: datetime) -> str:
    """A new reference; kept in audit_subjects while the user exists, else leading to
    nobody (erased before: nothing may lead back to them)."""
    ref = 'subj-' + secrets.token_hex(12)
    if bind.execute(sa.text("SELECT 1 FROM users WHERE id = :u"), {'u': user_id}).first():
        bind.execute(sa.text("INSERT INTO audit_subjects (user_id, ref, created_at) "
                             "VALUES (:u, :r, :t)"), {'u': user_id, 'r': ref, 't': now})
    return ref


def downgrade() -> None:
    op.drop_index(op.f('ix_record_file_errors_ref_digest'), table_name='record_file_errors')
    op.drop_index(op.f('ix_audit_log_subject_ref'), table_name='audit_log')
    with op.batch_alter_table('record_file_errors') as batch:
        batch.drop_column('ref_digest')
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_column('audit_log', 'subject_ref')
    else:
        # SQLite drops a column in place (3.35+): batch mode would copy the table and
        # lose its append-only triggers.
        op.execute("ALTER TABLE audit_log DROP COLUMN subject_ref")
    op.drop_index(op.f('ix_audit_subjects_ref'), table_name='audit_subjects')
    op.drop_table('audit_subjects')
