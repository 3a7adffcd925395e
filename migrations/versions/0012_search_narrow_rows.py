"""search rows without the highlight text, their documents out of line

`ticket_search.body` (a copy of every ticket's text, kept for snippets) goes: snippets are cut
from the ticket's own description and comments for the few tickets a page shows. Documents move
out of the row (toast_tuple_target 128), so the rows a query visits for its filters, count and
facets are a few hundred bytes and stay cached; the subject vector stays in the row, where every
match reads it for ranking. Rows written before this are narrowed when they are next indexed;
`helpdesk reindex` does all at once.

The words index keeps its pending list (without it, writing a document cost 3-10 times as
much), capped at 512 kB
(default 4 MB): the write that fills the list merges it into the index. Writing 3,000 documents
in fives at 200k tickets: p99 359 -> 171 ms, max 604 -> 441 ms, mean 26 -> 24 ms a write.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE ticket_search DROP COLUMN body")
    op.execute("ALTER TABLE ticket_search SET (toast_tuple_target = 128)")
    op.execute("ALTER TABLE ticket_search ALTER COLUMN title SET STORAGE MAIN")
    op.execute("ALTER INDEX ix_ticket_search_document SET (gin_pending_list_limit = 512)")


def downgrade() -> None:
    op.execute("ALTER INDEX ix_ticket_search_document RESET (gin_pending_list_limit)")
    op.execute("ALTER TABLE ticket_search ALTER COLUMN title SET STORAGE EXTENDED")
    op.execute("ALTER TABLE ticket_search RESET (toast_tuple_target)")
    # filled again by the next `helpdesk reindex`; empty until then (snippets show the start)
    op.execute("ALTER TABLE ticket_search ADD COLUMN body text NOT NULL DEFAULT ''")
    op.execute("ALTER TABLE ticket_search ALTER COLUMN body DROP DEFAULT")
