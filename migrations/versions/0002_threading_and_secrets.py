"""threading and secrets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('server_secrets',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_server_secrets'))
    )
    op.add_column('inbound_messages', sa.Column('mail_kind', sa.String(length=16), nullable=True))
    # comments and audit entries made in one transaction keep their order
    for table in ('ticket_comments', 'ticket_audit_logs'):
        op.alter_column(table, 'created_at', server_default=sa.text('clock_timestamp()'))
    op.add_column('ticket_comments', sa.Column('matched_rule', sa.String(length=32), nullable=True))
    op.add_column('ticket_comments', sa.Column('mail_kind', sa.String(length=16), nullable=True))


def downgrade() -> None:
    for table in ('ticket_comments', 'ticket_audit_logs'):
        op.alter_column(table, 'created_at', server_default=sa.text('now()'))
    op.drop_column('ticket_comments', 'mail_kind')
    op.drop_column('ticket_comments', 'matched_rule')
    op.drop_column('inbound_messages', 'mail_kind')
    op.drop_table('server_secrets')
