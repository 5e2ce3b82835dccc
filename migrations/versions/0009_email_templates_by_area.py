"""notifications: outbox rows name their templates by area (templates/email/<area>/<name>)

The email templates moved into one folder per area. Rows still waiting to be sent (or to be retried
from the admin page) name the old files; they are renamed here so they render after the deploy.

Revision ID: 0009_email_templates_by_area
Revises: 0008_appointments_slot_index
Create Date: 2026-11-24 10:00:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0009_email_templates_by_area'
down_revision = '0008_appointments_slot_index'
branch_labels = None
depends_on = None

RENAMED = {
    'clinic_token_confirmed': 'clinic/token_confirmed',
    'expert_booking_customer': 'experts/booking_customer',
    'expert_booking_expert': 'experts/booking_expert',
    'request_pending': 'experts/request_pending',
    'request_accepted': 'experts/request_accepted',
    'request_declined': 'experts/request_declined',
    'zoom_reauth': 'video/zoom_reauth',
}

outbox = sa.table('outbox_emails', sa.column('template', sa.String))


def _rename(mapping):
    for old, new in mapping.items():
        op.execute(outbox.update().where(outbox.c.template == old).values(template=new))


def upgrade():
    _rename(RENAMED)


def downgrade():
    # Keeps every row: nothing to refuse.
    _rename({new: old for old, new in RENAMED.items()})
