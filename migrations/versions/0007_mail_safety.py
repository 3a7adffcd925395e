"""mail safety: work started on an inbound message (counted before the work), sender verdicts

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'inbound_starts',
        sa.Column('inbound_id', sa.Uuid(), nullable=False),
        sa.Column('starts', sa.Integer(), server_default='1', nullable=False),
        sa.PrimaryKeyConstraint('inbound_id'),
    )
    op.add_column('inbound_messages', sa.Column('auth_verdict', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('inbound_messages', 'auth_verdict')
    op.drop_table('inbound_starts')
