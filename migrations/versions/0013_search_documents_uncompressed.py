"""search documents stored as written where pglz is the only compression: it never compresses them

A tsvector opens with its table of lexeme entries: nothing pglz finds repeated in the first kB,
so it gives up, every time (not one of 200,000 documents of bench/search.py compressed), after
costing a fifth of the CPU of writing a document (reindex: 20% of a chunk's writing). EXTERNAL:
still moved out of the row, never tried. Where lz4 is available (0006 chose it), documents stay
compressed: lz4 shrinks them by ~15% at little cost.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    lz4 = op.get_bind().scalar(sa.text(
        "SELECT attcompression = 'l' OR (attcompression = ''"
        " AND current_setting('default_toast_compression') = 'lz4') FROM pg_attribute"
        " WHERE attrelid = 'ticket_search'::regclass AND attname = 'document'"
    ))
    if not lz4:
        op.execute("ALTER TABLE ticket_search ALTER COLUMN document SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("ALTER TABLE ticket_search ALTER COLUMN document SET STORAGE EXTENDED")
