"""Interim reply extraction (to be replaced by the library-backed version being measured)."""

from __future__ import annotations

from core.mail.html import html_to_text


def extract_reply(text: str, html: str | None = None) -> str:
    source = text or (html_to_text(html) if html else "")
    kept: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith(">") or stripped == "-----Original Message-----":
            break
        if stripped.startswith("On ") and stripped.endswith("wrote:"):
            break
        kept.append(line)
    return "\n".join(kept).strip() or source.strip()
