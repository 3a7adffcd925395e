"""What threading reads, for a whole batch of inbound mail at once.

Threading asks for live tickets by number (reply tokens, subject tags) and by id, for the rows of
the Message-IDs a mail quotes, and whether a quoted Message-ID of ours carried an internal note;
the pipeline asks how much mail a ticket took in the last hour. For a batch these are read up
front in two statements. Before, each reply flushed the reply before it and then asked four
statements of its own.

What the batch itself writes (tickets, Message-IDs, comments) is not in those reads. A question
that could be about it is answered live, after a flush, as every question was before; so is
every question about something not asked up front. `ThreadLookups()` with nothing read up front
answers everything that way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import ColumnElement, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.enums import MessageDirection, Visibility
from core.tickets.models import MessageId, Ticket, TicketComment

# the rows of quoted Message-IDs a mail is threaded by: the newest, as many as before per mail
QUOTED_ROWS = 20
BUDGET_WINDOW = timedelta(hours=1)

# per quoted Message-ID its newest rows, and apart from that limit every outbound row of ours
# that carried an internal note (so the limit can never make a reply to a note public)
_QUOTED = text(f"""
SELECT message_id, ticket_id, direction::text AS direction, created_at, false AS internal_note FROM (
    SELECT message_id, ticket_id, direction, created_at,
           row_number() OVER (PARTITION BY message_id ORDER BY created_at DESC) AS n
    FROM {MessageId.__tablename__} WHERE message_id = ANY(CAST(:ids AS text[]))
) newest WHERE n <= {QUOTED_ROWS}
UNION ALL
SELECT m.message_id, m.ticket_id, m.direction::text, m.created_at, true
FROM {MessageId.__tablename__} m JOIN {TicketComment.__tablename__} c ON c.id = m.comment_id
WHERE m.message_id = ANY(CAST(:ids AS text[])) AND m.direction = 'outbound' AND c.visibility = 'internal'
""")


@dataclass(frozen=True)
class Quoted:
    """A row of `message_ids`: which ticket sent or received that Message-ID."""

    ticket_id: uuid.UUID
    direction: MessageDirection
    created_at: datetime


def _mail_count(since: datetime):  # type: ignore[no-untyped-def]
    """How many comments made from mail a ticket took since `since` (its flood budget)."""
    return (
        select(func.count()).select_from(TicketComment).where(
            TicketComment.ticket_id == Ticket.id, TicketComment.inbound_message_id.is_not(None),
            TicketComment.created_at >= since,
        ).correlate(Ticket).scalar_subquery()
    )


@dataclass
class ThreadLookups:
    since: datetime = field(default_factory=lambda: datetime.now(timezone.utc) - BUDGET_WINDOW)
    # asked up front, and what was found
    numbers: frozenset[int] = frozenset()
    message_ids: frozenset[str] = frozenset()
    by_number: dict[int, Ticket] = field(default_factory=dict)
    by_id: dict[uuid.UUID, Ticket] = field(default_factory=dict)
    quoted_rows: dict[str, list[Quoted]] = field(default_factory=dict)
    internal_notes: set[tuple[str, uuid.UUID]] = field(default_factory=set)
    mail_counts: dict[uuid.UUID, int] = field(default_factory=dict)
    # written by this batch so far
    recorded: set[str] = field(default_factory=set)
    created: int = 0

    @classmethod
    async def for_batch(cls, session: AsyncSession, *, numbers: set[int], message_ids: set[str]) -> ThreadLookups:
        found = cls(numbers=frozenset(numbers), message_ids=frozenset(message_ids))
        if message_ids:
            for row in await session.execute(_QUOTED, {"ids": sorted(message_ids)}):
                if row.internal_note:
                    found.internal_notes.add((row.message_id, row.ticket_id))
                else:
                    found.quoted_rows.setdefault(row.message_id, []).append(
                        Quoted(row.ticket_id, MessageDirection(row.direction), row.created_at)
                    )
        ticket_ids = {q.ticket_id for rows in found.quoted_rows.values() for q in rows}
        if numbers or ticket_ids:
            for ticket, count in await session.execute(
                select(Ticket, _mail_count(found.since)).where(
                    Ticket.deleted_at.is_(None), or_(Ticket.number.in_(numbers), Ticket.id.in_(ticket_ids))
                )
            ):
                found._remember(ticket, count)
        return found

    def _remember(self, ticket: Ticket, mail_count: int | None = None) -> None:
        self.by_number[ticket.number] = ticket
        self.by_id[ticket.id] = ticket
        if mail_count is not None:
            self.mail_counts[ticket.id] = mail_count

    async def ticket_by_number(self, session: AsyncSession, number: int) -> Ticket | None:
        """The live ticket with this number. A ticket made in this batch has its number only
        once flushed: while the batch has made any, a number not found is looked for live."""
        if (ticket := self.by_number.get(number)) is not None:
            return ticket
        if number in self.numbers and not self.created:
            return None
        return await self._live(session, Ticket.number == number)

    async def ticket_by_id(self, session: AsyncSession, ticket_id: uuid.UUID) -> Ticket | None:
        if (ticket := self.by_id.get(ticket_id)) is not None:
            return ticket
        return await self._live(session, Ticket.id == ticket_id)

    async def _live(self, session: AsyncSession, which: ColumnElement[bool]) -> Ticket | None:
        """Looked up in the table, after a flush: it may be a ticket this batch made."""
        await session.flush()
        ticket = await session.scalar(select(Ticket).where(which, Ticket.deleted_at.is_(None)))
        if ticket is not None:
            self._remember(ticket)
        return ticket

    async def quoted(self, session: AsyncSession, referenced: list[str]) -> list[Quoted]:
        """The newest rows of these Message-IDs, newest first."""
        wanted = set(referenced)
        if wanted <= self.message_ids and not wanted & self.recorded:
            rows = [q for message_id in wanted for q in self.quoted_rows.get(message_id, ())]
            return sorted(rows, key=lambda q: q.created_at, reverse=True)[:QUOTED_ROWS]
        await session.flush()  # a Message-ID of this batch's mail: its row must be in the table
        found = await session.execute(
            select(MessageId.ticket_id, MessageId.direction, MessageId.created_at)
            .where(MessageId.message_id.in_(referenced))
            .order_by(MessageId.created_at.desc())
            .limit(QUOTED_ROWS)
        )
        return [Quoted(r.ticket_id, r.direction, r.created_at) for r in found]

    async def answers_internal_note(self, session: AsyncSession, referenced: list[str], ticket_id: uuid.UUID) -> bool:
        """Whether the mail quotes a Message-ID of ours that carried an internal comment (the
        mailer writes those, never a batch of inbound mail: nothing to flush)."""
        if not referenced:
            return False
        if set(referenced) <= self.message_ids:
            return any((message_id, ticket_id) in self.internal_notes for message_id in referenced)
        found = await session.scalar(
            select(MessageId.id).join(TicketComment, TicketComment.id == MessageId.comment_id).where(
                MessageId.ticket_id == ticket_id, MessageId.message_id.in_(referenced),
                MessageId.direction == MessageDirection.outbound,
                TicketComment.visibility == Visibility.internal,
            ).limit(1)
        )
        return found is not None

    async def mail_count(self, session: AsyncSession, ticket_id: uuid.UUID) -> int:
        """Comments made from mail on this ticket within the budget window, this batch's too."""
        count = self.mail_counts.get(ticket_id)
        if count is None:
            await session.flush()  # this batch's comments on it count as well
            count = self.mail_counts[ticket_id] = await session.scalar(
                select(_mail_count(self.since)).where(Ticket.id == ticket_id)
            ) or 0
        return count

    def commented(self, ticket_id: uuid.UUID, at: datetime | None) -> None:
        """A comment from mail added by this batch (`at`: its own date, for imported mail)."""
        if ticket_id in self.mail_counts and (at is None or at >= self.since):
            self.mail_counts[ticket_id] += 1
