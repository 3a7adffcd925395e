"""Attachments in the database every role already shares: content-addressed, deduplicated,
written and read in chunks (a 25 MB file is never one value, nor whole in memory on a read)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from core.attachments import CHUNK_BYTES, Blob, BlobMissing, BlobUnavailable, check_digest
from core.attachments.models import AttachmentBlob, AttachmentChunk
from core.db import ConnectionLost, Database

# chunks first, the blob row last and in the same transaction: a blob row means complete
# content. Two writers of one content meet on the primary keys; the second writes nothing.
INSERT_CHUNK = (
    "INSERT INTO attachment_chunks (sha256, seq, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
)
INSERT_BLOB = (
    "INSERT INTO attachment_blobs (sha256, size, chunks) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
)
DB_ERRORS = (SQLAlchemyError, ConnectionLost, OSError)


class PostgresStore:
    kind = "postgres"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if await self.exists(digest):
            return digest
        chunks = [
            (digest, seq, data[offset:offset + CHUNK_BYTES])
            for seq, offset in enumerate(range(0, max(len(data), 1), CHUNK_BYTES))
        ]
        try:
            async with self.db.driver_transaction() as driver:
                for chunk in chunks:  # one 1 MB parameter at a time
                    await driver.execute(INSERT_CHUNK, *chunk)
                await driver.execute(INSERT_BLOB, digest, len(data), len(chunks))
        except DB_ERRORS as exc:
            raise BlobUnavailable(f"attachment could not be stored in the database: {exc}") from exc
        return digest

    async def remove(self, sha256: str) -> None:
        digest = check_digest(sha256)
        try:
            async with self.db.driver_transaction() as driver:
                await driver.execute("DELETE FROM attachment_chunks WHERE sha256 = $1", digest)
                await driver.execute("DELETE FROM attachment_blobs WHERE sha256 = $1", digest)
        except DB_ERRORS as exc:
            raise BlobUnavailable(f"attachment could not be removed from the database: {exc}") from exc

    async def exists(self, sha256: str) -> bool:
        return await self._meta(check_digest(sha256)) is not None

    async def _meta(self, sha256: str) -> tuple[int, int] | None:
        try:
            async with self.db.read_engine.connect() as connection:
                row = (await connection.execute(
                    select(AttachmentBlob.size, AttachmentBlob.chunks)
                    .where(AttachmentBlob.sha256 == sha256)
                )).first()
        except DB_ERRORS as exc:
            raise BlobUnavailable(f"attachment database unavailable: {exc}".splitlines()[0]) from exc
        return (row.size, row.chunks) if row is not None else None

    async def open(self, sha256: str) -> Blob:
        meta = await self._meta(check_digest(sha256))
        if meta is None:
            raise BlobMissing(f"attachment content {sha256[:12]} is not in the database")
        return Blob(size=meta[0], chunks=self._chunks(sha256, meta[1]))

    async def _chunks(self, sha256: str, count: int) -> AsyncIterator[bytes]:
        # a connection per chunk: a slow client never holds one of the pool's connections
        for seq in range(count):
            try:
                async with self.db.read_engine.connect() as connection:
                    data = await connection.scalar(
                        select(AttachmentChunk.data)
                        .where(AttachmentChunk.sha256 == sha256, AttachmentChunk.seq == seq)
                    )
            except DB_ERRORS as exc:
                raise BlobUnavailable(f"attachment database unavailable: {exc}") from exc
            if data is None:
                raise BlobUnavailable(f"attachment content {sha256[:12]} lacks chunk {seq}")
            yield data
