"""The email pipeline for a batch of inbound rows: named steps inside the runner's transaction.

duplicates ▸ parse ▸ route ▸ classify ▸ loop check ▸ identify sender ▸ thread ▸ new ticket or reply.
`Unprocessable` (the sender's fault) becomes a quarantine with a reason; any other exception is
ours: the runner rolls back, retries each message alone, and records the failure on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.actor import Actor
from core.agents.models import Agent
from core.attachments import AttachmentStore
from core.attachments.fs import FileStore
from core.clock import utcnow
from core.config import Settings
from core.customers.models import Customer
from core.customers.service import customer_service
from core.db import driver_of
from core.enums import (
    AgentRole,
    AuthorType,
    Channel,
    InboundStatus,
    MessageDirection,
    TicketStatus,
    Visibility,
)
from core.events import CommentFacts
from core.groups.service import group_service
from core.ingest import prefetch
from core.ingest.bounces import BounceCheck, check_bounce
from core.ingest.buffered_rows import write_rows
from core.ingest.imported import QUIET_KIND, is_quiet, original_date
from core.ingest.models import InboundMessage
from core.ingest.parsing import MailParser
from core.ingest.thread_lookups import ThreadLookups
from core.ingest.threading import Sender, ThreadMatch, asked_for, find_thread, has_thread_evidence
from core.ingest.verification import Verifier
from core.mail.addresses import support_mailbox
from core.mail.authentication import UNVERIFIED, Verdict
from core.mail.classify import Classification, MailKind, classify, is_robot_address
from core.mail.html import resolve_cids, sanitize_html, strip_quoted_html
from core.mail.limits import ParseLimits
from core.mail.parse import ParsedMail, Unprocessable
from core.mail.reply import extract_reply, extract_reply_html
from core.satisfaction.service import rate_by_mail
from core.secrets import REPLY_TOKEN_SECRET, server_secret
from core.sla.targets import ACTIVE_POLICIES_VERSION, policies_at
from core.tickets.changes import ticket_changes
from core.tickets.models import Ticket, TicketComment
from core.tickets.service import participant_service, ticket_service
from core.triggers.runner import ACTIVE_VERSION, active_triggers_at
from core.write_buffer import start_collecting, stop_collecting

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class Outcome:
    status: InboundStatus
    reason: str | None = None
    matched_rule: str | None = None
    ticket_id: uuid.UUID | None = None
    comment_id: uuid.UUID | None = None
    duplicate_of_id: uuid.UUID | None = None
    mail_kind: str | None = None
    auth_verdict: str | None = None


# a ticket made in this batch: its mail kind, the sending host and whether the sender was
# verified, for the `created` event that follows the batch's flush
Created = tuple[Ticket, str, str | None, bool]


@dataclass(frozen=True)
class Route:
    mailbox: str
    group_name: str


@dataclass(frozen=True)
class Message:
    """What the steps after parsing share about one inbound message."""

    inbound: InboundMessage
    mail: ParsedMail
    route: Route
    kind: Classification
    sender: Sender
    # what threading needs, read once for the message's whole batch
    lookups: ThreadLookups
    verdict: Verdict = UNVERIFIED


class Pipeline:
    def __init__(
        self,
        *,
        mailboxes: dict[str, str],
        store: AttachmentStore,
        max_followers: int = 10,
        ticket_inbound_per_hour: int = 30,
        parser: MailParser | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        self.parser = parser or MailParser(ParseLimits())
        self.verifier = verifier or Verifier()
        self.mailboxes = mailboxes
        self.store = store
        self.max_followers = max_followers
        self.ticket_inbound_per_hour = ticket_inbound_per_hour
        # stable for the life of the process: looked up once, not once per message
        self._group_ids: dict[str, tuple[uuid.UUID, float]] = {}
        self._secret: bytes | None = None

    async def group_id(self, session: AsyncSession, name: str) -> uuid.UUID:
        """The support address's group, created if missing; re-read every minute (groups can change)."""
        cached = self._group_ids.get(name)
        if cached is not None and time.monotonic() - cached[1] < GROUP_CACHE_SECONDS:
            return cached[0]
        group_id = await group_service.ensure(session, name=name)
        self._group_ids[name] = (group_id, time.monotonic())
        return group_id

    async def secret(self, session: AsyncSession) -> bytes:
        if self._secret is None:
            self._secret = await server_secret(session, REPLY_TOKEN_SECRET)
        return self._secret

    @classmethod
    def from_settings(cls, settings: Settings, store: AttachmentStore | None = None) -> Pipeline:
        return cls(
            mailboxes=settings.support_mailboxes,
            store=store or FileStore(settings.attachments_dir),
            max_followers=settings.max_followers,
            ticket_inbound_per_hour=settings.ticket_inbound_per_hour,
            parser=MailParser.from_settings(settings),
            verifier=Verifier.from_settings(settings),
        )

    async def run_batch(self, session: AsyncSession, batch: list[InboundMessage]) -> list[Outcome]:
        """Outcomes for the batch, in order. The lookups are made once for the whole batch
        (threading's too: see ThreadLookups), and what the batch writes is written in one flush
        where nothing reads it before; its audit entries and outbox events, which nothing in
        the transaction reads, in one statement each after it (core/write_buffer.py)."""
        rows = start_collecting(session)
        try:
            outcomes = await self._run_batch(session, batch)
        finally:
            stop_collecting(session)
        await session.flush()  # the audit entries point at the batch's tickets
        await write_rows(session, rows)
        return outcomes

    async def _run_batch(self, session: AsyncSession, batch: list[InboundMessage]) -> list[Outcome]:
        await prefetch.lock_keys(session, (prefetch.dedup_key(i) for i in batch))
        handled = await prefetch.handled_before(session, batch)
        outcomes: dict[int, Outcome] = {}
        first_in_batch: dict[tuple[str, str], int] = {}
        repeats: dict[int, int] = {}  # a message delivered twice within this batch -> the first
        ready: list[tuple[int, InboundMessage, ParsedMail, Route, Classification]] = []
        for index, inbound in enumerate(batch):
            key = prefetch.dedup_key(inbound)
            if key in handled:
                outcomes[index] = self.duplicate_of(handled[key].id, handled[key])
                continue
            if key in first_in_batch:
                repeats[index] = first_in_batch[key]
                continue
            first_in_batch[key] = index
            try:
                mail = await self.parser.parse(inbound.raw)
                route = self.route(inbound)
            except Unprocessable as exc:
                outcomes[index] = Outcome(InboundStatus.quarantined, reason=exc.reason)
                continue
            envelope = inbound.mail_from if inbound.source == "smtp" else mail.from_address
            ready.append((index, inbound, mail, route, classify(mail, envelope_sender=envelope)))
            # parsing is the longest stretch without a database round trip: let senders
            # waiting for their 250 in between
            await asyncio.sleep(0)

        verdicts = await asyncio.gather(*(self.verifier.verdict(r[1]) for r in ready))
        ours = await prefetch.our_message_ids(session, (r[2].message_id or "" for r in ready))
        lookups = await self.thread_lookups(session, [(r[2], r[1].rcpt_tos) for r in ready])
        found = await prefetch.people(
            session, {r[2].from_address: r[2].from_name for r in ready},
            customers_for={r[2].from_address for r in ready if r[4].kind is not MailKind.bounce},
        )
        if ready:
            # the rules every change is settled by, known before anything is pending (a read
            # where the first change needed them flushed what the batch had written so far):
            # their versions in one plain statement, the rules themselves only when they changed
            async with driver_of(session) as driver:
                versions = await driver.fetchrow(f"SELECT {ACTIVE_VERSION}, {ACTIVE_POLICIES_VERSION}")
            await active_triggers_at(session, versions[0])
            await policies_at(session, versions[1])
        created: list[Created] = []
        with session.no_autoflush:
            for (index, inbound, mail, route, kind), verdict in zip(ready, verdicts, strict=True):
                loop = self.loop_reason(mail, ours)
                if loop is not None:
                    outcomes[index] = Outcome(InboundStatus.dropped, reason=loop, mail_kind=kind.kind.value)
                    continue
                agent = found.agents.get(mail.from_address)
                sender = Sender(
                    address=mail.from_address, agent_id=agent.id if agent else None,
                    agent_active=agent.active if agent else True,
                    light_agent=agent is not None and agent.role is AgentRole.light_agent,
                    customer=found.customers.get(mail.from_address),
                )
                outcome = await self.decide(
                    session, Message(inbound, mail, route, kind, sender, lookups, verdict), created
                )
                outcomes[index] = replace(outcome, auth_verdict=verdict.summary())
        if created:
            await session.flush()  # the numbers the `created` events announce
            for ticket, mail_kind, host, verified in created:
                await ticket_changes.announce_created(
                    session, ticket, Actor(AuthorType.customer, ticket.requester_id), via="email",
                    mail_kind=mail_kind, comment=first_comment(ticket, mail_kind), sending_host=host,
                    verified=verified,
                )
        for index, first in repeats.items():
            outcomes[index] = self.duplicate_of(batch[first].id, outcomes[first])
        return [outcomes[i] for i in range(len(batch))]

    async def decide(self, session: AsyncSession, m: Message, created: list[Created]) -> Outcome:
        bounce = await check_bounce(
            session, kind=m.kind.kind, failed_recipients=m.mail.failed_recipients,
            rcpt_tos=m.inbound.rcpt_tos, mailboxes=self.mailboxes, secret=await self.secret(session),
        )
        if bounce is not None:
            return await self.delivery_report(session, m, bounce, created)
        if m.verdict.spoofed:
            return Outcome(
                InboundStatus.quarantined, mail_kind=m.kind.kind.value,
                reason=f"spoofed: the From domain's DMARC check failed and its policy is {m.verdict.policy} "
                       f"({m.verdict.summary()})",
            )
        if not m.kind.automatic and m.sender.customer is not None and m.sender.customer.bouncing:
            m.sender.customer.bouncing = False  # the address works again: it just wrote to us
        if not has_thread_evidence(m.mail, m.inbound.rcpt_tos, self.mailboxes):
            return await self.new_ticket(session, m, created)
        search = await find_thread(
            session, mail=m.mail, rcpt_tos=m.inbound.rcpt_tos, mailboxes=self.mailboxes,
            sender=m.sender, secret=await self.secret(session),
            # a subject tag is no proof of who wrote: only verified people may thread by it
            robot=m.kind.automatic or is_robot_address(m.mail.from_address) or not m.verdict.verified,
            lookups=m.lookups,
        )
        if search.match is None:
            return await self.new_ticket(session, m, created, note=search.note)
        return await self.reply(session, m, search.match, created)

    async def thread_lookups(
        self, session: AsyncSession, mails: list[tuple[ParsedMail, list[str]]]
    ) -> ThreadLookups:
        numbers: set[int] = set()
        message_ids: set[str] = set()
        for mail, rcpt_tos in mails:
            asked_numbers, asked_ids = asked_for(mail, rcpt_tos, self.mailboxes)
            numbers |= asked_numbers
            message_ids |= asked_ids
        return await ThreadLookups.for_batch(session, numbers=numbers, message_ids=message_ids)

    async def delivery_report(
        self, session: AsyncSession, m: Message, bounce: BounceCheck, created: list[Created]
    ) -> Outcome:
        ticket = await session.get(Ticket, bounce.ticket_id) if bounce.ticket_id else None
        if bounce.refusal is not None or ticket is None or ticket.deleted_at is not None:
            return Outcome(
                InboundStatus.quarantined, mail_kind=m.kind.kind.value,
                reason=bounce.refusal or "delivery report for no live ticket",
            )
        return await self.reply(session, m, ThreadMatch(ticket, "bounce"), created)

    @staticmethod
    def duplicate_of(earlier_id: uuid.UUID, earlier: prefetch.Handled | Outcome) -> Outcome:
        return Outcome(
            InboundStatus.duplicate, reason=f"same message as inbound {earlier_id}",
            matched_rule="duplicate", ticket_id=earlier.ticket_id,
            comment_id=earlier.comment_id, duplicate_of_id=earlier_id,
        )

    def route(self, inbound: InboundMessage) -> Route:
        for rcpt in inbound.rcpt_tos:
            mailbox = support_mailbox(rcpt, self.mailboxes)
            if mailbox is not None:
                return Route(mailbox, self.mailboxes[mailbox])
        raise Unprocessable("no recipient is a support address")

    def loop_reason(self, mail: ParsedMail, ours: set[str]) -> str | None:
        if support_mailbox(mail.from_address, self.mailboxes) is not None:
            return "mail from our own support address (mail loop)"
        if mail.message_id and mail.message_id in ours:
            return "carries a Message-ID that we sent (mail loop)"
        return None

    async def new_ticket(
        self, session: AsyncSession, m: Message, created: list[Created], *, note: str | None = None
    ) -> Outcome:
        if m.kind.kind is MailKind.bounce:
            return Outcome(
                InboundStatus.quarantined, reason="delivery report for no known ticket",
                mail_kind=m.kind.kind.value,
            )
        requester = m.sender.customer or await customer_service.find_or_create(
            session, email=m.mail.from_address, name=m.mail.from_name
        )
        ticket = await self.open_ticket(session, m, requester, created)
        comment = await self.comment(
            session, m, ticket, body=m.mail.text, rule="new_ticket", author_customer_id=requester.id,
            first=True,
        )
        if not m.kind.automatic:
            await self.add_cc_followers(session, m, ticket)
        return Outcome(
            InboundStatus.processed, reason=note, matched_rule="new_ticket", ticket_id=ticket.id,
            comment_id=comment.id, mail_kind=m.kind.kind.value,
        )

    async def open_ticket(
        self, session: AsyncSession, m: Message, requester: Customer, created: list[Created],
        *, follow_up_of: Ticket | None = None,
    ) -> Ticket:
        """A new ticket, written with the batch; its `created` event follows the flush."""
        m.lookups.created += 1
        group_id = await self.group_id(session, m.route.group_name)
        ticket = await ticket_service.create(
            session, subject=m.mail.subject, description=m.mail.text, requester_id=requester.id,
            channel=Channel.email, group_id=group_id, organization_id=requester.organization_id,
            actor_type=AuthorType.customer, actor_id=requester.id, via="email",
            tags=[m.kind.kind.value] if m.kind.automatic else [],
            follow_up_of_id=follow_up_of.id if follow_up_of else None, mail_kind=m.kind.kind.value,
            announce=False,
        )
        if (when := original_date(m.inbound)) is not None:
            ticket.created_at = ticket.updated_at = when
        created.append((ticket, QUIET_KIND if is_quiet(m.inbound) else m.kind.kind.value,
                        m.inbound.peer if m.inbound.source == "smtp" else None, m.verdict.verified))
        return ticket

    async def reply(
        self, session: AsyncSession, m: Message, match: ThreadMatch, created: list[Created]
    ) -> Outcome:
        kind = m.kind.kind.value
        if match.unproven_agent:
            return Outcome(
                InboundStatus.quarantined, mail_kind=kind, matched_rule=match.rule,
                reason="from an agent's address without a valid reply token (possible forgery)",
            )
        if m.sender.agent_id is not None and not m.sender.agent_active:
            return Outcome(
                InboundStatus.quarantined, mail_kind=kind, matched_rule=match.rule,
                reason="agent_inactive: from a deactivated agent's address; its reply tokens are void",
            )
        ticket = await ticket_service.resolve_merged(session, match.ticket)
        rule = match.rule if ticket is match.ticket else f"{match.rule}+merged"
        if await m.lookups.mail_count(session, ticket.id) >= self.ticket_inbound_per_hour:
            return Outcome(
                InboundStatus.quarantined, mail_kind=kind, matched_rule=rule,
                reason=f"ticket #{ticket.number} received over {self.ticket_inbound_per_hour} messages in an hour",
            )
        body = extract_reply(m.mail.text, m.mail.html_source)
        if not m.kind.automatic and await rate_by_mail(
            session, ticket, customer_id=m.sender.customer_id, text=body,
            refers_to=[*m.mail.in_reply_to, *m.mail.references],
        ):  # an answer to the survey: its rating, no comment, no follow-up, no acknowledgement
            return Outcome(
                InboundStatus.processed, matched_rule=rule, ticket_id=ticket.id, mail_kind=kind,
                reason="satisfaction rating",
            )
        # the stored HTML is cut where the new text ends (when its text agrees, so both views
        # agree); failing that, its quoted containers are removed (the raw original keeps all)
        html = extract_reply_html(m.mail.text, m.mail.html_source) or (
            sanitize_html(strip_quoted_html(m.mail.html_source)) if m.mail.html_source else None
        )
        if ticket.status is TicketStatus.closed and not m.kind.automatic:
            requester = m.sender.customer or await customer_service.find_or_create(
                session, email=m.mail.from_address, name=m.mail.from_name
            )
            follow_up = await self.open_ticket(session, m, requester, created, follow_up_of=ticket)
            comment = await self.comment(
                session, m, follow_up, body=body, html=html, rule=rule, author_customer_id=requester.id,
                first=True,
            )
            return Outcome(
                InboundStatus.processed, matched_rule=rule, ticket_id=follow_up.id,
                comment_id=comment.id, mail_kind=kind,
                reason=f"follow-up of closed ticket #{ticket.number}",
            )
        as_agent = m.sender.agent_id is not None and match.rule == "token"
        # an agent's reply to an internal note, or any light agent's reply, never reaches a customer
        internal = as_agent and (match.internal or m.sender.light_agent)
        change = ticket_changes.begin(
            session, ticket, Actor(AuthorType.agent, m.sender.agent_id) if as_agent
            else Actor(AuthorType.customer, m.sender.customer_id), via="email",
        )
        comment = await self.comment(
            session, m, ticket, body=body, html=html, rule=rule,
            author_customer_id=None if as_agent else m.sender.customer_id,
            author_agent_id=m.sender.agent_id if as_agent else None, internal=internal,
        )
        change.commented(comment)
        if not m.kind.automatic:
            await self.after_human_reply(session, m, ticket, as_agent=as_agent, rule=match.rule, internal=internal)
        await ticket_changes.settle(session, change)
        return Outcome(
            InboundStatus.processed, matched_rule=rule, ticket_id=ticket.id,
            comment_id=comment.id, mail_kind=kind,
        )

    async def after_human_reply(
        self, session: AsyncSession, m: Message, ticket: Ticket, *, as_agent: bool, rule: str,
        internal: bool = False,
    ) -> None:
        actor = (AuthorType.agent, m.sender.agent_id) if as_agent else (AuthorType.customer, m.sender.customer_id)
        if as_agent:
            if ticket.first_response_at is None and not internal:  # a note answers nobody
                ticket.first_response_at = utcnow()
            target = TicketStatus.open if ticket.status is TicketStatus.new else None
        else:
            waiting = (TicketStatus.solved, TicketStatus.pending, TicketStatus.on_hold)
            target = TicketStatus.open if ticket.status in waiting else None
        if target is not None:
            await ticket_service.set_status(
                session, ticket, target, actor_type=actor[0], actor_id=actor[1], via="email"
            )
        # an agent's CCs are not the customer's choice of audience: who follows is changed in the API
        if rule == "token" and not as_agent:
            await self.add_cc_followers(session, m, ticket)

    async def comment(
        self,
        session: AsyncSession,
        m: Message,
        ticket: Ticket,
        *,
        body: str,
        rule: str,
        html: str | None = None,
        author_customer_id: uuid.UUID | None = None,
        author_agent_id: uuid.UUID | None = None,
        first: bool = False,
        internal: bool = False,
    ) -> TicketComment:
        """The mail as a comment: automatic mail is kept internal, so nothing answers it."""
        comment = await ticket_service.add_comment(
            session, ticket=ticket,
            author_type=AuthorType.agent if author_agent_id else (
                AuthorType.customer if author_customer_id else AuthorType.system
            ),
            author_customer_id=author_customer_id, author_agent_id=author_agent_id,
            body=body, html_body=html if html is not None else m.mail.html, inbound_message_id=m.inbound.id,
            visibility=Visibility.internal if m.kind.automatic or internal else Visibility.public,
            matched_rule=rule, mail_kind=QUIET_KIND if is_quiet(m.inbound) else m.kind.kind.value,
            via="email", announce=not first,
        )
        if (when := original_date(m.inbound)) is not None:
            comment.created_at = when
        m.lookups.commented(ticket.id, when)
        await self.store_attachments(session, comment, m.mail)
        if m.mail.message_id:
            m.lookups.recorded.add(m.mail.message_id)
            ticket_service.record_message_id(
                session, ticket_id=ticket.id, message_id=m.mail.message_id,
                direction=MessageDirection.inbound, comment_id=comment.id,
            )
        return comment

    async def store_attachments(
        self, session: AsyncSession, comment: TicketComment, mail: ParsedMail
    ) -> None:
        urls: dict[str, str] = {}
        for part in mail.attachments:
            digest = await self.store.put(part.data)
            attachment = ticket_service.add_attachment(
                session, comment=comment, filename=part.filename,
                content_type=part.content_type, size=len(part.data), sha256=digest,
                content_id=part.content_id, inline=part.inline,
            )
            if part.content_id:
                urls[part.content_id] = f"/api/v1/tickets/{comment.ticket_id}/attachments/{attachment.id}"
        if urls and comment.html_body:
            comment.html_body = resolve_cids(comment.html_body, urls)

    async def add_cc_followers(self, session: AsyncSession, m: Message, ticket: Ticket) -> None:
        """CC'd people become followers: only from mail that created the ticket or held a token."""
        addresses = [
            a for a in dict.fromkeys([*m.mail.to, *m.mail.cc])
            if a != m.mail.from_address and support_mailbox(a, self.mailboxes) is None and "@" in a
            and not is_robot_address(a)
        ]
        if not addresses or self.max_followers == 0:
            return
        await session.flush()  # the followers table points at the ticket
        agents = set(await session.scalars(select(Agent.email).where(Agent.email.in_(addresses))))
        ids = []
        for address in addresses[: self.max_followers * 2]:
            if address not in agents:
                ids.append((await customer_service.find_or_create(session, email=address)).id)
        await participant_service.add_followers(session, ticket, ids, cap=self.max_followers)


def first_comment(ticket: Ticket, mail_kind: str) -> CommentFacts:
    """What triggers see of a mailed ticket's first comment (automatic mail is kept internal)."""
    automatic = mail_kind != MailKind.human.value
    return CommentFacts(
        visibility=Visibility.internal if automatic else Visibility.public, author_type=AuthorType.customer,
        author_id=ticket.requester_id, body=ticket.description, mail_kind=mail_kind,
    )
