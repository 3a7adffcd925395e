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
