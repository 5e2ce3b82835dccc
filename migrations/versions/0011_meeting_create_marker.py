"""video: meetings.create_marker, so a Zoom create whose answer was lost is adopted, not repeated

Revision ID: 0011_meeting_create_marker
Revises: 0010_account_control
Create Date: 2026-11-30 16:00:00

"""
import sqlalchemy as sa
from alembic import op

from expertbook.migration_guard import refuse_if_data, table_has_rows


revision = '0011_meeting_create_marker'
down_revision = '0010_account_control'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('create_marker', sa.String(length=80), nullable=True))


def downgrade():
    # Keeps every row or refuses, before changing anything (expertbook/migration_guard.py).
    refuse_if_data(revision, {"Zoom creates awaiting their check": "SELECT count(*) FROM meetings WHERE create_marker IS NOT NULL"})
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.drop_column('create_marker')
