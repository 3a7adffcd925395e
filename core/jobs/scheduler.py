"""The scheduler role: apscheduler runs each job at its interval.

A job runs in batches, one transaction each, until a batch comes back short, so a backlog
(the first start on an old database) is worked off in one run without one huge transaction.
A failing run is logged and counted, and the next interval tries again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncSession

from core.automations.service import automation_runner
from core.clock import utcnow
from core.config import Settings
from core.db import Database
from core.jobs.housekeeping import close_solved_tickets, prune_published_events
from core.jobs.sla import assign_first_reply_targets, mark_breaches, warn_before_breach
from core.metrics import Metrics
from core.satisfaction.service import send_surveys

log = logging.getLogger(__name__)

Batch = Callable[[AsyncSession], Awaitable[int]]
BATCH = 200


class Jobs:
    def __init__(self, db: Database, settings: Settings, metrics: Metrics) -> None:
        self.db = db
        self.settings = settings
        self.metrics = metrics
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[object]] = set()

    def batches(self) -> dict[str, Batch]:
        """Each job's next batch, with the cut-off times as of now."""
        settings = self.settings

        async def auto_close(session: AsyncSession) -> int:
            before = utcnow() - timedelta(hours=settings.auto_close_after_hours)
            return await close_solved_tickets(session, solved_before=before, limit=BATCH)

        async def prune_outbox(session: AsyncSession) -> int:
            before = utcnow() - timedelta(hours=settings.outbox_retention_hours)
            return await prune_published_events(session, published_before=before, limit=BATCH * 25)

        async def sla_targets(session: AsyncSession) -> int:
            return await assign_first_reply_targets(session, now=utcnow())

        async def sla_warnings(session: AsyncSession) -> int:
            warn = timedelta(minutes=settings.sla_warning_minutes)
            return await warn_before_breach(session, now=utcnow(), warn_before=warn, limit=BATCH)

        async def sla_breaches(session: AsyncSession) -> int:
            return len(await mark_breaches(session, now=utcnow(), limit=BATCH))

        async def satisfaction_surveys(session: AsyncSession) -> int:
            before = utcnow() - timedelta(hours=settings.satisfaction_delay_hours)
            return await send_surveys(session, solved_before=before, limit=BATCH)

        after: list[uuid.UUID] = []  # automations: where this run's scan of open tickets is

        async def automations(session: AsyncSession) -> int:
            seen = await automation_runner.run_batch(
                session, now=utcnow(), after=after[-1] if after else None, limit=BATCH,
            )
            after.extend(seen[-1:])
            return len(seen)

        return {
            "sla_targets": sla_targets, "sla_warnings": sla_warnings, "sla_breaches": sla_breaches,
            "auto_close": auto_close, "prune_outbox": prune_outbox, "automations": automations,
            "satisfaction_surveys": satisfaction_surveys,
        }

    async def run(self, name: str) -> int:
        """One run of a job: batches until one comes back short. Returns the items handled."""
        batch = self.batches()[name]
        total = 0
        try:
            while True:
                async with self.db.unit_of_work() as session:
                    done = await batch(session)
                total += done
                self.metrics.job_items.labels(name).inc(done)
                if done < BATCH:
                    break
        except Exception:
            self.metrics.job_errors.labels(name).inc()
            log.exception("job %s failed after %d item(s); it runs again at the next interval", name, total)
        if total:
            log.info("job %s: %d item(s)", name, total)
        return total

    async def start(self) -> None:
        scheduler = AsyncIOScheduler()
        for name in self.batches():
            scheduler.add_job(
                self._tracked, "interval", args=[name], id=name, name=name,
                seconds=self.settings.jobs_interval_seconds, next_run_time=utcnow(),
                max_instances=1, coalesce=True, misfire_grace_time=None,
            )
        scheduler.start()
        self._scheduler = scheduler

    async def _tracked(self, name: str) -> int:
        """A scheduled run, known to `stop` while it lasts."""
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            return await self.run(name)
        finally:
            self._running.discard(task)

    async def stop(self, grace: float = 10.0) -> None:
        """No new runs; a run in progress gets `grace` seconds to finish its batch."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._running:
            _, late = await asyncio.wait(list(self._running), timeout=grace)
            for task in late:  # its transaction rolls back; the next start does the work
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
