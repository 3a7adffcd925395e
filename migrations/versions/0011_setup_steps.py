"""setup steps taken once per deployment (the default notification triggers); SLA warnings per
target; extended statistics for the ticket statistics

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('setup_steps',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_setup_steps'))
    )
    op.add_column('ticket_sla_targets', sa.Column('warned_at', sa.DateTime(timezone=True), nullable=True))
    # GET /tickets/statistics groups tickets by these: how few combinations there are lets the
    # planner hash them (it guessed one per ticket and sorted 200,000 rows on disk)
    # solved per day, of tickets solved in a window whenever they were created
    op.create_index(
        'ix_tickets_solved_day', 'tickets', ['solved_at'], postgresql_include=['group_id'],
        postgresql_where=sa.text('deleted_at IS NULL AND solved_at IS NOT NULL'),
    )
    op.execute(
        "CREATE STATISTICS st_tickets_breakdown (ndistinct) ON status, priority, channel, group_id, "
        "((created_at AT TIME ZONE 'UTC')::date) FROM tickets"
    )


def downgrade() -> None:
    op.execute("DROP STATISTICS IF EXISTS st_tickets_breakdown")
    op.drop_index('ix_tickets_solved_day', table_name='tickets')
    op.drop_column('ticket_sla_targets', 'warned_at')
    op.drop_table('setup_steps')
