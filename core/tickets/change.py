"""One change of one ticket, as triggers see it: the fields before it, the comment it added,
who made it and through what. `TicketChangeService` opens one per change and settles it
(triggers) before the transaction ends."""

from __future__ import annotations

from dataclasses import dataclass, field
import uuid
from typing import Any

from core.actor import Actor
from core.audit.service import plain
from core.events import CommentFacts
from core.tickets.models import Ticket, TicketComment

WATCHED = (
    "subject", "status", "priority", "type", "channel", "group_id", "assignee_id", "requester_id",
    "organization_id", "tags", "custom_fields",
)


def watched(ticket: Ticket) -> dict[str, Any]:
    return {name: plain(getattr(ticket, name)) for name in WATCHED}


def comment_facts(comment: TicketComment) -> CommentFacts:
    return CommentFacts(
        id=comment.id, visibility=comment.visibility, author_type=comment.author_type,
        author_id=comment.author_agent_id or comment.author_customer_id, body=comment.body,
        mail_kind=comment.mail_kind,
    )


@dataclass
class Change:
    ticket: Ticket
    actor: Actor
    via: str
    event: str = "updated"  # or created, sla_breached, satisfaction_rated
    before: dict[str, Any] = field(default_factory=dict)  # empty for a new ticket
    comment: CommentFacts | None = None
    # what the built-in mails need to know about mail that made the change (acknowledgements)
    mail_kind: str | None = None
    sending_host: str | None = None
    verified: bool = True
    sla_metric: str | None = None  # sla_breached: the target that passed
    satisfaction_score: str | None = None  # satisfaction_rated: good | bad
    # who set the assignee last in this change (None: a trigger or automation did)
    assigned_by: uuid.UUID | None = None

    def __post_init__(self) -> None:
        self.assigned_by = self.actor.id

    @classmethod
    def of(cls, ticket: Ticket, actor: Actor, via: str) -> Change:
        return cls(ticket, actor, via, before=watched(ticket))

    @classmethod
    def created(cls, ticket: Ticket, actor: Actor, via: str, comment: CommentFacts | None = None) -> Change:
        return cls(ticket, actor, via, event="created", comment=comment)

    def commented(self, comment: TicketComment) -> None:
        self.comment = comment_facts(comment)

    def changes(self) -> dict[str, tuple[Any, Any]]:
        """Each field that differs from before the change (for a new ticket: each one set)."""
        now = watched(self.ticket)
        return {
            name: (self.before.get(name), value) for name, value in now.items()
            if value != self.before.get(name) and not (not self.before and value in (None, [], {}))
        }
