"""clinic: drop ix_appointments_slot_status; uq_appointments_slot_id_token_number serves those reads

Every read of a slot's appointments filters or orders by token number within the slot (the slot's
list, the next waiting token, tokens ahead), which the unique (slot_id, token_number) index answers
on its own; the second index only cost every booking one more write.

Revision ID: 0008_appointments_slot_index
Revises: 0007_composed_emails
Create Date: 2026-11-21 16:40:00

"""
from alembic import op


revision = '0008_appointments_slot_index'
down_revision = '0007_composed_emails'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index('ix_appointments_slot_status')


def downgrade():
    # Keeps every row: nothing to refuse.
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.create_index('ix_appointments_slot_status', ['slot_id', 'status'], unique=False)
