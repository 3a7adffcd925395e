"""The search language, parsed once into a small typed structure that every backend renders.

    invoice "credit note" -spam status:open status:pending priority>normal tags:vip
    assignee:none group:"Level 2" requester:jane@example.com organization:acme.com
    created>2026-01-01 updated<7d solved>24h

Words are ANDed, `"…"` is an exact phrase, `-` negates a word, a phrase or a qualifier, several
values of one qualifier OR together. Nothing typed here ever becomes SQL or a filter expression:
values are typed (enums, dates) or kept as plain strings for the backends to bind or quote.
A query that cannot mean anything raises `QueryError` naming the problem (the API's 422);
anything else is searched on a best-effort basis, with `warnings` saying what was ignored.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from core.enums import Channel, TicketPriority, TicketStatus, TicketType

MAX_QUERY_LENGTH = 1000
MAX_TERMS = 32  # words, phrases and qualifiers together
MAX_VALUES = 50  # values of one qualifier
MAX_WORD_LENGTH = 100

PRIORITY_ORDER = tuple(TicketPriority)  # low, normal, high, urgent
STATUS_ORDER = tuple(TicketStatus)  # new, open, pending, on_hold, solved, closed
ENUMS: dict[str, tuple[str, ...]] = {
    "status": tuple(s.value for s in TicketStatus),
    "priority": tuple(p.value for p in TicketPriority),
    "type": tuple(t.value for t in TicketType),
    "channel": tuple(c.value for c in Channel),
}
ORDERED = {"status": tuple(s.value for s in STATUS_ORDER), "priority": tuple(p.value for p in PRIORITY_ORDER)}
ALIASES = {"tag": "tags", "hold": "on_hold"}
PEOPLE = ("assignee", "group", "requester", "organization")
DATES = ("created", "updated", "solved")
QUALIFIERS = frozenset((*ENUMS, "tags", *PEOPLE, *DATES))
OPERATORS = (">=", "<=", ":", ">", "<")  # longest first

_QUALIFIER = re.compile(r"([A-Za-z_]+)(>=|<=|:|>|<)(.*)", re.S)
_RELATIVE = re.compile(r"(\d{1,6})\s*(minutes?|mins?|m|hours?|h|days?|d|weeks?|w|months?|years?|y)", re.I)
_RELATIVE_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
                   "w": timedelta(weeks=1), "mo": timedelta(days=30), "y": timedelta(days=365)}
_WORDISH = re.compile(r"\w", re.U)


class QueryError(ValueError):
    """The query cannot be searched: the message says why, in words for the person who typed it."""


@dataclass(frozen=True)
class Text:
    """A word or an exact phrase to find in the ticket's text."""

    text: str
    phrase: bool = False
    negated: bool = False
    prefix: bool = False  # the last word as typed so far: `marzip` finds `marzipan`


@dataclass(frozen=True)
class Match:
    """The field is one of `values` (or, negated, none of them). `None` stands for "not set"."""

    field: str
    values: tuple[str | None, ...]
    negated: bool = False


@dataclass(frozen=True)
class Range:
    """A date field compared with an instant: `op` is one of > >= < <=."""

    field: str
    op: str
    value: datetime
    negated: bool = False


@dataclass(frozen=True)
class Query:
    text: tuple[Text, ...] = ()
    matches: tuple[Match, ...] = ()
    ranges: tuple[Range, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def positive_text(self) -> tuple[Text, ...]:
        return tuple(t for t in self.text if not t.negated)

    @property
    def empty(self) -> bool:
        return not (self.text or self.matches or self.ranges)


@dataclass
class _Builder:
    now: datetime
    text: list[Text] = field(default_factory=list)
    values: dict[tuple[str, bool], list[str | None]] = field(default_factory=dict)
    ranges: list[Range] = field(default_factory=list)
    comparisons: list[Match] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    count: int = 0

    def counted(self) -> None:
        self.count += 1
        if self.count > MAX_TERMS:
            raise QueryError(f"too many words and qualifiers (at most {MAX_TERMS})")

    def add_values(self, name: str, negated: bool, values: list[str | None]) -> None:
        bucket = self.values.setdefault((name, negated), [])
        for value in values:
            if value not in bucket:
                bucket.append(value)
        if len(bucket) > MAX_VALUES:
            raise QueryError(f"too many values for {name}: (at most {MAX_VALUES})")

    def build(self) -> Query:
        text = list(self.text)
        # the last word typed is matched as a prefix (as a search box does while typing)
        if text and not text[-1].phrase and not text[-1].negated:
            text[-1] = Text(text[-1].text, prefix=True)
        matches = tuple(Match(name, tuple(values), negated) for (name, negated), values in self.values.items())
        matches += tuple(self.comparisons)
        return Query(tuple(text), matches, tuple(self.ranges), tuple(self.warnings))


def parse(raw: str, *, now: datetime | None = None) -> Query:
    """Raises `QueryError` only; never anything else, whatever `raw` holds."""
    if len(raw) > MAX_QUERY_LENGTH:
        raise QueryError(f"the query is too long ({len(raw)} characters, at most {MAX_QUERY_LENGTH})")
    builder = _Builder(now=now or datetime.now(UTC))
    for negated, token, quoted in _tokens(_clean(raw)):
        if quoted:
            _add_text(builder, token, phrase=True, negated=negated)
            continue
        qualifier = _QUALIFIER.fullmatch(token)
        if qualifier and qualifier.group(1).lower() in QUALIFIERS | set(ALIASES):
            name, op, value = qualifier.groups()
            _add_qualifier(builder, ALIASES.get(name.lower(), name.lower()), op, value, negated)
        else:
            if qualifier and qualifier.group(2) == ":" and qualifier.group(3):
                builder.warnings.append(f"'{qualifier.group(1)}:' is not a qualifier; searched as text")
            _add_text(builder, token, phrase=False, negated=negated)
    return builder.build()


def _clean(raw: str) -> str:
    """Control characters (NUL included) become spaces; typographic quotes become plain ones."""
    raw = raw.translate({0x201C: '"', 0x201D: '"', 0x201E: '"', 0x00AB: '"', 0x00BB: '"'})
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Cs") else ch for ch in raw)


def _tokens(raw: str):  # type: ignore[no-untyped-def]
    """(negated, text, quoted) triples. An unclosed quote runs to the end of the query;
    `name:"a value"` keeps its quoted value as one token."""
    i, n = 0, len(raw)
    while i < n:
        if raw[i].isspace():
            i += 1
            continue
        negated = raw[i] == "-" and i + 1 < n and not raw[i + 1].isspace()
        if negated:
            i += 1
        if raw[i] == '"':
            end = raw.find('"', i + 1)
            end = n if end < 0 else end
            yield negated, raw[i + 1:end], True
            i = end + 1
            continue
        start = i
        while i < n and not raw[i].isspace():
            if raw[i] == '"' and i > start and raw[i - 1] in ":<>=":  # name:"quoted value"
                end = raw.find('"', i + 1)
                value_end = n if end < 0 else end
                token = raw[start:i] + raw[i + 1:value_end]
                i = value_end + 1
                break
            i += 1
        else:
            token = raw[start:i]
        yield negated, token, False


def _add_text(builder: _Builder, value: str, *, phrase: bool, negated: bool) -> None:
    value = " ".join(value.split())[: MAX_WORD_LENGTH * 10 if phrase else MAX_WORD_LENGTH]
    if not _WORDISH.search(value):
        return  # punctuation alone finds nothing: `(((` is ignored, not an error
    builder.counted()
    if phrase and " " not in value:
        phrase = False
    builder.text.append(Text(value, phrase=phrase, negated=negated))


def _add_qualifier(builder: _Builder, name: str, op: str, value: str, negated: bool) -> None:
    value = value.strip()
    if not value:
        raise QueryError(f"{name}{op} needs a value")
    builder.counted()
    if name in DATES:
        _add_date(builder, name, op, value, negated)
    elif op != ":" and name not in ORDERED:
        raise QueryError(f"{name} can only be compared with ':' (not '{op}')")
    elif name in ENUMS and op == ":":
        builder.add_values(name, negated, _enum_values(name, op, value))
    elif name in ENUMS:  # a comparison narrows: `priority>=high priority<urgent` is high alone
        builder.comparisons.append(Match(name, tuple(_enum_values(name, op, value)), negated))
    else:
        values = [v.strip() for v in value.split(",") if v.strip()]
        if name == "tags":
            values = [v.lower() for v in values]
        elif name in ("assignee", "group"):
            values = [None if v.lower() == "none" else v for v in values]
        builder.add_values(name, negated, values)  # type: ignore[arg-type]


def _enum_values(name: str, op: str, value: str) -> list[str | None]:
    allowed = ENUMS[name]
    values = []
    for item in value.lower().replace('"', "").replace("'", "").split(","):
        item = ALIASES.get(item.strip(), item.strip())
        if not item:
            continue
        if name == "type" and item == "none":
            values.append(None)
            continue
        if item not in allowed:
            raise QueryError(f"unknown {name} '{item}' (one of: {', '.join(allowed)})")
        values.append(item)
    if op == ":":
        return values  # type: ignore[return-value]
    if len(values) != 1 or values[0] is None:
        raise QueryError(f"{name}{op} compares with one value")
    order = ORDERED[name]
    pivot = order.index(values[0])
    keep = {">": lambda i: i > pivot, ">=": lambda i: i >= pivot,
            "<": lambda i: i < pivot, "<=": lambda i: i <= pivot}[op]
    return [v for i, v in enumerate(order) if keep(i)]


def _add_date(builder: _Builder, name: str, op: str, value: str, negated: bool) -> None:
    """A day (`2026-01-31`) is the whole day; an instant (`…T10:00`, `7d`, `24h`) is itself.
    `created>7d`: created in the last seven days; `created<7d`: longer ago."""
    start, end = _date_value(value, builder.now)
    if op == ":":
        if start == end:  # `created:7d`: since then
            builder.ranges.append(Range(name, ">=", start, negated))
            return
        if negated:  # outside the day: two ranges cannot express "not between" together
            raise QueryError(f"-{name}: with a day is not supported; use {name}< or {name}>")
        builder.ranges += [Range(name, ">=", start), Range(name, "<", end)]
        return
    bound = {">": end, ">=": start, "<": start, "<=": end}[op]
    strict = {">": start == end, ">=": False, "<": False, "<=": start == end}[op]
    effective = {">": ">" if strict else ">=", ">=": ">=", "<": "<", "<=": "<=" if strict else "<"}[op]
    builder.ranges.append(Range(name, effective, bound, negated))


def _date_value(value: str, now: datetime) -> tuple[datetime, datetime]:
    relative = _RELATIVE.fullmatch(value)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2).lower()
        key = "mo" if unit.startswith("mo") else unit[0]
        try:
            instant = now - amount * _RELATIVE_UNITS[key]
        except OverflowError:
            raise QueryError(f"'{value}' is too far back") from None
        return instant, instant
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime.combine(day, time(), UTC)
            return start, start + timedelta(days=1)
        instant = datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        raise QueryError(
            f"'{value}' is not a date: use 2026-01-31, 2026-01-31T09:30, 7d, 24h, 30m, 2w"
        ) from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant, instant


def normalize(word: str) -> str:
    """Lower case without accents, as the documents are indexed: for typo and prefix lookups."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))
