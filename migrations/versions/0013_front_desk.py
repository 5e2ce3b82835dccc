"""clinic front desk: walk-ins, staff and session cancellations, moves, waiting lists, the doctors directory

Appointments may have no account (walk-ins, with an optional email of their own) and record who
ended them and why, and the move that replaced them; sessions record their cancellation; doctors get
a short bio and an active flag; full sessions get a waiting list. The new appointment columns have
server defaults only, so the booking's INSERT is unchanged.

Revision ID: 0013_front_desk
Revises: 0012_experts_more
Create Date: 2026-11-30 14:03:44.105552

"""
from alembic import op

from expertbook.migration_guard import refuse_if_data, table_has_rows
import sqlalchemy as sa
import expertbook.database


# revision identifiers, used by Alembic.
revision = '0013_front_desk'
down_revision = '0012_experts_more'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('waitlist_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slot_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('patient_name', sa.String(length=120), nullable=False),
    sa.Column('contact_number', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('joined_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', expertbook.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_waitlist_entries_appointment_id_appointments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['slot_id'], ['slots.id'], name=op.f('fk_waitlist_entries_slot_id_slots'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_waitlist_entries_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_entries'))
    )
    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.create_index('ix_waitlist_entries_slot_status_id', ['slot_id', 'status', 'id'], unique=False)
        batch_op.create_index('ix_waitlist_entries_user_status', ['user_id', 'status'], unique=False)
        batch_op.create_index('uq_waitlist_entries_waiting_patient', ['slot_id', 'user_id', 'patient_name'], unique=True, sqlite_where=sa.text("status = 'waiting'"), postgresql_where=sa.text("status = 'waiting'"))

    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('walk_in', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('email', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('cancelled_by', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('cancel_reason', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('moved_from_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('moved_to_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('calendar_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('calendar_sequence', sa.Integer(), server_default=sa.text('0'), nullable=False))

    with op.batch_alter_table('doctors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bio', sa.String(length=500), server_default='', nullable=False))
        batch_op.add_column(sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False))

    with op.batch_alter_table('slots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancelled_at', expertbook.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancel_reason', sa.String(length=300), nullable=True))



def downgrade():
    # Keeps every row or refuses, before changing anything (expertbook/migration_guard.py).
    refuse_if_data(revision, {
        "waiting-list places": table_has_rows("waitlist_entries"),
        "walk-ins, cancellations, moves and patients' addresses": (
            "SELECT count(*) FROM appointments WHERE walk_in = true OR email IS NOT NULL OR cancel_reason IS NOT NULL "
            "OR cancelled_by IS NOT NULL OR moved_to_id IS NOT NULL OR moved_from_id IS NOT NULL"),
        "calendar updates sent to patients": "SELECT count(*) FROM appointments WHERE calendar_id IS NOT NULL OR calendar_sequence > 0",
        "cancelled sessions": "SELECT count(*) FROM slots WHERE cancelled_at IS NOT NULL OR cancel_reason IS NOT NULL",
        "doctors' bios and inactive doctors": "SELECT count(*) FROM doctors WHERE bio <> '' OR active = false",
    })
    with op.batch_alter_table('slots', schema=None) as batch_op:
        batch_op.drop_column('cancel_reason')
        batch_op.drop_column('cancelled_at')

    with op.batch_alter_table('doctors', schema=None) as batch_op:
        batch_op.drop_column('active')
        batch_op.drop_column('bio')

    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_column('calendar_sequence')
        batch_op.drop_column('calendar_id')
        batch_op.drop_column('moved_to_id')
        batch_op.drop_column('moved_from_id')
        batch_op.drop_column('cancel_reason')
        batch_op.drop_column('cancelled_by')
        batch_op.drop_column('email')
        batch_op.drop_column('walk_in')

    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.drop_index('uq_waitlist_entries_waiting_patient', sqlite_where=sa.text("status = 'waiting'"), postgresql_where=sa.text("status = 'waiting'"))
        batch_op.drop_index('ix_waitlist_entries_user_status')
        batch_op.drop_index('ix_waitlist_entries_slot_status_id')

    op.drop_table('waitlist_entries')
