"""Attachment content, stored once per distinct sha256, behind one interface.

`fs` (files under DATA_DIR, the embedded default), `postgres` (chunks in the database every
role already shares) or `s3` (an S3-compatible bucket): `HELPDESK_ATTACHMENT_STORE`. Metadata
(which comment holds which file, its name and size) is always in `ticket_attachments`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from core.config import Settings
    from core.db import Database

# a download is read and sent in pieces of this size: a 25 MB file never whole in memory
CHUNK_BYTES = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BlobMissing(Exception):
    """The store has no content under this digest (lost, or never migrated): a 404."""


class BlobUnavailable(Exception):
    """The store cannot be reached or read just now (disk, database, S3): a 503, retry later."""


def check_digest(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise BlobMissing("not a sha256 digest")
    return sha256


@dataclass
class Blob:
    """Content found in the store, to be read in chunks (once)."""

    size: int
    chunks: AsyncIterator[bytes]


class AttachmentStore(Protocol):
    kind: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, data: bytes) -> str:
        """Store `data` durably (before the transaction that references it commits); its sha256."""
        ...

    async def exists(self, sha256: str) -> bool: ...

    async def open(self, sha256: str) -> Blob:
        """The content, found and ready to stream; `BlobMissing` or `BlobUnavailable` otherwise."""
        ...

    async def remove(self, sha256: str) -> None:
        """Delete a content no attachment refers to any more (erasure); absent is fine."""
        ...


async def read_all(store: AttachmentStore, sha256: str) -> bytes:
    """The whole content in memory: for small blobs and tests, not for downloads."""
    blob = await store.open(sha256)
    return b"".join([chunk async for chunk in blob.chunks])


def open_store(settings: Settings, db: Database | None, kind: str | None = None) -> AttachmentStore:
    """The configured store (or `kind`), not yet started."""
    kind = kind or settings.attachment_store
    if kind == "fs":
        from core.attachments.fs import FileStore

        return FileStore(settings.attachments_dir)
    if kind == "postgres":
        from core.attachments.postgres import PostgresStore

        if db is None:
            raise ValueError("the postgres attachment store needs the database")
        return PostgresStore(db)
    if kind == "s3":
        from core.attachments.s3 import S3Store

        return S3Store.from_settings(settings)
    raise ValueError(f"unknown attachment store {kind!r}")
