"""notifications: outbox rows that name their email (kind + ref_id) and are composed by the worker

Revision ID: 0007_composed_emails
Revises: 0006_meetings
Create Date: 2026-11-21 16:05:00

"""
from alembic import op

from expertbook.migration_guard import refuse_if_data, table_has_rows
import sqlalchemy as sa


revision = '0007_composed_emails'
down_revision = '0006_meetings'
branch_labels = None
depends_on = None

_PARTS = (
    ('to_email', sa.String(length=254)),
    ('to_name', sa.String(length=120)),
    ('subject', sa.String(length=255)),
    ('template', sa.String(length=80)),
    ('context', sa.JSON()),
    # Given when the row is composed, and kept for every resend.
    ('message_id', sa.String(length=255)),
)
_CHECK = 'ref_id IS NOT NULL OR (template IS NOT NULL AND message_id IS NOT NULL)'


def upgrade():
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ref_id', sa.Integer(), nullable=True))
        for name, type_ in _PARTS:
            batch_op.alter_column(name, existing_type=type_, nullable=True)
        batch_op.create_check_constraint(op.f('ck_outbox_emails_written_or_named'), _CHECK)
        # Unique only where set: named rows (no Message-ID yet) and rows without a dedupe key cost no index write.
        for column in ('message_id', 'dedupe_key'):
            batch_op.drop_constraint(op.f(f'uq_outbox_emails_{column}'), type_='unique')
    if op.get_bind().dialect.name == 'postgresql':
        # Built CONCURRENTLY, outside the migration's transaction: every booking writes this table, and
        # a plain CREATE INDEX would hold them all up while it reads a large outbox.
        with op.get_context().autocommit_block():
            for column in ('message_id', 'dedupe_key'):
                op.create_index(f'uq_outbox_emails_{column}', 'outbox_emails', [column], unique=True,
                                postgresql_where=sa.text(f'{column} IS NOT NULL'), postgresql_concurrently=True)
    else:
        for column in ('message_id', 'dedupe_key'):
            op.create_index(f'uq_outbox_emails_{column}', 'outbox_emails', [column], unique=True,
                            sqlite_where=sa.text(f'{column} IS NOT NULL'))


def downgrade():
    # Keeps every row or refuses, before changing anything (expertbook/migration_guard.py).
    refuse_if_data(revision, {"emails not composed yet": "SELECT count(*) FROM outbox_emails WHERE template IS NULL"})
    for column in ('message_id', 'dedupe_key'):
        op.drop_index(f'uq_outbox_emails_{column}', table_name='outbox_emails')
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        for column in ('message_id', 'dedupe_key'):
            batch_op.create_unique_constraint(op.f(f'uq_outbox_emails_{column}'), [column])
        batch_op.drop_constraint(op.f('ck_outbox_emails_written_or_named'), type_='check')
        for name, type_ in _PARTS:
            batch_op.alter_column(name, existing_type=type_, nullable=False)
        batch_op.drop_column('ref_id')
