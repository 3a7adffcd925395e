"""First-start set-up: groups for the support addresses, the default notification triggers,
the admin agent and its token."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from core.agents import tokens
from core.agents.service import agent_service
from core.config import Settings
from core.db import Database
from core.enums import AgentRole
from core.groups.service import group_service
from core.triggers.defaults import seed_default_triggers

ADMIN_EMAIL = "admin@localhost"


async def bootstrap(db: Database, settings: Settings) -> str | None:
    """Idempotent. Returns the admin token when it was created now (shown once), else None."""
    async with db.unit_of_work() as session:
        for group_name in sorted(set(settings.support_mailboxes.values())):
            await group_service.ensure(session, name=group_name)
        # serialise concurrent first starts of several processes
        await session.execute(text("SELECT pg_advisory_xact_lock(7100001)"))
        await seed_default_triggers(session)
        if await agent_service.any_admin(session):
            return None
        admin = await agent_service.create(
            session, email=ADMIN_EMAIL, name="Administrator", role=AgentRole.admin
        )
        token = tokens.issue(session, agent=admin, name="admin (first start)")
    write_secret(settings.data_dir / "admin-token", token)
    return token


def write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    os.chmod(path, 0o600)
