from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from core.schemas import EmailAddress

Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]


class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    name: Name = ""
    organization_id: uuid.UUID | None = None


class CustomerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress | None = None
    name: Name | None = None
    organization_id: uuid.UUID | None = None
    bouncing: bool | None = None  # false: mail to the address again (after a bounce was fixed)


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str
    organization_id: uuid.UUID | None
    bouncing: bool
    created_at: datetime
    updated_at: datetime
