from __future__ import annotations

from sqlalchemy import ColumnElement, text

from core.crud import Crud
from core.sla.models import SlaPolicy


def _by_priority(priorities: list[str]) -> ColumnElement[bool]:
    """Policies that give tickets of these priorities a target: their filter lets the priority
    through (or says nothing about priorities) and one of their metrics has a target for it."""
    return text(  # type: ignore[return-value]
        "(coalesce(jsonb_typeof(sla_policies.filter -> 'priority'), 'null') = 'null'"
        " OR (sla_policies.filter -> 'priority') ?| CAST(:sla_priorities AS text[]))"
        " AND EXISTS (SELECT 1 FROM jsonb_each(sla_policies.metrics) AS metric"
        " WHERE metric.value ?| CAST(:sla_priorities AS text[]))"
    ).bindparams(sla_priorities=[getattr(p, "value", p) for p in priorities])


sla_policy_crud: Crud[SlaPolicy] = Crud(SlaPolicy, "SLA policy", filters={"priority": _by_priority})
