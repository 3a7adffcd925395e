"""automation: round-robin assignment mark on group members; automations and their marks;
SLA targets per ticket and business hours per policy; satisfaction survey and rating

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('group_members', sa.Column('last_assigned_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'automations',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('title', sa.String(length=255), nullable=False),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('position', sa.Integer(), server_default='0', nullable=False),
        sa.Column('conditions', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
        sa.Column('actions', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
        sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_automations')),
    )
    op.create_table(
        'automation_marks',
        sa.Column('automation_id', sa.Uuid(), nullable=False),
        sa.Column('ticket_id', sa.Uuid(), nullable=False),
        sa.Column('acted_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['automation_id'], ['automations.id'], name=op.f('fk_automation_marks_automation_id_automations'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_automation_marks_ticket_id_tickets'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('automation_id', 'ticket_id', name=op.f('pk_automation_marks')),
    )
    op.create_index('ix_automation_marks_ticket_id', 'automation_marks', ['ticket_id'], unique=False)
    op.add_column('sla_policies', sa.Column('business_hours', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_table(
        'ticket_sla_targets',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('ticket_id', sa.Uuid(), nullable=False),
        sa.Column('policy_id', sa.Uuid(), nullable=True),
        sa.Column('metric', sa.String(length=32), nullable=False),
        sa.Column('minutes', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('target_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('paused_minutes', sa.Float(), server_default='0', nullable=False),
        sa.Column('fulfilled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('breached_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['policy_id'], ['sla_policies.id'], name=op.f('fk_ticket_sla_targets_policy_id_sla_policies'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_sla_targets_ticket_id_tickets'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_sla_targets')),
    )
    op.create_index('ix_ticket_sla_targets_ticket_id', 'ticket_sla_targets', ['ticket_id'], unique=False)
    op.create_index('ix_ticket_sla_targets_started_at', 'ticket_sla_targets', ['started_at'], unique=False)
    op.create_index('ix_ticket_sla_targets_due', 'ticket_sla_targets', ['target_at'], unique=False,
                    postgresql_where=sa.text('fulfilled_at IS NULL AND breached_at IS NULL AND paused_at IS NULL'))
    op.add_column('tickets', sa.Column('satisfaction_sent_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tickets', sa.Column('satisfaction_score', sa.String(length=8), nullable=True))
    op.add_column('tickets', sa.Column('satisfaction_comment', sa.Text(), nullable=True))
    op.add_column('tickets', sa.Column('satisfaction_rated_at', sa.DateTime(timezone=True), nullable=True))
    # existing solved tickets were surveyed at closing (the old rule): they get no second survey
    op.execute("UPDATE tickets SET satisfaction_sent_at = coalesce(solved_at, updated_at)"
               " WHERE status IN ('solved', 'closed')")
    op.create_index('ix_tickets_survey_due', 'tickets', ['solved_at'], unique=False,
                    postgresql_where=sa.text('satisfaction_sent_at IS NULL AND solved_at IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_tickets_survey_due', table_name='tickets')
    for column in ('satisfaction_rated_at', 'satisfaction_comment', 'satisfaction_score', 'satisfaction_sent_at'):
        op.drop_column('tickets', column)
    op.drop_index('ix_ticket_sla_targets_due', table_name='ticket_sla_targets')
    op.drop_index('ix_ticket_sla_targets_started_at', table_name='ticket_sla_targets')
    op.drop_index('ix_ticket_sla_targets_ticket_id', table_name='ticket_sla_targets')
    op.drop_table('ticket_sla_targets')
    op.drop_column('sla_policies', 'business_hours')
    op.drop_index('ix_automation_marks_ticket_id', table_name='automation_marks')
    op.drop_table('automation_marks')
    op.drop_table('automations')
    op.drop_column('group_members', 'last_assigned_at')
