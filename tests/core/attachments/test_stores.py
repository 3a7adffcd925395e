"""The attachment stores behind one interface: round trip in chunks, deduplication, absence."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from core.attachments import CHUNK_BYTES, AttachmentStore, BlobMissing, read_all
from core.attachments.fs import FileStore
from core.attachments.models import AttachmentBlob, AttachmentChunk
from core.attachments.postgres import PostgresStore
from core.attachments.s3 import S3Store
from core.db import Database

S3_URL = os.environ.get("HELPDESK_TEST_S3_URL")


def s3_store() -> S3Store:
    """HELPDESK_TEST_S3_URL=http://KEY:SECRET@host:9000/bucket (the bucket must exist)."""
    assert S3_URL is not None
    url = urlsplit(S3_URL)
    return S3Store(
        bucket=url.path.strip("/"), prefix=f"test-{uuid.uuid4().hex[:8]}/",
        endpoint_url=f"{url.scheme}://{url.hostname}:{url.port}",
        access_key_id=url.username, secret_access_key=url.password,
    )


@pytest.fixture(params=["fs", "postgres", "s3"])
async def store(request: pytest.FixtureRequest, db: Database, tmp_path: Path) -> AsyncIterator[AttachmentStore]:
    if request.param == "s3" and S3_URL is None:
        pytest.skip("HELPDESK_TEST_S3_URL is not set: no S3-compatible server to test against")
    made: AttachmentStore = {
        "fs": lambda: FileStore(tmp_path / "attachments"),
        "postgres": lambda: PostgresStore(db),
        "s3": s3_store,
    }[request.param]()
    await made.start()
    yield made
    await made.close()


async def test_content_round_trips_in_chunks(store: AttachmentStore) -> None:
    data = os.urandom(2 * CHUNK_BYTES + 12345)  # three chunks, the last one short
    digest = await store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert await store.exists(digest)
    blob = await store.open(digest)
    assert blob.size == len(data)
    chunks = [chunk async for chunk in blob.chunks]
    assert all(len(c) <= CHUNK_BYTES for c in chunks) and len(chunks) >= 3
    assert b"".join(chunks) == data


async def test_empty_content_round_trips(store: AttachmentStore) -> None:
    digest = await store.put(b"")
    assert await read_all(store, digest) == b""


async def test_unknown_content_is_missing_not_an_error(store: AttachmentStore) -> None:
    digest = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    assert not await store.exists(digest)
    with pytest.raises(BlobMissing):
        await store.open(digest)
    with pytest.raises(BlobMissing):
        await store.open("../../etc/passwd")


async def test_postgres_store_keeps_one_copy_of_equal_content(db: Database) -> None:
    store = PostgresStore(db)
    data = os.urandom(CHUNK_BYTES + 1)
    first, second = await store.put(data), await store.put(data)
    assert first == second
    async with db.read_only() as session:
        blobs = await session.scalar(select(func.count()).select_from(AttachmentBlob).where(AttachmentBlob.sha256 == first))
        chunks = await session.scalar(select(func.count()).select_from(AttachmentChunk).where(AttachmentChunk.sha256 == first))
    assert (blobs, chunks) == (1, 2)
