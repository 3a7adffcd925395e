"""Which existing ticket, if any, a message belongs to — and by which rule.

Evidence, strongest first: a reply token that verifies for the sender's address ▸ a Message-ID
the ticket sent or received, quoted in In-Reply-To/References ▸ `[#NUMBER]` in the subject.
The last two count only for the requester; a follower (an address someone else CC'd) joins only
with a token or by quoting a Message-ID we sent, and robots never by subject: a stranger who knows
a ticket number or a Message-ID gets a new ticket, never a say in someone else's.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.customers.models import Customer
from core.enums import MessageDirection
from core.ingest.thread_lookups import ThreadLookups
from core.mail.addresses import split_address, support_mailbox
from core.mail.parse import ParsedMail
from core.mail.tokens import INTERNAL, token_number, token_scope
from core.tickets.models import MessageId, Ticket
from core.tickets.service import participant_service

_SUBJECT_TAG = re.compile(r"\[#(\d{1,12})\]")


@dataclass(frozen=True)
class Sender:
    address: str
    customer: Customer | None  # None for agents and for delivery reports
    agent_id: uuid.UUID | None  # an agent's address, active or not
    agent_active: bool = True
    light_agent: bool = False

    @property
    def customer_id(self) -> uuid.UUID | None:
        return self.customer.id if self.customer is not None else None


@dataclass(frozen=True)
class ThreadMatch:
    ticket: Ticket
    rule: str  # token, message_id, subject
    # the sender is an agent but proved nothing: evidence of a ticket, no right to act on it
    unproven_agent: bool = False
    # answers an internal note (its token's scope, or its Message-ID): must stay internal
    internal: bool = False


@dataclass(frozen=True)
class ThreadSearch:
    match: ThreadMatch | None
    note: str | None = None  # e.g. a token that did not verify


def reply_tokens(mail: ParsedMail, rcpt_tos: list[str], mailboxes: dict[str, str]) -> list[str]:
    tokens: list[str] = []
    for address in [*rcpt_tos, *mail.to, *mail.cc]:
        if support_mailbox(address, mailboxes) is None:
            continue
        _, tag, _ = split_address(address)
        if tag and tag.lower() not in tokens:
            tokens.append(tag.lower())
    return tokens


def has_thread_evidence(mail: ParsedMail, rcpt_tos: list[str], mailboxes: dict[str, str]) -> bool:
    """Whether the message could belong to an existing ticket at all (else: no lookups)."""
    return bool(
        mail.in_reply_to or mail.references or mail.returned_message_ids
        or _SUBJECT_TAG.search(mail.subject) or reply_tokens(mail, rcpt_tos, mailboxes)
    )


def asked_for(mail: ParsedMail, rcpt_tos: list[str], mailboxes: dict[str, str]) -> tuple[set[int], set[str]]:
    """The ticket numbers (reply tokens, subject tag) and Message-IDs threading will look up."""
    numbers = {n for token in reply_tokens(mail, rcpt_tos, mailboxes) if (n := token_number(token)) is not None}
    if tag := _SUBJECT_TAG.search(mail.subject):
        numbers.add(int(tag.group(1)))
    return numbers, {*mail.in_reply_to, *mail.references}


async def find_thread(
    session: AsyncSession,
    *,
    mail: ParsedMail,
    rcpt_tos: list[str],
    mailboxes: dict[str, str],
    sender: Sender,
    secret: bytes,
    robot: bool = False,
    lookups: ThreadLookups | None = None,
) -> ThreadSearch:
    """`robot`: automatic mail or a robot's address, which never threads by subject tag.
    `lookups`: what the batch read up front (by default everything is looked up live)."""
    lookups = lookups if lookups is not None else ThreadLookups()
    note = None
    referenced = [*mail.in_reply_to, *reversed(mail.references)]
    for token in reply_tokens(mail, rcpt_tos, mailboxes):
        number = token_number(token)
        ticket = await lookups.ticket_by_number(session, number) if number is not None else None
        scope = token_scope(secret, token, ticket_id=ticket.id, address=sender.address) if ticket else None
        if ticket is not None and scope is not None:
            internal = scope == INTERNAL or await lookups.answers_internal_note(session, referenced, ticket.id)
            return ThreadSearch(ThreadMatch(ticket, "token", internal=internal))
        note = "a reply token was present but did not verify for this sender"

    candidates: list[tuple[Ticket, str, bool]] = []  # the ticket, the rule, whether it quoted one of ours
    if referenced:
        found = await lookups.quoted(session, referenced)
        if found and (ticket := await lookups.ticket_by_id(session, found[0].ticket_id)):
            ours = any(r.ticket_id == ticket.id and r.direction is MessageDirection.outbound for r in found)
            candidates.append((ticket, "message_id", ours))
    for returned in mail.returned_message_ids:  # a bounce of something we sent (never of this batch)
        row = await session.scalar(
            select(MessageId.ticket_id).where(
                MessageId.message_id == returned, MessageId.direction == MessageDirection.outbound
            )
        )
        if row is not None and (ticket := await lookups.ticket_by_id(session, row)):
            return ThreadSearch(ThreadMatch(ticket, "bounce"), note)
    tag = _SUBJECT_TAG.search(mail.subject)
    if tag and not robot and (ticket := await lookups.ticket_by_number(session, int(tag.group(1)))):
        candidates.append((ticket, "subject", False))

    for ticket, rule, ours in candidates:
        if sender.agent_id is not None:
            return ThreadSearch(ThreadMatch(ticket, rule, unproven_agent=True), note)
        if sender.customer_id is not None and ticket.requester_id == sender.customer_id:
            return ThreadSearch(ThreadMatch(ticket, rule), note)
        # a follower was only CC'd by someone else: its mail joins with proof it was sent ours
        # (Ticket Trick: a CC'd service address must not be steered into the thread by subject)
        if ours:
            await session.flush()  # followers this batch added count
        if ours and await participant_service.is_participant(session, ticket, sender.customer_id):
            return ThreadSearch(ThreadMatch(ticket, rule), note)
    if candidates:
        note = (note + "; " if note else "") + "references a ticket but the sender is not a participant"
    return ThreadSearch(None, note)
