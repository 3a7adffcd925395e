"""Attachments as files under DATA_DIR/attachments, one per distinct content, named by sha256.

Only the processes that share that directory see them: for fronts and workers on several
hosts use the `postgres` or `s3` store."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from core.attachments import CHUNK_BYTES, Blob, BlobMissing, BlobUnavailable, check_digest


class FileStore:
    kind = "fs"

    def __init__(self, root: Path) -> None:
        self.root = root

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def path_for(self, sha256: str) -> Path:
        check_digest(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, digest, data)
        return digest

    def _write(self, digest: str, data: bytes) -> None:
        target = self.path_for(digest)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)  # atomic: readers see the whole file or none
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def remove(self, sha256: str) -> None:
        await asyncio.to_thread(self.path_for(sha256).unlink, True)

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self.path_for(sha256).is_file)

    async def open(self, sha256: str) -> Blob:
        path = self.path_for(sha256)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise BlobMissing(f"attachment content {sha256[:12]} is not in {self.root}") from None
        except OSError as exc:
            raise BlobUnavailable(f"attachment storage unreadable: {exc.strerror}") from None
        size = os.fstat(handle.fileno()).st_size
        return Blob(size=size, chunks=self._chunks(handle))

    async def _chunks(self, handle: BinaryIO) -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
                yield chunk
        finally:
            handle.close()
