"""Reply extraction: the new words of a reply, without the quoted history and the signature.

One function, extract_reply, behind which the rules sit (core/mail/quotes/: `text` for plain
text, `html` for HTML-only mail, `vocab` for the words of each language and client). The
libraries measured side by side in bench/reply_accuracy.py (mail-parser-reply, talon,
quotequail, email_reply_parser) each miss whole categories the gateway meets every day: Outlook
header blocks outside their few languages, attributions split over lines, inline answers,
HTML containers. So the rules are ours, named, each with the clients that produce its form.

What is kept (the policy of tests/fixtures/replies/README.md):
- the new text; quoted history, its header and a signature ("-- ", "Sent from my iPhone") go;
- `>` quotes the sender answers between (inline answers) stay as context; a trailing quote goes;
- a forward, and a message that is only a quote or history, are kept whole;
- lines are the input's own (indentation of code and logs kept).

Never raises: on any error the whole text is returned. The full original is kept by the
caller; this is only the comment body.
"""

from __future__ import annotations

import logging

from core.mail.html import html_to_text, sanitize_html
from core.mail.quotes.html import quote_html
from core.mail.quotes.text import kept_lines, new_text

log = logging.getLogger(__name__)


def extract_reply(text: str, html: str | None = None) -> str:
    """The new text of a reply, as plain text; `text` unchanged when nothing goes.

    `html` is used when there is no text part, or when `text` is only its rendering by
    core.mail.html.html_to_text (that is how core.mail.parse fills `text` for an HTML-only mail):
    its quote containers become `>` lines first, so both kinds of mail follow one set of rules.
    """
    try:
        if _from_html(text, html):
            lines, _ = quote_html(html or "")
            reply = new_text("\n".join(lines), from_html=True)
        else:
            reply = new_text(text.replace("\r\n", "\n"))
    except Exception:  # a bug in a rule must not stop ingest: keep the whole text
        log.exception("reply extraction failed; keeping the whole text")
        reply = None
    if reply is not None:
        return reply
    return text if text.strip() or not html else html_to_text(html)  # html_to_text never raises


def extract_reply_html(text: str, html: str | None) -> str | None:
    """The HTML of the new text, sanitized, cut where the first dropped line starts, when the
    new text is the top of the HTML (top-posting: Gmail, Outlook, Apple Mail, Yahoo) and the
    cut HTML says what extract_reply says (for mail with a text part too: both parts agree).
    None when the stored HTML should stay as it is (nothing dropped, inline answers, which
    cannot be cut at one place, or parts that disagree)."""
    if not html:
        return None
    try:
        lines, offsets = quote_html(html)
        kept = kept_lines("\n".join(lines), from_html=True)
        if kept is None:
            return None
        texts, keep = kept
        kept_set = set(keep)
        if any(texts[n] != lines[n] for n in keep):
            return None
        first_dropped = next((n for n in range(len(lines)) if lines[n] and n not in kept_set), len(lines))
        if not keep or max(keep) > first_dropped or first_dropped >= len(lines):
            return None
        cut = sanitize_html(html[: offsets[first_dropped]])
        if " ".join(html_to_text(cut).split()) != " ".join(extract_reply(text, html).split()):
            return None
        return cut
    except Exception:
        log.exception("reply HTML extraction failed; keeping the whole HTML")
        return None


def _from_html(text: str, html: str | None) -> bool:
    return bool(html) and (not text.strip() or text == html_to_text(html or "") or text == html_to_text(sanitize_html(html or "")))
