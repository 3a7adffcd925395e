"""Satisfaction: the survey after a ticket is solved, and the requester's rating.

The survey goes out once per ticket, `satisfaction_delay_hours` after it was solved (not if it
was reopened meanwhile), to the requester only and never for automatic mail (the mailer
screens robots and bouncing addresses). A rating comes from the survey's page (POST) or from
an emailed reply whose first word is a rating; it can be changed until seven days after the
ticket was closed. A rating is audited and announced (`satisfaction_rated`); it is not a
change of the ticket (its `updated_at` stays).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from core import events
from core.actor import Actor
from core.audit.service import audit_service
from core.clock import utcnow
from core.enums import AuthorType, TicketStatus
from core.errors import Conflict
from core.events import OutboundDelivery
from core.satisfaction.answers import survey_answer
from core.tickets.change import Change
from core.tickets.changes import ticket_changes
from core.tickets.models import Ticket
from core.tickets.schemas import TicketOut

CHANGEABLE_AFTER_CLOSE = timedelta(days=7)
ROBOT_TAGS = ["auto_reply", "bulk", "bounce"]
SOLVED = (TicketStatus.solved, TicketStatus.closed)


async def send_surveys(session: AsyncSession, *, solved_before: datetime, limit: int = 200) -> int:
    """A `satisfaction_survey` event for each ticket solved before `solved_before` and not yet
    surveyed (locked with SKIP LOCKED: several schedulers send each survey once)."""
    tickets = list(await session.scalars(
        select(Ticket).where(
            Ticket.satisfaction_sent_at.is_(None), Ticket.solved_at.is_not(None),
            Ticket.solved_at < solved_before, Ticket.status.in_(SOLVED), Ticket.deleted_at.is_(None),
            Ticket.merged_into_id.is_(None), ~Ticket.tags.overlap(ROBOT_TAGS),
        ).order_by(Ticket.solved_at).limit(limit).with_for_update(skip_locked=True)
    ))
    now = utcnow()
    for ticket in tickets:
        ticket.satisfaction_sent_at = now
        flag_modified(ticket, "updated_at")
        events.emit(session, topic=events.TOPIC_SATISFACTION_SURVEY, ticket=TicketOut.model_validate(ticket), via="survey")
    return len(tickets)


def rating_open(ticket: Ticket, now: datetime) -> bool:
    """Ratings are taken once the survey went out, until a week after the ticket closed."""
    if ticket.satisfaction_sent_at is None or ticket.deleted_at is not None:
        return False
    return ticket.status is not TicketStatus.closed or now - ticket.updated_at <= CHANGEABLE_AFTER_CLOSE


async def rate(session: AsyncSession, ticket: Ticket, *, score: str, comment: str | None, via: str) -> None:
    now = utcnow()
    if not rating_open(ticket, now):
        raise Conflict("this survey is closed")
    previous = ticket.satisfaction_score
    ticket.satisfaction_score, ticket.satisfaction_comment = score, (comment or None)
    ticket.satisfaction_rated_at = now
    flag_modified(ticket, "updated_at")  # written as it is: a rating is not a change of the ticket
    audit_service.record(
        session, ticket_id=ticket.id, actor_type=AuthorType.customer, actor_id=ticket.requester_id,
        action="satisfaction", via=via, changes={"satisfaction": {"from": previous, "to": score}},
    )
    await session.flush()
    events.emit(
        session, topic=events.TOPIC_SATISFACTION_RATED, ticket=TicketOut.model_validate(ticket),
        score=score, comment=comment or None, via=via,
    )
    # a change of its own for triggers (`event: satisfaction_rated`, `satisfaction_score`)
    change = Change.of(ticket, Actor(AuthorType.customer, ticket.requester_id), via)
    change.event, change.satisfaction_score = "satisfaction_rated", score
    await ticket_changes.settle(session, change)


async def rate_by_mail(
    session: AsyncSession, ticket: Ticket, *, customer_id: object, refers_to: list[str], text: str,
) -> bool:
    """A reply to this ticket's survey, from its requester, starting with a rating: recorded
    (the rest of the text as the comment). False if the mail is anything else."""
    if customer_id != ticket.requester_id or not refers_to or not rating_open(ticket, utcnow()):
        return False
    answer = survey_answer(text)
    if answer is None:
        return False
    survey = await session.scalar(
        select(OutboundDelivery.id).where(
            OutboundDelivery.ticket_id == ticket.id, OutboundDelivery.template == "satisfaction_survey",
            OutboundDelivery.message_id.in_(refers_to),
        ).limit(1)
    )
    if survey is None:
        return False
    await rate(session, ticket, score=answer.score, comment=answer.comment, via="email")
    return True
