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
# the highlight markers (search/backend.py) and the code points search/postgres.py hides markup as
MARKERS = ("\\x02", "\\x03", "\\uE000", "\\uE001", "\\uE002")


def without_markers(expression: str) -> str:
    """SQL: the text of `expression` with every marker character removed.

    One replace() per character rather than one translate(): replace looks for a character by a
    byte search and hands back text without any unchanged, where translate decodes and compares
    every character of the text (15% of a reindex's writing went to it on ticket bodies)."""
    for character in MARKERS:
        expression = f"replace({expression}, E'{character}', '')"
    return expression


_FULL_BODY = without_markers("""concat_ws(E'\\n\\n', t.description,
               string_agg(tc.body, E'\\n\\n' ORDER BY tc.created_at, tc.id) FILTER (WHERE tc.body <> t.description)
           )""")
# a CTE `bounded` of the live tickets `{{where}}` picks (over `t`), with `body` and the requester;
# set-based (comments grouped by ticket, not one subquery each): a rebuild reads ranges of tickets
SOURCE_TEMPLATE = f"""
WITH live AS (
    SELECT t.id, t.number, t.subject, t.status, t.priority, t.type, t.channel,
           t.group_id, t.assignee_id, t.requester_id, t.organization_id, t.tags, t.created_at,
           t.updated_at, t.solved_at, c.name AS requester_name, c.email AS requester_email,
           {_FULL_BODY} AS full_body
    FROM tickets t JOIN customers c ON c.id = t.requester_id
    LEFT JOIN ticket_comments tc ON tc.ticket_id = t.id AND {{comments}}
    WHERE {{where}} AND t.deleted_at IS NULL
    GROUP BY t.id, c.id
), bounded AS (
    SELECT *, CASE WHEN length(full_body) > {MAX_BODY}
                   THEN left(full_body, {MAX_BODY * 6 // 10}) || E'\\n…\\n' || right(full_body, {MAX_BODY * 4 // 10})
                   ELSE full_body END AS body
    FROM live
)
"""
BY_IDS = {"where": "t.id = ANY($1::uuid[])", "comments": "tc.ticket_id = ANY($1::uuid[])"}
BY_RANGE = {"where": "t.id BETWEEN $1::uuid AND $2::uuid", "comments": "tc.ticket_id BETWEEN $1::uuid AND $2::uuid"}


def document_source(picked: dict[str, str]) -> str:
    return SOURCE_TEMPLATE.replace("{where}", picked["where"]).replace("{comments}", picked["comments"])


DOCUMENT_SOURCE = document_source(BY_IDS)

SELECT_DOCUMENTS = DOCUMENT_SOURCE + f"""
SELECT id, number, {without_markers('subject')} AS subject, body,
       requester_name, requester_email, tags, status::text AS status,
       array_position({PRIORITY_ARRAY}, priority::text) - 1 AS priority_rank, priority::text AS priority,
       type::text AS type, channel::text AS channel, group_id, assignee_id, requester_id,
       organization_id, created_at, updated_at, solved_at
FROM bounded
"""
