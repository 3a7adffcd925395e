"""scheduled jobs: SLA warning mark, indexes for auto-close and SLA checks

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

SLA_UNANSWERED = (
    "first_response_at IS NULL AND sla_warned_at IS NULL AND deleted_at IS NULL"
    " AND status IN ('new', 'open')"
)


def upgrade() -> None:
    op.add_column('tickets', sa.Column('sla_warned_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_tickets_solved_at', 'tickets', ['solved_at'], unique=False,
                    postgresql_where=sa.text("status = 'solved'"))
    op.create_index('ix_tickets_sla_unanswered', 'tickets', ['sla_breach_at'], unique=False,
                    postgresql_where=sa.text(SLA_UNANSWERED))


def downgrade() -> None:
    op.drop_index('ix_tickets_sla_unanswered', table_name='tickets', postgresql_where=sa.text(SLA_UNANSWERED))
    op.drop_index('ix_tickets_solved_at', table_name='tickets', postgresql_where=sa.text("status = 'solved'"))
    op.drop_column('tickets', 'sla_warned_at')
