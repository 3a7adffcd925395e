"""Domain errors: what went wrong in the caller's terms; the edges turn them into HTTP/SMTP answers."""

from __future__ import annotations

import re


class DomainError(Exception):
    code = "invalid"

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class NotFound(DomainError):
    code = "not_found"


class Invalid(DomainError):
    code = "validation_failed"


class Conflict(DomainError):
    code = "conflict"


class Forbidden(DomainError):
    code = "forbidden"


class FieldValueError(ValueError):
    """Raised by a pydantic validator that checks several fields: names the one to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


_DUPLICATE = re.compile(r"Key \(([^)]+)\)=\((.*)\) already exists", re.S)
_MISSING = re.compile(r"Key \(([^)]+)\)=\((.*)\) is not present in table \"(\w+)\"", re.S)
_REFERENCED = re.compile(r"is still referenced from table \"(\w+)\"")


def plain_conflict(database_error: BaseException, what: str | None = None) -> DomainError:
    """A constraint the database enforced, told in words that name the field (never in SQL).

    `database_error` is SQLAlchemy's IntegrityError or the driver's own; `what` names the
    object in the message (by default, from the table the driver names)."""
    driver = getattr(database_error, "orig", None) or database_error
    driver = getattr(driver, "__cause__", None) or driver
    detail = getattr(driver, "detail", None) or str(driver)
    if what is None:
        what = (getattr(driver, "table_name", None) or "record").replace("_", " ").removesuffix("s")
    if match := _DUPLICATE.search(detail):
        field = match.group(1).split(",")[0].strip().removeprefix("lower(").rstrip(")")
        return Conflict(f"another {what} already has this {field}; it must be unique",
                        {field: "already used"})
    if match := _MISSING.search(detail):
        field, table = match.group(1), match.group(3).replace("_", " ").rstrip("s")
        return Invalid(f"{field} names no existing {table}", {field: f"no such {table}"})
    if match := _REFERENCED.search(detail):
        table = match.group(1).replace("_", " ")
        return Conflict(f"the {what} is still used by {table}; move or remove them first")
    return Conflict(f"the {what} conflicts with existing data")
