"""webhooks: subscriptions of hospitals and experts, the events each wants, the delivery outbox and its attempts

The signing secrets are stored encrypted (TOKEN_ENCRYPTION_KEYS). The downgrade refuses while any
subscription exists: it would delete them, their secrets and their delivery logs, which cannot be
brought back.

Revision ID: 0015_webhooks
Revises: 0013_front_desk
Create Date: 2026-12-07 14:28:37.899175

"""
from alembic import op
import sqlalchemy as sa
import expertbook.database


# revision identifiers, used by Alembic.
revision = '0015_webhooks'
down_revision = '0014_calendars'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('webhook_subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('hospital_id', sa.Integer(), nullable=True),
    sa.Column('expert_user_id', sa.Integer(), nullable=True),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('description', sa.String(length=200), server_default='', nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('failing_since', expertbook.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(hospital_id IS NULL) <> (expert_user_id IS NULL)', name=op.f('ck_webhook_subscriptions_one_owner')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_webhook_subscriptions_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['expert_user_id'], ['users.id'], name=op.f('fk_webhook_subscriptions_expert_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['hospital_id'], ['hospitals.id'], name=op.f('fk_webhook_subscriptions_hospital_id_hospitals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_subscriptions'))
    )
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_subscriptions_expert_user_id'), ['expert_user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_subscriptions_hospital_id'), ['hospital_id'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.String(length=40), nullable=False),
    sa.Column('ref_id', sa.Integer(), nullable=True),
    sa.Column('payload', sa.Text(), nullable=True),
    sa.Column('message_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_until', expertbook.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('give_up_at', expertbook.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('occurred_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', expertbook.database.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sending', 'delivered', 'failed')", name=op.f('ck_webhook_deliveries_status')),
    sa.ForeignKeyConstraint(['subscription_id'], ['webhook_subscriptions.id'], name=op.f('fk_webhook_deliveries_subscription_id_webhook_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_subscription_id_id', ['subscription_id', 'id'], unique=False)
        batch_op.create_index('ix_webhook_deliveries_unfinished', ['next_attempt_at'], unique=False, postgresql_where=sa.text("status IN ('pending', 'sending')"), sqlite_where=sa.text("status IN ('pending', 'sending')"))
        batch_op.create_index('uq_webhook_deliveries_message_id', ['message_id'], unique=True, postgresql_where=sa.text('message_id IS NOT NULL'), sqlite_where=sa.text('message_id IS NOT NULL'))

    op.create_table('webhook_subscription_events',
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['subscription_id'], ['webhook_subscriptions.id'], name=op.f('fk_webhook_subscription_events_subscription_id_webhook_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscription_id', 'event_type', name=op.f('pk_webhook_subscription_events'))
    )
    op.create_table('webhook_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('started_at', expertbook.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('response_excerpt', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id'], name=op.f('fk_webhook_attempts_delivery_id_webhook_deliveries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempts'))
    )
    with op.batch_alter_table('webhook_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_attempts_delivery_id', ['delivery_id', 'attempt'], unique=False)



def downgrade():
    count = op.get_bind().execute(sa.text("SELECT count(*) FROM webhook_subscriptions")).scalar_one()
    if count:
        raise RuntimeError(
            f"Refusing to downgrade below 0015_webhooks: it would delete {count} webhook subscription(s) with their "
            "secrets and delivery logs. Delete them on the Webhooks page first, then downgrade again."
        )
    with op.batch_alter_table('webhook_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_attempts_delivery_id')

    op.drop_table('webhook_attempts')
    op.drop_table('webhook_subscription_events')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('uq_webhook_deliveries_message_id', postgresql_where=sa.text('message_id IS NOT NULL'), sqlite_where=sa.text('message_id IS NOT NULL'))
        batch_op.drop_index('ix_webhook_deliveries_unfinished', postgresql_where=sa.text("status IN ('pending', 'sending')"), sqlite_where=sa.text("status IN ('pending', 'sending')"))
        batch_op.drop_index('ix_webhook_deliveries_subscription_id_id')

    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_subscriptions_hospital_id'))
        batch_op.drop_index(batch_op.f('ix_webhook_subscriptions_expert_user_id'))

    op.drop_table('webhook_subscriptions')
