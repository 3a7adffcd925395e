"""HTML rules: the quote containers of HTML mail become `>` lines, so one set of text rules
decides for HTML-only replies too (and `body` agrees with the trimmed `html_body`).

- quote_container: `<blockquote>` (Apple Mail `type="cite"`, Thunderbird, Gmail: its `gmail_quote`
  div also holds inline answers, so only the blockquote counts),
  Yahoo's `yahoo_quoted`, Thunderbird's `moz-cite-prefix` attribution,
  ProtonMail's `protonmail_quote`, Zoho's `zmail_extra`: their text is prefixed with `>`.
- history_container: where Outlook starts the history without quoting it: `divRplyFwdMsg`
  (Outlook on the web, new Outlook), `OLK_SRC_BODY_SECTION` (Outlook for Mac),
  `mail-editor-reference-message-container`, and the top-bordered header block of Outlook for
  Windows (`border-top:solid #E1E1E1 1.0pt; padding…`): a HISTORY_MARK line is written there.

Each output line remembers where its first text is in the markup, so the HTML can be cut
where the text is.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from core.mail.quotes.text import HISTORY_MARK

_BLOCK = {
    "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "hr",
    "ul", "ol", "dl", "dt", "dd", "section", "article", "header", "footer",
}
_SKIP = {"script", "style", "head", "title"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
_QUOTE_CLASSES = ("yahoo_quoted", "moz-cite-prefix", "protonmail_quote", "zmail_extra")
_HISTORY_IDS = ("divrplyfwdmsg", "olk_src_body_section", "mail-editor-reference-message-container")
_OUTLOOK_BORDER = re.compile(r"border-top\s*:\s*(?:solid|[\d.]+\w*\s+solid)[^;]*;.*padding", re.IGNORECASE | re.DOTALL)


class _QuoteMarker(HTMLParser):
    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[tuple[str, int]] = []  # (text, offset in markup)
        self.depth = 0  # quote nesting
        self.skip = 0
        self.pre = 0
        self.history = False
        self.stack: list[tuple[str, bool]] = []  # open elements, and whether each is a quote
        self.line_starts = [0]
        for match in re.finditer("\n", markup):
            self.line_starts.append(match.end())

    def source_at(self) -> int:
        line, col = self.getpos()
        return self.line_starts[line - 1] + col

    def _kind(self, tag: str, attrs: list[tuple[str, str | None]]) -> str:
        if tag == "blockquote":
            return "quote"
        a = {k.lower(): (v or "") for k, v in attrs}
        classes = a.get("class", "").lower()
        ident = a.get("id", "").lower()
        if any(ident.endswith(h) for h in _HISTORY_IDS) or "outlookmessageheader" in classes:
            return "history"
        if tag == "div" and _OUTLOOK_BORDER.search(a.get("style", "")):
            return "history"
        if any(c in classes for c in _QUOTE_CLASSES):
            return "quote"
        return ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
            return
        at = self.source_at()
        if tag in _BLOCK:
            self.out.append(("\n", at))
        if tag in _VOID:
            return
        kind = self._kind(tag, attrs)
        if kind == "history" and not self.history and not self.depth:
            self.history = True
            self.out.append((f"\n{HISTORY_MARK}\n", at))
        self.stack.append((tag, kind == "quote"))
        self.depth += kind == "quote"
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
            self.out.append(("\n", self.source_at()))
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
        data = data.replace("\x00", "").replace(HISTORY_MARK, "")
        if not self.pre:  # a line break in HTML source is a space
            data = data.replace("\r", " ").replace("\n", " ")
        # each run of text carries its quote depth; lines are prefixed once assembled
        marker = f"\x00{self.depth}\x00" if self.depth else ""
        self.out.append(("\n".join(marker + piece for piece in data.split("\n")), self.source_at()))


def quote_html(markup: str) -> tuple[list[str], list[int]]:
    """HTML as text lines, the text inside quote containers prefixed by `>` (one per level), and
    for each line the offset in `markup` where its first text is (where it could be cut)."""
    parser = _QuoteMarker(markup)
    parser.feed(markup)
    parser.close()
    lines: list[str] = []
    offsets: list[int] = []
    current: list[str] = []
    first: int | None = None
    for chunk, at in parser.out:
        pieces = chunk.split("\n")
        for p, piece in enumerate(pieces):
            if p:
                lines.append(_finish("".join(current)))
                offsets.append(first if first is not None else at)
                current, first = [], None
            if piece.strip("\x00 0123456789") and first is None:
                first = at
            current.append(piece)
    lines.append(_finish("".join(current)))
    offsets.append(first if first is not None else len(markup))
    return _squeeze(lines, offsets)


def _finish(raw: str) -> str:
    depth = max((int(d) for d in re.findall(r"\x00(\d+)\x00", raw)), default=0)
    line = " ".join(re.sub(r"\x00\d+\x00", "", raw).split())
    return ("> " * depth + line).rstrip() if line else ""


def _squeeze(lines: list[str], offsets: list[int]) -> tuple[list[str], list[int]]:
    """At most one blank line in a row, none at either end."""
    out: list[str] = []
    at: list[int] = []
    for line, offset in zip(lines, offsets):
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
        at.append(offset)
    while out and not out[-1]:
        out.pop()
        at.pop()
    return out, at
