"""API tokens: shown once, stored as a sha256 digest, revocable."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
import secrets
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.agents.models import Agent, ApiToken

PREFIX = "hd_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


def issue(session: AsyncSession, *, agent: Agent, name: str = "") -> str:
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            id=uuid.uuid4(), agent_id=agent.id, name=name, token_hash=hash_token(token),
            prefix=token[:10],
        )
    )
    return token


async def authenticate(session: AsyncSession, token: str) -> Agent | None:
    return await session.scalar(
        select(Agent)
        .join(ApiToken, ApiToken.agent_id == Agent.id)
        .where(
            ApiToken.token_hash == hash_token(token),
            ApiToken.revoked_at.is_(None),
            Agent.active.is_(True),
        )
    )


def revoke(token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = datetime.now(timezone.utc)
