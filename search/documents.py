"""The text and fields of a ticket's search document, read from the database (every backend).

Subject; description and every comment, public and internal, oldest first (a ticket of very
long conversations keeps its first 60% and last 40% of MAX_BODY characters); the requester's
name and address; tags; and the fields queries filter on. Characters the highlighters use as
markers are removed from the text here.
"""

from __future__ import annotations

from search.query import PRIORITY_ORDER

MAX_BODY = 100_000
PRIORITY_ARRAY = "ARRAY[" + ", ".join(f"'{p.value}'" for p in PRIORITY_ORDER) + "]"

# a CTE `bounded` of the live tickets among $1::uuid[], with `body` and the requester
DOCUMENT_SOURCE = f"""
WITH live AS (
    SELECT t.id, t.number, t.subject, t.description, t.status, t.priority, t.type, t.channel,
           t.group_id, t.assignee_id, t.requester_id, t.organization_id, t.tags, t.created_at,
           t.updated_at, t.solved_at, c.name AS requester_name, c.email AS requester_email,
           translate(concat_ws(E'\\n\\n', t.description, (
               SELECT string_agg(tc.body, E'\\n\\n' ORDER BY tc.created_at, tc.id)
               FROM ticket_comments tc
               WHERE tc.ticket_id = t.id AND tc.body <> t.description
           )), E'\\x02\\x03\\uE000\\uE001\\uE002', '') AS full_body
    FROM tickets t JOIN customers c ON c.id = t.requester_id
    WHERE t.id = ANY($1::uuid[]) AND t.deleted_at IS NULL
), bounded AS (
    SELECT *, CASE WHEN length(full_body) > {MAX_BODY}
                   THEN left(full_body, {MAX_BODY * 6 // 10}) || E'\\n…\\n' || right(full_body, {MAX_BODY * 4 // 10})
                   ELSE full_body END AS body
    FROM live
)
"""

SELECT_DOCUMENTS = DOCUMENT_SOURCE + f"""
SELECT id, number, translate(subject, E'\\x02\\x03\\uE000\\uE001\\uE002', '') AS subject, body,
       requester_name, requester_email, tags, status::text AS status,
       array_position({PRIORITY_ARRAY}, priority::text) - 1 AS priority_rank, priority::text AS priority,
       type::text AS type, channel::text AS channel, group_id, assignee_id, requester_id,
       organization_id, created_at, updated_at, solved_at
FROM bounded
"""
