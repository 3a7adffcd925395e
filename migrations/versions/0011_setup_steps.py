"""setup steps taken once per deployment (the default notification triggers); SLA warnings per target

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


def downgrade() -> None:
    op.drop_column('ticket_sla_targets', 'warned_at')
    op.drop_table('setup_steps')
