"""Bounds on what one message may make the parser do, checked on the raw bytes first.

The stdlib parser's cost grows faster than the input in several places (encoded words in one
header, deep MIME nesting where each line is compared with every open boundary, one object per
part), so one 400 KB message could take minutes and gigabytes. These checks are one linear pass
over the bytes with no message objects; a message over any bound is the sender's fault and is
quarantined at once, with a reason naming the bound. Pure, no database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.mail.parse import ParsedMail, Unprocessable, parse


@dataclass(frozen=True)
class ParseLimits:
    header_bytes: int = 256 * 1024
    encoded_words: int = 1000
    mime_depth: int = 50
    mime_parts: int = 1000
    attachments: int = 100
    references: int = 100


_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))', re.I)
_CONTENT_TYPE = re.compile(rb"^content-type:[ \t]*([!-~]+)", re.I | re.M)
_ENCODED_WORD = re.compile(rb"=\?[^?\s]{1,80}\?[bBqQ]\?")
_REFERENCES = re.compile(rb"^references:((?:[^\n]*\n[ \t])*[^\n]*)", re.I | re.M)


def _header_end(raw: bytes) -> int:
    """Where the body starts: after the blank line that ends the header block, or len(raw)."""
    for blank in (b"\n", b"\r\n"):
        if raw.startswith(blank):
            return len(blank)
    ends = [(i, n) for i, n in ((raw.find(b"\n\n"), 2), (raw.find(b"\n\r\n"), 3)) if i >= 0]
    return min(ends)[0] + min(ends)[1] if ends else len(raw)


def check_limits(raw: bytes, limits: ParseLimits) -> None:
    """Raises `Unprocessable` naming the first bound the message exceeds."""
    end = _header_end(raw)
    head = raw[:end]
    _check_header_block(head, limits, what="header block")
    for found in _REFERENCES.finditer(head):
        count = found.group(1).count(b"<")
        if count > limits.references:
            raise Unprocessable(f"limit references: {count} References entries (over {limits.references})")
    _Structure(raw, limits).scan(head, end)


def _check_header_block(head: bytes, limits: ParseLimits, *, what: str, words_before: int = 0) -> int:
    if len(head) > limits.header_bytes:
        raise Unprocessable(f"limit header_bytes: {what} over {limits.header_bytes} bytes")
    words = words_before + len(_ENCODED_WORD.findall(head))
    if words > limits.encoded_words:
        raise Unprocessable(f"limit encoded_words: over {limits.encoded_words} encoded words in headers")
    return words


_MESSAGE = object()  # a message/rfc822 level on the stack: no boundary of its own


class _Structure:
    """MIME depth and part count from header blocks and boundary lines, as the parser sees them."""

    def __init__(self, raw: bytes, limits: ParseLimits) -> None:
        self.raw = raw
        self.limits = limits
        self.stack: list[object] = []  # open multipart boundaries and message levels, outermost first
        self.parts = 0
        self.words = 0

    def _opened(self, head: bytes) -> bool:
        """Pushes what a header block opens; True when a nested message's headers follow."""
        ctype = _CONTENT_TYPE.search(head)
        kind = ctype.group(1).lower() if ctype else b""
        if kind.startswith(b"multipart/"):
            found = _BOUNDARY.search(head, ctype.start()) if ctype else None
            if found is None:
                return False
            self._push(found.group(1) or found.group(2))
            return False
        if kind == b"message/rfc822" or kind == b"message/global":
            self._push(_MESSAGE)
            return True
        return False

    def _push(self, level: object) -> None:
        self.stack.append(level)
        if len(self.stack) > self.limits.mime_depth:
            raise Unprocessable(f"limit mime_depth: MIME nested over {self.limits.mime_depth} levels")

    def scan(self, head: bytes, body_start: int) -> None:
        self.words = _check_header_block(head, self.limits, what="header block")
        in_headers = self._opened(head)
        header_start = position = body_start
        for line in self.raw[body_start:].split(b"\n"):
            start, position = position, position + len(line) + 1
            if in_headers:
                if line.strip(b"\r") and start - header_start <= self.limits.header_bytes:
                    continue
                block = self.raw[header_start:start]
                self.words = _check_header_block(block, self.limits, what="a part's header block", words_before=self.words)
                in_headers = self._opened(block)
                header_start = position
                continue
            if line.startswith(b"--") and self.stack:
                if self._boundary_line(line.rstrip(b" \t\r")[2:]):
                    in_headers, header_start = True, position

    def _boundary_line(self, marker: bytes) -> bool:
        """Closes or separates parts; True when a part (and its header block) starts."""
        for level in range(len(self.stack) - 1, -1, -1):
            boundary = self.stack[level]
            if boundary is _MESSAGE:
                continue
            assert isinstance(boundary, bytes)
            if marker == boundary + b"--":
                del self.stack[level:]
                return False
            if marker == boundary:
                del self.stack[level + 1:]
                self.parts += 1
                if self.parts > self.limits.mime_parts:
                    raise Unprocessable(f"limit mime_parts: over {self.limits.mime_parts} MIME parts")
                return True
        return False


def bounded_parse(raw: bytes, limits: ParseLimits) -> ParsedMail:
    """`parse`, after `check_limits`; too many attachments is the sender's fault too."""
    check_limits(raw, limits)
    try:
        mail = parse(raw)
    except RecursionError:  # nesting the scan did not see as such (it follows the parser closely)
        raise Unprocessable("limit mime_depth: nested too deeply for the parser") from None
    if len(mail.attachments) > limits.attachments:
        raise Unprocessable(f"limit attachments: {len(mail.attachments)} attachments (over {limits.attachments})")
    return mail
