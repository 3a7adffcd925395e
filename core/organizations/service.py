from __future__ import annotations

from core.crud import Crud
from core.organizations.models import Organization

organization_crud: Crud[Organization] = Crud(Organization, "organization")
