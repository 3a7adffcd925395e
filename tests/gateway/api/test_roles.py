"""Role × route: every API route, called by each role. The table below is the policy;
the test fails if a route is missing from it or if the server disagrees with it."""

from __future__ import annotations

import re
import uuid

import pytest

from core.agents.service import agent_service
from core.enums import AgentRole
from gateway.http.app import ROUTE_TABLES
from tests.support.gateway import Running

A, G, L = "admin", "agent", "light_agent"
ALL, STAFF, ADMIN = {A, G, L}, {A, G}, {A}

POLICY: dict[tuple[str, str], set[str]] = {
    ("PUT", "/api/v1/tickets/update_many"): STAFF,
    ("POST", "/api/v1/tickets"): STAFF,
    ("PUT", "/api/v1/tickets/{ticket}"): STAFF,
    ("DELETE", "/api/v1/tickets/{ticket}"): STAFF,
    ("POST", "/api/v1/tickets/{ticket}/merge"): STAFF,
    ("POST", "/api/v1/tickets/{ticket}/comments"): ALL,  # light agents: internal only (see test_tickets)
    ("GET", "/api/v1/tickets"): ALL,
    ("GET", "/api/v1/tickets/{ticket}"): ALL,
    ("GET", "/api/v1/tickets/statistics"): ALL,
    ("GET", "/api/v1/tickets/{ticket}/sla"): ALL,
    ("GET", "/api/v1/sla/compliance"): ALL,
    ("GET", "/api/v1/tickets/{ticket}/comments"): ALL,
    ("GET", "/api/v1/tickets/{ticket}/audits"): ALL,
    ("GET", "/api/v1/tickets/{ticket}/attachments/{attachment}"): ALL,
    ("POST", "/api/v1/tickets/{ticket}/macros/{macro_id}/apply"): STAFF,
    ("GET", "/api/v1/customers"): ALL,
    ("POST", "/api/v1/customers"): STAFF,
    ("GET", "/api/v1/customers/{id}"): ALL,
    ("PUT", "/api/v1/customers/{id}"): STAFF,
    ("DELETE", "/api/v1/customers/{id}"): STAFF,  # erasure
    ("GET", "/api/v1/customers/{id}/tickets"): ALL,
    ("POST", "/api/v1/tokens"): ALL,
    ("GET", "/api/v1/tokens"): ALL,
    ("DELETE", "/api/v1/tokens/{id}"): ALL,
    ("GET", "/api/v1/agents"): ALL,
    ("POST", "/api/v1/agents"): ADMIN,
    ("GET", "/api/v1/agents/{id}"): ALL,
    ("PUT", "/api/v1/agents/{id}"): ADMIN,
    ("DELETE", "/api/v1/agents/{id}"): ADMIN,  # deactivation
    **{
        (method, path.format(name)): roles
        for name in ("groups", "organizations", "macros", "sla_policies", "triggers", "automations")
        for method, path, roles in (
            ("GET", "/api/v1/{}", ALL), ("POST", "/api/v1/{}", ADMIN), ("GET", "/api/v1/{}/{{id}}", ALL),
            ("PUT", "/api/v1/{}/{{id}}", ADMIN), ("DELETE", "/api/v1/{}/{{id}}", ADMIN),
        )
    },
    ("GET", "/api/v1/inbound"): STAFF,
    ("GET", "/api/v1/inbound/{inbound}"): STAFF,
    ("GET", "/api/v1/inbound/{inbound}/raw"): STAFF,
    ("POST", "/api/v1/inbound"): STAFF,
    ("POST", "/api/v1/inbound/{inbound}/reprocess"): STAFF,
    ("GET", "/api/v1/deliveries"): STAFF,
    ("GET", "/api/v1/search"): ALL,
}


def api_operations() -> list[tuple[str, str]]:
    return [(op.method, op.path) for table in ROUTE_TABLES for op in table.operations if op.auth]


def test_the_policy_covers_every_route() -> None:
    assert sorted(api_operations()) == sorted(POLICY)


@pytest.fixture
async def tokens(gateway: Running) -> dict[str, str]:
    async with gateway.db.unit_of_work() as session:
        return {
            role.value: await agent_service.token_for(
                session, email=f"{role.value}-{uuid.uuid4().hex[:6]}@roles.test", name=role.value, role=role
            )
            for role in AgentRole
        }


async def test_each_role_gets_403_exactly_where_the_policy_says(gateway: Running, tokens: dict[str, str]) -> None:
    mismatches = []
    for (method, path), allowed in POLICY.items():
        # unknown ids: allowed callers get past the guard (404/422/...), others stop at 403
        url = re.sub(r"{\w+}", str(uuid.uuid4()), path)
        for role, token in tokens.items():
            async with gateway.http(token) as client:
                response = await client.request(method, url, json={})
                status = response.status
            forbidden = status == 403
            if forbidden == (role in allowed) or status >= 500:
                mismatches.append((method, path, role, status))
    assert mismatches == []
