"""Text from mail made safe to store: no lone surrogates, no NULs."""

from __future__ import annotations


def clean(value: str) -> str:
    """Undecodable bytes (kept by the parser as surrogate escapes) become U+FFFD; NULs go.

    PostgreSQL text can hold neither, and one such header must not fail a whole batch.
    """
    if value.isascii() and "\x00" not in value:
        return value
    try:
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # surrogates that were not escapes of bytes
        value = value.encode("utf-8", "replace").decode("utf-8", "replace")
    return value.replace("\x00", "")
