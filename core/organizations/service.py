from __future__ import annotations


from sqlalchemy import ColumnElement, cast
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text

from core.crud import Crud
from core.organizations.models import Organization


def _by_domain(domains: list[str]) -> ColumnElement[bool]:
    """Organizations listing any of these email domains (as customers' addresses are matched)."""
    wanted = [d.strip().lower().lstrip("@") for d in domains]
    return Organization.domains.overlap(cast(wanted, ARRAY(Text)))  # type: ignore[no-any-return]


organization_crud: Crud[Organization] = Crud(
    Organization, "organization", filters={"domain": _by_domain}
)

