"""calendars: experts' calendar connections (CalDAV, Google), their calendars, busy times read from them,
the outbox of booking events written into them; meetings.external_ref for Google Meet

Revision ID: 0014_calendars
Revises: 0013_front_desk
Create Date: 2026-12-07 14:27:56.170343

"""
from alembic import op
import sqlalchemy as sa
import expertbook.database


# revision identifiers, used by Alembic.
revision = '0014_calendars'
down_revision = '0013_front_desk'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('calendar_connections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('secrets', sa.Text(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('failing_since', expertbook.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_ok_at', expertbook.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('next_refresh_at', expertbook.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', expertbook.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('connected_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('caldav', 'google')", name=op.f('ck_calendar_connections_kind')),
    sa.CheckConstraint("status IN ('connected', 'unreachable', 'refused', 'reconnect_needed')", name=op.f('ck_calendar_connections_status')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_calendar_connections_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_connections')),
    sa.UniqueConstraint('user_id', 'kind', name=op.f('uq_calendar_connections_user_id_kind'))
    )
    with op.batch_alter_table('calendar_connections', schema=None) as batch_op:
        batch_op.create_index('ix_calendar_connections_next_refresh_at', ['next_refresh_at'], unique=False)

    op.create_table('calendar_calendars',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('remote_id', sa.String(length=1000), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('check_conflicts', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('write_bookings', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('busy_fetched_at', expertbook.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['calendar_connections.id'], name=op.f('fk_calendar_calendars_connection_id_calendar_connections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_calendars')),
    sa.UniqueConstraint('connection_id', 'remote_id', name=op.f('uq_calendar_calendars_connection_id_remote_id'))
    )
    op.create_table('calendar_busy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('calendar_id', sa.Integer(), nullable=False),
    sa.Column('expert_id', sa.Integer(), nullable=False),
    sa.Column('start_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('end_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['calendar_id'], ['calendar_calendars.id'], name=op.f('fk_calendar_busy_calendar_id_calendar_calendars'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['expert_id'], ['expert_profiles.id'], name=op.f('fk_calendar_busy_expert_id_expert_profiles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_busy'))
    )
    with op.batch_alter_table('calendar_busy', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calendar_busy_calendar_id'), ['calendar_id'], unique=False)
        batch_op.create_index('ix_calendar_busy_expert_end', ['expert_id', 'end_at'], unique=False)

    op.create_table('calendar_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=False),
    sa.Column('calendar_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', expertbook.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', expertbook.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'written', 'waiting', 'deleted', 'failed')", name=op.f('ck_calendar_events_status')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_calendar_events_booking_id_bookings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['calendar_id'], ['calendar_calendars.id'], name=op.f('fk_calendar_events_calendar_id_calendar_calendars'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_events')),
    sa.UniqueConstraint('booking_id', 'calendar_id', name=op.f('uq_calendar_events_booking_id_calendar_id'))
    )
    with op.batch_alter_table('calendar_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calendar_events_calendar_id'), ['calendar_id'], unique=False)
        batch_op.create_index('ix_calendar_events_next_attempt_at', ['next_attempt_at'], unique=False)

    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_ref', sa.String(length=1000), nullable=True))



def downgrade():
    # The connections hold experts' grants and app passwords, and a Meet meeting's calendar is where its
    # event lives: going below this revision would lose them. Refuse rather than drop what someone set up.
    bind = op.get_bind()
    connections = bind.execute(sa.text("SELECT COUNT(*) FROM calendar_connections")).scalar()
    meet = bind.execute(sa.text("SELECT COUNT(*) FROM meetings WHERE external_ref IS NOT NULL")).scalar()
    if connections or meet:
        raise RuntimeError(
            f"refusing to downgrade below 0014_calendars: {connections} calendar connection(s) and {meet} Google Meet "
            "meeting(s) would be lost. Disconnect the calendars first (each expert's calendar page), or restore a backup."
        )
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.drop_column('external_ref')

    with op.batch_alter_table('calendar_events', schema=None) as batch_op:
        batch_op.drop_index('ix_calendar_events_next_attempt_at')
        batch_op.drop_index(batch_op.f('ix_calendar_events_calendar_id'))

    op.drop_table('calendar_events')
    with op.batch_alter_table('calendar_busy', schema=None) as batch_op:
        batch_op.drop_index('ix_calendar_busy_expert_end')
        batch_op.drop_index(batch_op.f('ix_calendar_busy_calendar_id'))

    op.drop_table('calendar_busy')
    op.drop_table('calendar_calendars')
    with op.batch_alter_table('calendar_connections', schema=None) as batch_op:
        batch_op.drop_index('ix_calendar_connections_next_refresh_at')

    op.drop_table('calendar_connections')
