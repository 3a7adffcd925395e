"""Threat: backscatter. Forged senders cost nothing; each new message used to earn an
acknowledgement, so one host could make us mail thousands of strangers. A global budget and
one per sending host bound them; the excess is counted in metrics."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import text

from core.db import Database
from tests.gateway.test_conversations import deliver, email
from tests.outbound.support import SmtpSink
from tests.outbound.test_mailer import settled
from tests.support.gateway import make_settings, running_gateway


async def _forget_other_tests_events(database_url: str) -> None:
    """Events other tests left unpublished (their gateways stopped first) would spend this
    host's budget before ours: they are for mailers that are gone."""
    db = Database(database_url, pool_size=1)
    try:
        async with db.unit_of_work() as session:
            await session.execute(text("UPDATE outbox_events SET published_at = now() WHERE published_at IS NULL"))
    finally:
        await db.dispose()


async def _flood(database_url: str, tmp_path: Path, sink: SmtpSink, count: int, **budget: int) -> tuple[int, str]:
    await _forget_other_tests_events(database_url)
    settings = make_settings(database_url, tmp_path / "data", smtp_relay=sink.relay, outbox_poll_seconds=0.05, **budget)
    senders = [f"forged-{uuid.uuid4().hex[:8]}@victim{i}.test" for i in range(count)]
    async with running_gateway(settings) as gw:
        for sender in senders:
            raw, _ = email(sender, "hello", "spam")
            await settled(gw, (await deliver(gw, raw)).ticket_id)
        metrics = gw.gateway.metrics.render().decode()
    return sum(1 for m in sink.messages if set(m.rcpt_tos) & set(senders)), metrics


async def test_forged_senders_from_one_host_get_at_most_the_host_budget(database_url: str, tmp_path: Path, sink: SmtpSink) -> None:
    sent, metrics = await _flood(database_url, tmp_path, sink, 12, ack_per_host_burst=3, ack_per_host_per_hour=0)
    assert sent == 3
    assert 'helpdesk_mail_suppressed_total{reason="ack_budget_host"} 9.0' in metrics


async def test_forged_senders_get_at_most_the_global_budget(database_url: str, tmp_path: Path, sink: SmtpSink) -> None:
    sent, metrics = await _flood(database_url, tmp_path, sink, 12, ack_burst=5, ack_per_hour=0)
    assert sent == 5
    assert 'helpdesk_mail_suppressed_total{reason="ack_budget_global"} 7.0' in metrics
