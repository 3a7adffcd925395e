"""automation: round-robin assignment mark on group members

Revision ID: 0008
Revises: 0005
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('group_members', sa.Column('last_assigned_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('group_members', 'last_assigned_at')
