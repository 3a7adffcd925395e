"""Shared pydantic types for input validation."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _email(value: str) -> str:
    value = value.strip()
    local, at, domain = value.rpartition("@")
    if (
        not at or not local or not domain or "." not in domain.strip(".")
        or len(value) > 320 or any(ch.isspace() or ch in "<>,;:\"()[]\\" for ch in value)
        or not value.isprintable()
    ):
        raise ValueError("not a valid email address")
    return f"{local}@{domain.lower()}".lower()


EmailAddress = Annotated[str, AfterValidator(_email)]
