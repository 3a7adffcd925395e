"""Declarative base shared by every aggregate's models."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import DateTime, Enum, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

T = TypeVar("T")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


def created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def created_at_in_order() -> Mapped[datetime]:
    """Wall-clock time of the row's insert, so rows made in one transaction keep their order."""
    return mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp(), nullable=False
    )


def updated_at() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


def pg_enum(enum_cls: type[enum.Enum], name: str) -> Enum:
    """A PostgreSQL enum stored by value (`open`, not `OPEN`)."""
    return Enum(enum_cls, name=name, values_callable=lambda e: [m.value for m in e])


def active_rows_version(table: str) -> str:
    """A subquery naming which rows of an ordered rule table (triggers, SLA policies: `active`,
    `position`, `updated_at`) are in force: it changes with any edit, (de)activation,
    reordering or deletion (each bumps `updated_at` or leaves the set). 32 characters, where the
    rules themselves are kilobytes of JSON: cheap to read with every change, so a process
    re-reads the rules only when it differs."""
    return (
        "(SELECT md5(coalesce(string_agg(id::text || '@' || updated_at::text, ',' ORDER BY position, created_at), ''))"
        f" FROM {table} WHERE active)"
    )


class ByVersion(Generic[T]):
    """What a process read of a rule table, by its `active_rows_version`. Old versions are
    never asked for again, so past a few it starts over."""

    KEEP = 16

    def __init__(self) -> None:
        self._known: dict[str, T] = {}

    def get(self, version: str) -> T | None:
        return self._known.get(version)

    def remember(self, version: str, value: T) -> None:
        if len(self._known) >= self.KEEP:
            self._known.clear()
        self._known[version] = value
