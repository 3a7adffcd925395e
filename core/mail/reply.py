"""Reply extraction: the new text of a reply, without the quoted history and the signature.

The library mail-parser-reply (MIT, pure Python, multilingual "On … wrote:" / "Am … schrieb …:" /
"Le … a écrit :" / "From: … Sent: …" / "-----Original Message-----" headers) finds where the
quoted history starts. Around it, a thin layer of our own, each rule measured on the public
fixtures by bench/reply_accuracy.py:

- `>`-quoted lines are quotes even when no header introduces them (the library only splits
  on headers), and unquoted text between or after them is the sender's (inline replies);
- below the new text, a signature is cut: a "-- " line, a long ____/---- separator, a
  "Sent from my …" device line (the library's own per-language patterns); closings such as
  "Thanks,\\nAlex" stay: the library's closing rules cut everything after any line starting
  with "Thanks," and so lose text;
- the kept lines are taken from the input, not from the library, whose output has every line
  stripped (indented code or logs in a reply keep their indentation).

A message in which nothing quoted is found (a first message) is returned unchanged, signature
included. Never raises: on any error the input text is returned. The full original is kept by
the caller; this is only the comment body.
"""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser

from mailparser_reply import EmailReplyParser
from mailparser_reply.constants import MAIL_LANGUAGES

from core.mail.html import html_to_text

log = logging.getLogger(__name__)

# The library's header patterns are superlinear on long lines (a 40 kB line starting with
# "On " takes ~40 s), so it only ever sees the head of a message and truncated lines. New text
# is at the top; a longer message whose head has no quote is returned unchanged.
_MAX_CHARS = 64_000
_MAX_LINE = 300

_PARSER = EmailReplyParser(languages=list(MAIL_LANGUAGES))

_QUOTED = re.compile(r"^\s*>")
_SIG_DELIMITER = re.compile(r"^\s*(--|[-_]{10,})\s*$")  # "-- " (RFC 3676), Outlook/list separators
_DEVICE_SIG = re.compile(  # "Sent from my iPhone", "Gesendet von meinem …": the library's patterns
    r"^\s*(?:%s) ?(?:[\w.<>:/ ]+|(?:\w+ ){1,3})$"
    % "|".join(p["sent_from"] for p in MAIL_LANGUAGES.values() if p.get("sent_from")),
    re.IGNORECASE,
)


def extract_reply(text: str, html: str | None = None) -> str:
    """The new text of a reply, as plain text; `text` unchanged when nothing quoted is found.

    `html` is used when there is no text part, or when `text` is only its rendering by
    core.mail.html.html_to_text (that is how core.mail.parse fills `text` for an HTML-only mail):
    its quoted parts (<blockquote>, Gmail/Outlook/Yahoo quote containers) become `>` lines first.
    """
    try:
        from_html = bool(html) and (not text.strip() or text == html_to_text(html or ""))
        reply = _reply_lines(_quote_html(html or "") if from_html else text)
    except Exception:  # a library bug must not stop ingest: keep the whole text
        log.exception("reply extraction failed; keeping the whole text")
        reply = None
    if reply is not None:
        return reply
    return text if text.strip() or not html else html_to_text(html)  # html_to_text never raises


def _reply_lines(text: str) -> str | None:
    """The new text, or None when the library finds no quote."""
    lines = text.replace("\r\n", "\n").split("\n")
    head = "\n".join(line.strip()[:_MAX_LINE] for line in lines)[:_MAX_CHARS]
    parts = _PARSER.read(head).replies  # newest first; `full_body` is a part less its header
    if not parts:
        return None
    first = parts[0].full_body.split("\n")
    if len(parts) == 1 and not parts[0].headers and not any(_QUOTED.match(line) for line in first):
        return None
    new = _unquoted(first, inline=False)
    # inline replies: in a `>`-quoted part, unquoted lines after a quote are the sender's again;
    # a part that is not `>`-quoted (an Outlook-style history) ends the search
    for part in parts[1:]:
        body = part.full_body.split("\n")
        if not any(_QUOTED.match(line) for line in body):
            break
        new += _unquoted(body, inline=True)
    return _join(lines, _before_signature(lines, _in_input(lines, new)))


def _unquoted(body: list[str], inline: bool) -> list[str]:
    """The non-blank lines that are not `>`-quoted, less:
    - a run of them squeezed between two quoted lines: a quoted line that wrapped (a long link);
      an answer has a blank line around it;
    - a one-line paragraph ending with ":" just before a quote, below some text: the
      attribution ("… wrote:", "… đã viết:", "26.06.2014, 14:41, Alex <a@x.test>:") in a
      language or form the library lacks;
    - in a later part (`inline`), the lines before its first quote: what is left of its header.
    """
    quoted = [bool(_QUOTED.match(line)) for line in body]
    kept: list[str] = []
    seen_quote = not inline
    i = 0
    while i < len(body):
        if quoted[i] or not body[i].strip():
            seen_quote |= quoted[i]
            i += 1
            continue
        j = i
        while j < len(body) and body[j].strip() and not quoted[j]:
            j += 1
        squeezed = i > 0 and quoted[i - 1] and j < len(body) and quoted[j]
        nxt = next((n for n in range(j, len(body)) if body[n].strip()), None)
        attribution = (
            j - i == 1 and (bool(kept) or inline) and body[i].rstrip().endswith(":")
            and nxt is not None and quoted[nxt]
        )
        if seen_quote and not squeezed and not attribution:
            kept += body[i:j]
        i = j
    return kept


def _in_input(original: list[str], new: list[str]) -> list[int | str]:
    """Where the library's lines are in the input, in order (the library strips every line and
    we want the input's indentation back); a line it rewrote is kept as the library's."""
    found: list[int | str] = []
    i = 0
    for line in new:
        key = line.strip()
        j = next((k for k in range(i, len(original)) if original[k].strip()[:_MAX_LINE] == key), None)
        if j is None:
            found.append(line)
        else:
            found.append(j)
            i = j + 1
    return found


def _before_signature(original: list[str], kept: list[int | str]) -> list[int | str]:
    """Cut at the first signature line of the input after the first kept line. Looked for in the
    input, because the library's clean-up deletes long ____ separators."""
    indices = [k for k in kept if isinstance(k, int)]
    if not indices:
        return kept
    for n in range(indices[0] + 1, indices[-1] + 1):
        line = original[n]
        if not _QUOTED.match(line) and (_SIG_DELIMITER.match(line) or _DEVICE_SIG.match(line.strip())):
            return kept[: _position(kept, n)]
    return kept


def _position(kept: list[int | str], n: int) -> int:
    """How many items of `kept` come before input line n."""
    return next((p for p, k in enumerate(kept) if isinstance(k, int) and k >= n), len(kept))


def _join(original: list[str], kept: list[int | str]) -> str:
    """The kept lines, with one blank line where the input had a paragraph break between them."""
    out: list[str] = []
    prev: int | None = None
    for k in kept:
        if isinstance(k, str):
            out.append(k)
            continue
        if prev is not None and any(not original[n].strip() for n in range(prev + 1, k)):
            out.append("")
        out.append(original[k].rstrip())
        prev = k
    return "\n".join(out).strip("\n")


# --- HTML: quoted containers become `>` lines, so one text path decides -------------------------

_BLOCK = {
    "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "hr",
}
_SKIP = {"script", "style", "head", "title"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
# containers of the quoted history when the HTML still has its attributes (sanitized HTML has
# none: then <blockquote> and the text patterns are what is left)
_QUOTE_CLASSES = {"gmail_quote", "yahoo_quoted", "moz-cite-prefix"}
_QUOTE_IDS = {"divrplyfwdmsg", "appendonsend", "olk_src_body_section"}


class _QuoteMarker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.depth = 0  # quote nesting
        self.skip = 0
        self.pre = 0
        self.stack: list[tuple[str, bool]] = []  # open elements, and whether each is a quote

    def _is_quote(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        if tag == "blockquote":
            return True
        a = {k: (v or "").lower() for k, v in attrs}
        return bool(set(a.get("class", "").split()) & _QUOTE_CLASSES or a.get("id", "") in _QUOTE_IDS)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
            return
        if tag in _BLOCK:
            self.out.append("\n")
        if tag in _VOID:
            return
        quote = self._is_quote(tag, attrs)
        self.stack.append((tag, quote))
        self.depth += quote
        self.pre += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)  # <br/>, and <div/> opened and closed
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if tag in _BLOCK:
            self.out.append("\n")
        if tag in _VOID or all(open_tag != tag for open_tag, _ in self.stack):
            return  # a stray end tag closes nothing
        while self.stack:  # close up to the matching element: HTML in mail is rarely balanced
            open_tag, quote = self.stack.pop()
            self.depth -= quote
            self.pre -= open_tag == "pre"
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        data = data.replace("\x00", "")
        if not self.pre:  # a line break in HTML source is a space
            data = data.replace("\r", " ").replace("\n", " ")
        # each run of text carries its quote depth; lines are prefixed once assembled
        marker = f"\x00{self.depth}\x00" if self.depth else ""
        self.out.append("\n".join(marker + piece for piece in data.split("\n")))


def _quote_html(markup: str) -> str:
    """HTML as text, with the text inside quote containers prefixed by `>` (one per level)."""
    parser = _QuoteMarker()
    parser.feed(markup)
    parser.close()
    lines = []
    for raw in "".join(parser.out).split("\n"):
        depth = max((int(d) for d in re.findall(r"\x00(\d+)\x00", raw)), default=0)
        line = " ".join(re.sub(r"\x00\d+\x00", "", raw).split())
        lines.append(("> " * depth + line).rstrip() if line else "")
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
