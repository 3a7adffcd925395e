"""integrator API: unique ticket external_id, customer phone, custom fields and erasure mark

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # earlier versions let two tickets share an external_id: the oldest keeps it, the others
    # get it with their number appended, so the unique index can be built and nothing is lost
    op.execute(
        """
        UPDATE tickets t SET external_id = left(t.external_id, 230) || ' (duplicate #' || t.number || ')'
        FROM (SELECT id, row_number() OVER (PARTITION BY external_id ORDER BY created_at, id) AS n
              FROM tickets WHERE external_id IS NOT NULL) d
        WHERE d.id = t.id AND d.n > 1
        """
    )
    op.drop_index('ix_tickets_external_id', table_name='tickets')
    op.create_index('ix_tickets_external_id', 'tickets', ['external_id'], unique=True)
    op.add_column('customers', sa.Column('phone', sa.String(length=64), nullable=True))
    op.add_column('customers', sa.Column(
        'custom_fields', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False,
    ))
    op.add_column('customers', sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('customers', 'erased_at')
    op.drop_column('customers', 'custom_fields')
    op.drop_column('customers', 'phone')
    op.drop_index('ix_tickets_external_id', table_name='tickets')
    op.create_index('ix_tickets_external_id', 'tickets', ['external_id'], unique=False)
