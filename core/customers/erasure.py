"""The right to erasure: a customer's personal data removed, their tickets kept for the record.

Removed: name, email (replaced by an address that can never receive mail), phone, custom
fields, follower entries; the text, HTML and attachments of the comments they wrote and of
their tickets' descriptions (a tombstone says when and why); the raw mail they sent; their
address on notification deliveries. Each of their tickets' audit trails records who erased and
when. Tickets, statuses, subjects and agents' comments stay.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.actor import Actor
from core import events
from core.audit.service import audit_service
from core.clock import utcnow
from core.customers.models import Customer
from core.events import OutboundDelivery
from core.ingest.models import InboundMessage
from core.tickets.models import Ticket, TicketAttachment, TicketComment, ticket_followers

ERASED_DOMAIN = "erased.invalid"  # RFC 2606: never delivered anywhere


def tombstone(when: str) -> str:
    return f"[removed on {when} at the customer's request]"


@dataclass(frozen=True)
class Erased:
    tickets: int
    comments: int
    attachments: int
    # attachment contents no other attachment uses any more: the caller removes the files
    orphaned_digests: list[str]


async def erase_customer(session: AsyncSession, customer: Customer, actor: Actor) -> Erased:
    """Idempotent: erasing an erased customer changes nothing more."""
    now = utcnow()
    stone = tombstone(now.date().isoformat())
    old_email = customer.email
    comment_ids = list(await session.scalars(
        select(TicketComment.id).where(TicketComment.author_customer_id == customer.id)
    ))
    ticket_ids = list(await session.scalars(select(Ticket.id).where(Ticket.requester_id == customer.id)))
    digests = list(await session.scalars(
        delete(TicketAttachment).where(TicketAttachment.comment_id.in_(comment_ids))
        .returning(TicketAttachment.sha256)
    )) if comment_ids else []
    if comment_ids:
        await session.execute(
            update(TicketComment).where(TicketComment.id.in_(comment_ids))
            .values(body=stone, html_body=None)
        )
    if ticket_ids:
        # a ticket opened for them through the API carries their words as its first comment
        # too, written by the agent: the comment repeating the description goes with it
        await session.execute(
            update(TicketComment)
            .where(TicketComment.ticket_id.in_(ticket_ids), TicketComment.ticket_id == Ticket.id,
                   TicketComment.body == Ticket.description)
            .values(body=stone, html_body=None)
        )
        await session.execute(update(Ticket).where(Ticket.id.in_(ticket_ids)).values(description=stone))
    inbound = [InboundMessage.mail_from == old_email]
    if comment_ids:
        inbound.append(InboundMessage.comment_id.in_(comment_ids))
    await session.execute(
        update(InboundMessage).where(or_(*inbound)).values(raw=stone.encode(), mail_from="")
    )
    erased_address = f"erased-{customer.id}@{ERASED_DOMAIN}"
    await session.execute(
        update(OutboundDelivery).where(OutboundDelivery.recipient == old_email).values(recipient=erased_address)
    )
    await session.execute(delete(ticket_followers).where(ticket_followers.c.customer_id == customer.id))
    customer.name, customer.email, customer.phone, customer.custom_fields = "", erased_address, None, {}
    if customer.erased_at is None:
        customer.erased_at = now
    touched = set(ticket_ids) | set(await session.scalars(
        select(TicketComment.ticket_id).where(TicketComment.id.in_(comment_ids)).distinct()
    ) if comment_ids else [])
    for ticket_id in sorted(touched):
        audit_service.record(
            session, ticket_id=ticket_id, actor_type=actor.type, actor_id=actor.id,
            action="customer_erased", changes={"customer_id": str(customer.id)}, via="api",
        )
    # their name, address and words leave the search index too
    events.emit_customer_updated(session, customer_id=customer.id, ticket_ids=touched)
    await session.flush()
    orphaned = await _unused(session, set(digests))
    return Erased(len(ticket_ids), len(comment_ids), len(digests), orphaned)


async def _unused(session: AsyncSession, digests: set[str]) -> list[str]:
    if not digests:
        return []
    used = set(await session.scalars(
        select(TicketAttachment.sha256).where(TicketAttachment.sha256.in_(digests)).group_by(TicketAttachment.sha256)
        .having(func.count() > 0)
    ))
    return sorted(digests - used)


