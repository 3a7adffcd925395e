from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.schemas import EmailAddress
from core.tickets.schemas import CustomFields

Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]


Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]


class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    name: Name = ""
    organization_id: uuid.UUID | None = None
    phone: Phone | None = None
    custom_fields: CustomFields = Field(default_factory=dict)


class CustomerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress | None = None
    name: Name | None = None
    organization_id: uuid.UUID | None = None
    bouncing: bool | None = None  # false: mail to the address again (after a bounce was fixed)
    phone: Phone | None = None
    custom_fields: CustomFields | None = None


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str
    organization_id: uuid.UUID | None
    phone: str | None
    custom_fields: dict[str, Any]
    bouncing: bool
    erased_at: datetime | None = Field(description="set when the customer's personal data was erased")
    created_at: datetime
    updated_at: datetime
