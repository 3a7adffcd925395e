"""The scheduler role in a running gateway: a solved ticket closes on its own, and its
requester gets the satisfaction survey, once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from core.clock import utcnow
from core.enums import AuthorType, TicketStatus
from core.tickets.models import Ticket
from core.tickets.service import ticket_service
from tests.outbound.support import SmtpSink, eventually
from tests.outbound.test_mailer import new_ticket, parts, unique
from tests.support.gateway import make_settings, running_gateway


async def test_the_scheduler_closes_solved_tickets_and_the_survey_goes_out(
    database_url: str, tmp_path: Path, sink: SmtpSink
) -> None:
    settings = make_settings(
        database_url, tmp_path / "data", smtp_relay=sink.relay, outbox_poll_seconds=0.05,
        jobs_interval_seconds=0.3, auto_close_after_hours=24,
    )
    async with running_gateway(settings) as gw:  # every role, the scheduler among them
        requester = unique("closing")
        ticket, _ = await new_ticket(gw, requester, subject="Toner empty")
        await sink.wait_for(requester)  # the acknowledgement
        async with gw.db.unit_of_work() as session:
            stored = await session.get(Ticket, ticket.id)
            await ticket_service.set_status(session, stored, TicketStatus.solved,
                                            actor_type=AuthorType.system, actor_id=None, via="test")
        await sink.wait_for(requester, 2)  # "marked as solved"
        async with gw.db.unit_of_work() as session:  # solved a day and a bit ago
            stored = await session.get(Ticket, ticket.id)
            stored.solved_at = utcnow() - timedelta(hours=25)

        async def closed() -> bool:
            async with gw.db.unit_of_work() as session:
                return (await session.get(Ticket, ticket.id)).status is TicketStatus.closed
        await eventually(closed, what="the scheduler to close the ticket")
        survey = (await sink.wait_for(requester, 3))[2]
        assert "How would you rate" in parts(survey.message)[0]
        assert survey.message["Subject"] == f"[#{ticket.number}] Toner empty"
        assert gw.gateway.jobs is not None
    assert len(sink.to(requester)) == 3  # acknowledgement, solved, survey: nothing twice
