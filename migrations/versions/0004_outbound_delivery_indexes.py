"""outbound delivery indexes (and a ticket's thread of Message-IDs)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f('ix_message_ids_ticket_id'), 'message_ids', ['ticket_id'], unique=False)
    op.create_index('ix_outbound_deliveries_pending', 'outbound_deliveries', ['created_at'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_outbound_deliveries_recipient_created_at', 'outbound_deliveries', ['recipient', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_message_ids_ticket_id'), table_name='message_ids')
    op.drop_index('ix_outbound_deliveries_recipient_created_at', table_name='outbound_deliveries')
    op.drop_index('ix_outbound_deliveries_pending', table_name='outbound_deliveries', postgresql_where=sa.text("status = 'pending'"))
