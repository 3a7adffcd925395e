"""HTML bodies: sanitized for storage and display, and rendered to plain text."""

from __future__ import annotations

import html as html_lib
from html.parser import HTMLParser

import nh3

# no remote content is ever fetched for display: images only from stored inline parts
_URL_SCHEMES = {"http", "https", "mailto", "cid"}
_BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table"}


def _no_remote_images(tag: str, attribute: str, value: str) -> str | None:
    # a remote image is a read receipt for its sender: only stored inline parts (cid:) are shown
    if tag == "img" and attribute in ("src", "srcset"):
        return value if value.strip().lower().startswith("cid:") else None
    return value


def sanitize_html(raw: str) -> str:
    return nh3.clean(
        raw, url_schemes=_URL_SCHEMES, link_rel="noopener noreferrer nofollow",
        attribute_filter=_no_remote_images,
    )


def resolve_cids(markup: str, urls: dict[str, str]) -> str:
    """`src="cid:x"` -> the stored attachment's URL (sanitized markup: attributes are quoted)."""
    for content_id, url in urls.items():
        markup = markup.replace(f'"cid:{content_id}"', f'"{url}"')
    return markup


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head", "title"):
            self._skip += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:
        return html_lib.unescape(markup)
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


# where mail clients put the quoted history of a reply: a container (Gmail, Yahoo, Thunderbird's
# attribution line, Apple Mail's and Thunderbird's cited blockquote), or a marker after which
# everything is the quoted original (Outlook's reply header block)
_QUOTE_CONTAINER_CLASSES = {"gmail_quote", "gmail_extra", "yahoo_quoted", "moz-cite-prefix"}
_QUOTE_CUT_IDS = {"divrplyfwdmsg", "appendonsend", "olk_src_body_section", "mail-editor-reference-message-container"}
_VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _QuoteStripper(HTMLParser):
    """Re-emits the markup without the quoted history (the output is sanitized afterwards)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.stack: list[tuple[str, bool]] = []  # open elements; whether each is a dropped quote
        self.dropping = 0
        self.cut = False  # past an Outlook-style marker: the rest is the original message

    @staticmethod
    def _quote(tag: str, attrs: list[tuple[str, str | None]]) -> tuple[bool, bool]:
        a = {k.lower(): (v or "").lower() for k, v in attrs}
        container = bool(set(a.get("class", "").split()) & _QUOTE_CONTAINER_CLASSES) or (
            tag == "blockquote" and a.get("type") == "cite"
        )
        return container, a.get("id", "") in _QUOTE_CUT_IDS

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        container, cut = self._quote(tag, attrs)
        self.cut = self.cut or cut
        if tag in _VOID_TAGS:
            if not (self.dropping or self.cut):
                self.out.append(self.get_starttag_text() or "")
            return
        self.stack.append((tag, container))
        self.dropping += container
        if not (self.dropping or self.cut):
            self.out.append(self.get_starttag_text() or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID_TAGS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID_TAGS or all(open_tag != tag for open_tag, _ in self.stack):
            return
        while self.stack:  # close up to the matching element: HTML in mail is rarely balanced
            open_tag, container = self.stack.pop()
            if not (self.dropping or self.cut):
                self.out.append(f"</{open_tag}>")
            self.dropping -= container
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if not (self.dropping or self.cut):
            self.out.append(html_lib.escape(data, quote=False))


def strip_quoted_html(markup: str) -> str:
    """A reply's HTML without its quoted history, as `core.mail.reply` does for its text.
    Works on the markup as sent (the class and id markers are gone once sanitized); the
    result still has to be sanitized. Never raises: on a parser error the input is returned."""
    parser = _QuoteStripper()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:
        return markup
    while parser.stack:
        parser.out.append(f"</{parser.stack.pop()[0]}>")
    return "".join(parser.out)
