"""`helpdesk reindex`: the whole index rebuilt from the database while serving goes on."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from core.config import Settings
from core.db import Database
from search.service import backend_from_settings


@dataclass
class ReindexReport:
    backend: str
    tickets: int
    seconds: float

    def __str__(self) -> str:
        rate = self.tickets / self.seconds if self.seconds else 0.0
        return (f"reindexed {self.tickets} tickets into {self.backend} in {self.seconds:.1f}s "
                f"({rate:,.0f} tickets/s)")


async def reindex(db: Database, settings: Settings, *, backend: str | None = None) -> ReindexReport:
    """`backend`: "postgres" or "meilisearch" (the configured one by default)."""
    from tqdm import tqdm

    chosen = backend_from_settings(settings)
    if backend == "postgres" and chosen.name != "postgres":
        from search.postgres import PostgresSearch

        chosen = PostgresSearch()
    elif backend == "meilisearch" and chosen.name != "meilisearch":
        raise ValueError("reindex --backend meilisearch needs HELPDESK_MEILI_URL")
    bar = tqdm(total=0, unit=" tickets", desc=f"indexing ({chosen.name})", file=sys.stderr,
               disable=None, mininterval=0.5)  # disable=None: a bar on a terminal, quiet otherwise

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    started = time.perf_counter()
    try:
        count = await chosen.rebuild(db, progress)
    finally:
        bar.close()
        await chosen.close()
    return ReindexReport(chosen.name, count, time.perf_counter() - started)
