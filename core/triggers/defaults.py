"""The default notifications as ordinary triggers, seeded once on a deployment's first start
(as Zendesk does): admins edit, deactivate or delete them like any other trigger.

Each sends one built-in mail (`template`), by the same rules as before there were triggers
(outbound/recipients.py): whatever their conditions say, automatic mail is never answered,
internal notes never reach customers, nobody is told of their own comment or self-assignment,
and the hourly budgets hold. A `subject` and `body` added to the action replace the built-in
text (rendered in the sandbox, as any trigger's notification).

They sit at positions from 1000, after the admins' own triggers: a mail then tells what those
changed (an assignment made by round robin goes to the agent it chose).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.setup_steps import first_time
from core.triggers.models import Trigger
from core.triggers.schemas import TriggerIn

SEEDED = "default_triggers"


def _is(field: str, value: Any) -> dict[str, Any]:
    return {"field": field, "operator": "is", "value": value}


UPDATED, PUBLIC = _is("event", "updated"), _is("comment_visibility", "public")
ASSIGNED = {"field": "assignee_id", "operator": "is_not", "value": None}

DEFAULT_TRIGGERS: tuple[dict[str, Any], ...] = (
    {
        "title": "Notify requester of received request",
        "description": "The acknowledgement of a new ticket (to a sender nobody verified: a fixed text).",
        "position": 1000, "conditions": {"all": [_is("event", "created")]},
        "actions": [{"field": "notify_requester", "value": {"template": "ticket_created"}}],
    },
    {
        "title": "Notify assignee of assignment",
        "description": "Not when agents assign themselves.",
        "position": 1010,
        "conditions": {"all": [{"field": "assignee_id", "operator": "changed"}, ASSIGNED]},
        "actions": [{"field": "notify_assignee", "value": {"template": "ticket_assigned"}}],
    },
    {
        "title": "Notify requester and followers of public comment",
        "description": "Not to the comment's author; never for automatic mail.",
        "position": 1020, "conditions": {"all": [UPDATED, PUBLIC]},
        "actions": [{"field": "notify_requester", "value": {"template": "ticket_new_comment"}}],
    },
    {
        "title": "Notify assignee of public comment",
        "description": "Not when the assignee wrote it.",
        "position": 1030, "conditions": {"all": [UPDATED, PUBLIC, ASSIGNED]},
        "actions": [{"field": "notify_assignee", "value": {"template": "ticket_new_comment"}}],
    },
    {
        "title": "Notify assignee of internal note",
        "description": "A note by another agent; a reply to it by email stays internal.",
        "position": 1040,
        "conditions": {"all": [
            UPDATED, _is("comment_visibility", "internal"), _is("comment_author_type", "agent"), ASSIGNED,
        ]},
        "actions": [{"field": "notify_assignee", "value": {"template": "ticket_new_comment"}}],
    },
    {
        "title": "Notify requester and followers of solved request",
        "description": "Not for tickets opened by automatic mail.",
        "position": 1050,
        "conditions": {"all": [UPDATED, {"field": "status", "operator": "changed_to", "value": "solved"}]},
        "actions": [{"field": "notify_requester", "value": {"template": "ticket_status_changed"}}],
    },
)


async def seed_default_triggers(session: AsyncSession) -> bool:
    """Once per deployment (a deleted default is not made again); True when seeded now."""
    if not await first_time(session, SEEDED):
        return False
    for definition in DEFAULT_TRIGGERS:
        data = TriggerIn.model_validate(definition)
        session.add(Trigger(**data.model_dump(mode="json")))
    await session.flush()
    return True
