from __future__ import annotations

from core.crud import Crud
from core.sla.models import SlaPolicy

sla_policy_crud: Crud[SlaPolicy] = Crud(SlaPolicy, "SLA policy")
