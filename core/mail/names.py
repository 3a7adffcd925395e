"""Safe display names for stored attachments."""

from __future__ import annotations

import mimetypes
import unicodedata

MAX_FILENAME = 200


def sanitize_filename(name: str | None, content_type: str = "application/octet-stream") -> str:
    """No path, no control or bidi characters, bounded length; a sensible default."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        ch for ch in unicodedata.normalize("NFC", name)
        if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")
    )
    name = name.strip().strip(".").strip()
    if not name:
        extension = mimetypes.guess_extension(content_type) or ".bin"
        name = "attachment" + extension
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: MAX_FILENAME - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME]
    return name
