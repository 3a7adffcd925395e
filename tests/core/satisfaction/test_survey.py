"""Satisfaction end to end: solved over HTTP, the survey mailed over SMTP (two schedulers),
the page (GET shows, POST records), an emailed answer recorded on the original ticket."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select, update

from core.audit.models import TicketAuditLog
from core.clock import utcnow
from core.db import Database
from core.events import TOPIC_SATISFACTION_RATED, OutboxEvent
from core.jobs.scheduler import Jobs
from core.metrics import Metrics
from core.satisfaction.answers import survey_answer
from core.tickets.models import Ticket
from tests.gateway.test_conversations import deliver, email
from tests.outbound.support import SmtpSink
from tests.support.gateway import Running, make_settings, running_gateway


@pytest.fixture
async def gw(database_url: str, tmp_path: Path, sink: SmtpSink) -> AsyncIterator[Running]:
    settings = make_settings(
        database_url, tmp_path / "data", smtp_relay=sink.relay, mail_retry_seconds=0.2, outbox_poll_seconds=0.05,
        satisfaction_delay_hours=0,
    )
    async with running_gateway(settings) as running:
        yield running


@pytest.mark.parametrize(("text", "score", "comment"), [
    ("Good, thanks!", "good", "thanks"), ("good", "good", ""), ("GUT. Sehr schnell", "good", "Sehr schnell"),
    ("Bon travail", "good", "travail"), ("Bueno", "good", ""), ("Goed gedaan", "good", "gedaan"),
    ("Bom atendimento", "good", "atendimento"), ("👍 fast", "good", "fast"), ("👎🏽", "bad", ""),
    ("Bad: too slow", "bad", "too slow"), ("schlecht", "bad", ""), ("Mauvais", "bad", ""), ("malo", "bad", ""),
    ("Slecht!", "bad", ""), ("Ruim demais", "bad", "demais"),
])
def test_answers_in_several_languages(text: str, score: str, comment: str) -> None:
    answer = survey_answer(text)
    assert answer is not None and (answer.score, answer.comment) == (score, comment)


@pytest.mark.parametrize("text", ["Goodness, another problem", "Hello, good morning", "", "Thanks"])
def test_other_replies_are_no_answers(text: str) -> None:
    assert survey_answer(text) is None


async def ticket_json(client: aiohttp.ClientSession, ticket_id: object) -> dict:
    return await (await client.get(f"/api/v1/tickets/{ticket_id}")).json()


async def test_survey_page_and_emailed_answer(gw: Running, sink: SmtpSink) -> None:
    requester = f"sat-{uuid.uuid4().hex[:8]}@customer.test"
    raw, _ = email(requester, "Printer broken", "It is broken.")
    ticket_id = (await deliver(gw, raw)).ticket_id
    await sink.wait_for(requester)  # the acknowledgement
    async with gw.http() as client:
        assert (await client.put(f"/api/v1/tickets/{ticket_id}", json={"status": "solved"})).status == 200
        await sink.wait_for(requester, 2)  # "solved"
        schedulers = [Jobs(Database(gw.db.url, pool_size=2), gw.gateway.settings, Metrics()) for _ in range(2)]
        await asyncio.gather(*(s.run("satisfaction_surveys") for s in schedulers))
        await asyncio.gather(*(s.run("satisfaction_surveys") for s in schedulers))
        for scheduler in schedulers:
            await scheduler.db.dispose()
        survey = (await sink.wait_for(requester, 3))[2]
        text = survey.message.get_body(("plain",)).get_content()
        assert "How would you rate" in text
        good = re.search(r"Good: (\S+)", text).group(1)  # type: ignore[union-attr]
        path = good.split("://", 1)[1].split("/", 1)[1]

        # GET only shows the choice: a link scanner never votes
        page = await client.get(f"/{path}")
        html = await page.text()
        assert page.status == 200 and 'value="good" checked' in html and "<script" not in html
        assert (await ticket_json(client, ticket_id))["satisfaction"] is None
        # POST records; the answer can be changed
        posted = await client.post(f"/{path.split('?')[0]}", data={"score": "bad", "comment": "<b>slow</b>"})
        assert posted.status == 200
        rated = (await ticket_json(client, ticket_id))["satisfaction"]
        assert (rated["score"], rated["comment"]) == ("bad", "<b>slow</b>")
        again = await (await client.get(f"/{path.split('?')[0]}")).text()
        assert "&lt;b&gt;slow&lt;/b&gt;" in again and 'value="bad" checked' in again
        token = path.split("?")[0].split("/")[1]
        forged = await client.get(f"/satisfaction/{token[:-4]}{'AAAA' if not token.endswith('AAAA') else 'BBBB'}")
        assert forged.status == 404
        nonsense = await client.post(f"/{path.split('?')[0]}", data={"score": "maybe"})
        assert nonsense.status == 422

        # an emailed answer to the survey: the rating, on this ticket, nothing else
        answer, _ = email(requester, "Re: survey", "Gut, danke schön\n\n> How would you rate",
                          in_reply_to=survey.message["Message-ID"].strip("<>"))
        inbound = await deliver(gw, answer)
        assert inbound.ticket_id == ticket_id and inbound.reason == "satisfaction rating"
        ticket = await ticket_json(client, ticket_id)
        assert ticket["status"] == "solved"
        assert (ticket["satisfaction"]["score"], ticket["satisfaction"]["comment"]) == ("good", "danke schön")
        await asyncio.sleep(0.5)
        assert len(sink.to(requester)) == 3  # no acknowledgement, no second survey
    async with gw.db.unit_of_work() as session:
        audits = await session.scalar(select(func.count()).select_from(TicketAuditLog).where(
            TicketAuditLog.ticket_id == ticket_id, TicketAuditLog.action == "satisfaction"))
        rated_events = await session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.key == str(ticket_id), OutboxEvent.topic == TOPIC_SATISFACTION_RATED))
        assert (audits, rated_events) == (2, 2)
        # closed more than seven days ago: the survey is closed
        await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(
            status="closed", updated_at=utcnow() - timedelta(days=8)))
    async with gw.http() as client:
        assert (await client.get(f"/{path}")).status == 410
