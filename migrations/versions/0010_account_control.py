"""accounts: email verification, one-time email tokens, API tokens as login sessions, deletable accounts

- users.email_verified_at (accounts that exist already count as verified from now on: they were
  made before verification existed, and hiding every expert's page at deploy time would be worse);
- account_tokens: hashed, single-use password-reset and verification tokens;
- login_sessions: kind (web / api), last_seen_at, user_agent, ip_prefix, and an index on expires_at
  for the worker's clean-up;
- hospitals.published (existing hospitals stay published);
- appointments.user_id and bookings.customer_id become nullable with ON DELETE SET NULL, so a
  deleted account's anonymised records stay with the hospital or expert.

Revision ID: 0010_account_control
Revises: 0009_email_templates_by_area
Create Date: 2026-11-22 10:00:00

"""
import sqlalchemy as sa
from alembic import op

from expertbook.migration_guard import refuse_if_data, table_has_rows

import expertbook.database

revision = '0010_account_control'
down_revision = '0009_email_templates_by_area'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'account_tokens',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('purpose', sa.String(length=8), nullable=False),
        sa.Column('bound_to', sa.String(length=64), nullable=False),
        sa.Column('created_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_account_tokens_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_account_tokens')),
    )
    with op.batch_alter_table('account_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_tokens_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_account_tokens_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_verified_at', expertbook.database.UTCDateTime(timezone=True), nullable=True))
    users = sa.table('users', sa.column('email_verified_at', expertbook.database.UTCDateTime(timezone=True)))
    op.execute(users.update().values(email_verified_at=expertbook.database.utcnow()))

    with op.batch_alter_table('login_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), server_default='web', nullable=False))
        batch_op.add_column(sa.Column('last_seen_at', expertbook.database.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('user_agent', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('ip_prefix', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_login_sessions_expires_at', ['expires_at'], unique=False)

    with op.batch_alter_table('hospitals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('published', sa.Boolean(), server_default=sa.false(), nullable=False))
    hospitals = sa.table('hospitals', sa.column('published', sa.Boolean()))
    op.execute(hospitals.update().values(published=True))

    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_constraint('fk_appointments_user_id_users', type_='foreignkey')
        batch_op.alter_column('user_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key(batch_op.f('fk_appointments_user_id_users'), 'users', ['user_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_constraint('fk_bookings_customer_id_users', type_='foreignkey')
        batch_op.alter_column('customer_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key(batch_op.f('fk_bookings_customer_id_users'), 'users', ['customer_id'], ['id'], ondelete='SET NULL')


def downgrade():
    # Keeps every row or refuses, before changing anything (expertbook/migration_guard.py).
    refuse_if_data(revision, {
        "appointments of deleted accounts": "SELECT count(*) FROM appointments WHERE user_id IS NULL",
        "expert bookings of deleted accounts": "SELECT count(*) FROM bookings WHERE customer_id IS NULL",
        "reset and verification links": table_has_rows("account_tokens"),
        "verified email addresses": "SELECT count(*) FROM users WHERE email_verified_at IS NOT NULL",
        "login sessions (API tokens, devices)": table_has_rows("login_sessions"),
        "unpublished hospitals": "SELECT count(*) FROM hospitals WHERE published = false",
    })
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_constraint('fk_bookings_customer_id_users', type_='foreignkey')
        batch_op.alter_column('customer_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key('fk_bookings_customer_id_users', 'users', ['customer_id'], ['id'], ondelete='CASCADE')

    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_constraint('fk_appointments_user_id_users', type_='foreignkey')
        batch_op.alter_column('user_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key('fk_appointments_user_id_users', 'users', ['user_id'], ['id'], ondelete='CASCADE')

    with op.batch_alter_table('hospitals', schema=None) as batch_op:
        batch_op.drop_column('published')

    with op.batch_alter_table('login_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_login_sessions_expires_at')
        batch_op.drop_column('ip_prefix')
        batch_op.drop_column('user_agent')
        batch_op.drop_column('last_seen_at')
        batch_op.drop_column('kind')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('email_verified_at')

    with op.batch_alter_table('account_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_tokens_user_id'))
        batch_op.drop_index(batch_op.f('ix_account_tokens_expires_at'))
    op.drop_table('account_tokens')
