"""Plain create/read/update/delete for the simple aggregates (groups, organizations, macros,
SLA policies, triggers), so each of them states only its schemas and its rules."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, Invalid, NotFound, plain_conflict
from core.models_base import Base
from core.pagination import Cursor, keyset, page_of

T = TypeVar("T", bound=Base)
Hook = Callable[[AsyncSession, Any, BaseModel], Awaitable[None]]


async def _no_hook(session: AsyncSession, obj: Any, data: BaseModel) -> None:
    return None


def _column_value(value: Any) -> Any:
    """Nested input (JSONB columns) as plain JSON; scalars (UUIDs, enums) as they are."""
    if isinstance(value, (BaseModel, list, dict)):
        return to_jsonable_python(value)
    return value


@dataclass
class Crud(Generic[T]):
    model: type[T]
    name: str
    # fields of the input that are not columns, handled by the hooks (e.g. group members)
    extra_fields: frozenset[str] = frozenset()
    before_write: Hook = _no_hook
    after_write: Hook = _no_hook
    order: Sequence[str] = field(default=("created_at", "id"))
    # list filters that are not a plain column comparison: name ▸ value ▸ WHERE clause
    filters: Mapping[str, Callable[[Any], ColumnElement[bool]]] = field(default_factory=dict)

    async def list(
        self, session: AsyncSession, *, limit: int, cursor: Cursor | None = None, **filters: Any
    ) -> tuple[list[T], Cursor | None]:
        m = self.model
        query = select(m)
        for name, value in filters.items():
            if value is None:
                continue
            if name in self.filters:
                query = query.where(self.filters[name](value))
            elif isinstance(value, list):
                query = query.where(getattr(m, name).in_(value))
            else:
                query = query.where(getattr(m, name) == value)
        query = keyset(query, m.created_at, m.id, cursor, limit=limit)  # type: ignore[attr-defined]
        return page_of(list(await session.scalars(query)), limit)

    async def get(self, session: AsyncSession, ident: str | uuid.UUID) -> T:
        try:
            key = ident if isinstance(ident, uuid.UUID) else uuid.UUID(ident)
        except ValueError:
            raise NotFound(f"{self.name} not found") from None
        obj = await session.get(self.model, key)
        if obj is None:
            raise NotFound(f"{self.name} not found")
        return obj

    async def create(self, session: AsyncSession, data: BaseModel) -> T:
        values = {
            name: _column_value(getattr(data, name))
            for name in type(data).model_fields if name not in self.extra_fields
        }
        obj = self.model(id=uuid.uuid4(), **values)  # type: ignore[call-arg]
        with session.no_autoflush:  # a conflict must surface in _flush, not in a hook's query
            await self.before_write(session, obj, data)
        session.add(obj)
        await self._flush(session)
        await self.after_write(session, obj, data)
        await session.refresh(obj)
        return obj

    async def update(self, session: AsyncSession, obj: T, data: BaseModel) -> T:
        columns = self.model.__table__.columns  # type: ignore[attr-defined]
        nulls = {
            name: "cannot be null" for name in data.model_fields_set - self.extra_fields
            if getattr(data, name) is None and not columns[name].nullable
        }
        if nulls:
            raise Invalid("required fields cannot be null", nulls)
        for name in data.model_fields_set - self.extra_fields:
            setattr(obj, name, _column_value(getattr(data, name)))
        with session.no_autoflush:
            await self.before_write(session, obj, data)
        await self._flush(session)
        await self.after_write(session, obj, data)
        await session.refresh(obj)
        return obj

    async def delete(self, session: AsyncSession, obj: T) -> None:
        await self._refuse_if_used(session, obj)
        await session.delete(obj)
        await self._flush(session)

    async def _refuse_if_used(self, session: AsyncSession, obj: T) -> None:
        """"the group still has 3 tickets; move them first" rather than a foreign key error."""
        table = self.model.__table__  # type: ignore[attr-defined]
        for other in table.metadata.sorted_tables:
            for fk in other.foreign_keys:
                if fk.column.table is not table or fk.ondelete in ("CASCADE", "SET NULL"):
                    continue
                count = await session.scalar(
                    select(func.count()).select_from(other).where(fk.parent == obj.id)  # type: ignore[attr-defined]
                )
                if count:
                    things = other.name.replace("_", " ")
                    raise Conflict(
                        f"the {self.name} still has {count} {things if count > 1 else things.removesuffix('s')}"
                        f" ({fk.parent.name}); move them first",
                        {"id": f"still used by {count} {things}"},
                    )

    async def _flush(self, session: AsyncSession) -> None:
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError as exc:
            raise plain_conflict(exc, self.name) from None
