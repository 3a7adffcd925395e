"""One typo: a letter missing, extra, wrong, or two neighbours swapped (Damerau distance 1)."""

from __future__ import annotations

import string

LATIN = string.ascii_lowercase
CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяієїґ"
GREEK = "αβγδεζηθικλμνξοπρστυφχψω"


def within_one_edit(a: str, b: str) -> bool:
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    if la > lb:
        a, b = b, a  # a is the shorter one
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1:]


def alphabet(word: str) -> str:
    """The letters a typo may bring: Latin, plus the word's own script and letters."""
    letters = set(LATIN) | set(word)
    if any(ch in CYRILLIC for ch in word):
        letters |= set(CYRILLIC)
    if any(ch in GREEK for ch in word):
        letters |= set(GREEK)
    return "".join(sorted(letters))


def one_typo_away(word: str) -> set[str]:
    """Every word at Damerau distance exactly 1 (deleted, swapped, replaced or inserted letter)."""
    letters = alphabet(word)
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = {a + b[1:] for a, b in splits if b}
    out |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    out |= {a + c + b[1:] for a, b in splits if b for c in letters}
    out |= {a + c + b for a, b in splits for c in letters}
    out.discard(word)
    return out
