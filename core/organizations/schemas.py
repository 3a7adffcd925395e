from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


def _domain(value: str) -> str:
    value = value.strip().lower().lstrip("@")
    labels = value.split(".")
    if len(labels) < 2 or len(value) > 253 or not all(
        label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels
    ):
        raise ValueError(f"not a domain name: {value!r}")
    return value


Domain = Annotated[str, AfterValidator(_domain)]


class OrganizationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    domains: list[Domain] = Field(default_factory=list, max_length=100)
    notes: Annotated[str, StringConstraints(max_length=10_000)] | None = None


class OrganizationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    domains: list[Domain] | None = Field(default=None, max_length=100)
    notes: Annotated[str, StringConstraints(max_length=10_000)] | None = None


class OrganizationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    domains: list[str]
    notes: str | None
    created_at: datetime
    updated_at: datetime
