"""A survey answered by email: the first word says good or bad, the rest is the comment."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# English, German, French, Spanish, Dutch, Portuguese, and the thumbs
GOOD = frozenset({
    "good", "great", "excellent", "gut", "super", "bon", "bien", "bueno", "buena", "bien", "goed",
    "bom", "boa", "otimo", "ótimo", "👍",
})
BAD = frozenset({
    "bad", "poor", "terrible", "schlecht", "mauvais", "mauvaise", "mal", "malo", "mala", "slecht",
    "ruim", "mau", "má", "👎",
})
THUMBS = {"👍": "good", "👎": "bad"}
_FIRST = re.compile(r"^\s*([^\s.,;:!?()\-]+)[\s.,;:!?()\-]*", re.UNICODE)
MAX_COMMENT = 10_000


@dataclass(frozen=True)
class Answer:
    score: str  # good | bad
    comment: str


def survey_answer(text: str) -> Answer | None:
    """The rating in a reply's first word, or None if it does not start with one."""
    text = unicodedata.normalize("NFC", text or "").lstrip("\ufeff")
    for thumb, score in THUMBS.items():  # emoji may be glued to what follows
        if text.lstrip().startswith(thumb):
            rest = text.lstrip()[len(thumb):].lstrip("\ufe0f\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff")
            return Answer(score, _comment(rest))
    match = _FIRST.match(text)
    if match is None:
        return None
    word = match.group(1).lower()
    if word in GOOD:
        return Answer("good", _comment(text[match.end():]))
    if word in BAD:
        return Answer("bad", _comment(text[match.end():]))
    return None


def _comment(rest: str) -> str:
    # quoted lines of the survey itself are no part of the customer's comment (the reply
    # extraction keeps a lone quoted line, which is usually context, as text)
    kept = "\n".join(line for line in rest.splitlines() if not line.lstrip().startswith(">"))
    return kept.strip(" \t\r\n.,;:!-")[:MAX_COMMENT]
