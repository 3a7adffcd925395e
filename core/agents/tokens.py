"""API tokens: shown once, stored as a sha256 digest, revocable."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.agents.models import Agent, ApiToken
from core.clock import utcnow
from core.enums import AgentRole

PREFIX = "hd_"


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for: all a request needs to know about its agent."""

    id: uuid.UUID
    role: AgentRole


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


def issue(session: AsyncSession, *, agent: Agent | Principal, name: str = "") -> str:
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            id=uuid.uuid4(), agent_id=agent.id, name=name, token_hash=hash_token(token),
            prefix=token[:10],
        )
    )
    return token


async def authenticate(session: AsyncSession, token_hash: str) -> Principal | None:
    row = (
        await session.execute(
            select(Agent.id, Agent.role)
            .join(ApiToken, ApiToken.agent_id == Agent.id)
            .where(
                ApiToken.token_hash == token_hash,
                ApiToken.revoked_at.is_(None),
                Agent.active.is_(True),
            )
        )
    ).first()
    return Principal(row.id, row.role) if row is not None else None


def revoke(token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()


@dataclass
class TokenCache:
    """Recently verified tokens, per process, so a request need not look its token up.

    A revoked token or a deactivated agent is dropped at once in the process that made the
    change (`clear`), and in other API processes within `ttl` seconds."""

    ttl: float
    max_entries: int = 10_000
    _entries: dict[str, tuple[Principal, float]] = field(default_factory=dict)

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None or time.monotonic() - entry[1] > self.ttl:
            return None
        return entry[0]

    def put(self, token_hash: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[token_hash] = (principal, time.monotonic())

    def clear(self) -> None:
        self._entries.clear()
