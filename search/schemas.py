"""What `GET /api/v1/search` answers: the objects' own JSON plus how they matched."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from core.customers.schemas import CustomerOut
from core.tickets.schemas import TicketOut


class TicketResult(TicketOut):
    result_type: Literal["ticket"] = "ticket"
    score: float = Field(description="relevance: higher first; a subject match scores above 1")
    highlight: str = Field(
        description="the best matching text (subject, description or a comment), HTML-escaped,"
        " with the matches in <mark>…</mark>"
    )


class CustomerResult(CustomerOut):
    result_type: Literal["customer"] = "customer"
    score: float
    highlight: str = Field(description="name and address, HTML-escaped, matches in <mark>…</mark>")


class SearchResults(BaseModel):
    results: list[TicketResult | CustomerResult]
    count: int = Field(description="how many objects match (all pages)")
    count_approximate: bool = Field(
        default=False, description="true when `count` is an estimate (very broad queries)"
    )
    facets: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="tickets: counts of all matches by status, priority, channel and group (name; 'none')",
    )
    next_cursor: str | None = None
    warnings: list[str] = Field(default_factory=list, description="parts of the query that were ignored")
