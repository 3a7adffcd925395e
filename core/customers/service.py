from __future__ import annotations

import uuid

from pydantic import BaseModel
from sqlalchemy import ColumnElement, any_, literal, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import events
from core.crud import Crud
from core.customers.models import Customer
from core.errors import Invalid
from core.organizations.models import Organization


class CustomerService:
    async def find_or_create(self, session: AsyncSession, *, email: str, name: str = "") -> Customer:
        """Race-free: two messages from one new sender make one customer. One query if known."""
        email = email.strip().lower()
        customer = await session.scalar(select(Customer).where(Customer.email == email))
        if customer is None:
            domain = email.rpartition("@")[2]
            org_id = await session.scalar(
                select(Organization.id).where(literal(domain) == any_(Organization.domains)).limit(1)
            )
            await session.execute(
                insert(Customer)
                .values(id=uuid.uuid4(), email=email, name=name or "", organization_id=org_id)
                .on_conflict_do_nothing(index_elements=[Customer.email])
            )
            customer = await session.scalar(select(Customer).where(Customer.email == email))
            assert customer is not None
        if name and not customer.name:
            customer.name = name
        return customer


customer_service = CustomerService()


async def _organization_rules(session: AsyncSession, customer: Customer, data: BaseModel) -> None:
    """An explicit organization must exist; without one, the email's domain decides."""
    if "email" in data.model_fields_set and customer.email is None:
        raise Invalid("email cannot be null", {"email": "required"})
    if customer.organization_id is not None:
        if await session.get(Organization, customer.organization_id) is None:
            raise Invalid("unknown organization", {"organization_id": "no such organization"})
    elif "organization_id" not in data.model_fields_set:
        domain = customer.email.rpartition("@")[2]
        customer.organization_id = await session.scalar(
            select(Organization.id).where(literal(domain) == any_(Organization.domains)).limit(1)
        )


async def _announce(session: AsyncSession, customer: Customer, data: BaseModel) -> None:
    """Their tickets' search documents carry the customer's name and address."""
    if {"name", "email"} & data.model_fields_set:
        events.emit_customer_updated(session, customer_id=customer.id)


def _by_email(emails: list[str]) -> ColumnElement[bool]:
    """Exact and case-insensitive: addresses are stored lower-cased."""
    return Customer.email.in_([e.strip().lower() for e in emails])


def _matching(words: str) -> ColumnElement[bool]:
    """Part of the name or the address, case-insensitively (`%` and `_` are literal)."""
    pattern = "%" + words.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return or_(Customer.name.ilike(pattern, escape="\\"), Customer.email.ilike(pattern, escape="\\"))


customer_crud: Crud[Customer] = Crud(
    Customer, "customer", before_write=_organization_rules, after_write=_announce,
    filters={"email": _by_email, "q": _matching},
)
