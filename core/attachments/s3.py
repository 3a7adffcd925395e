"""Attachments in an S3-compatible bucket (AWS S3, MinIO, Ceph, Garage…), via aiobotocore."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from core.attachments import CHUNK_BYTES, Blob, BlobMissing, BlobUnavailable, check_digest

if TYPE_CHECKING:
    from core.config import Settings

NETWORK_ERRORS = (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError)
NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3Store:
    kind = "s3"

    def __init__(
        self, *, bucket: str, prefix: str = "", endpoint_url: str | None = None,
        region: str | None = None, access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._options: dict[str, Any] = dict(
            endpoint_url=endpoint_url, region_name=region or "us-east-1",
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
            config=AioConfig(
                connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"},
                # path-style: works with MinIO and friends without wildcard DNS
                s3={"addressing_style": "path"},
            ),
        )
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        if not settings.s3_bucket:
            raise ValueError("HELPDESK_S3_BUCKET is required for the s3 attachment store")
        return cls(
            bucket=settings.s3_bucket, prefix=settings.s3_prefix, endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region, access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )

    async def start(self) -> None:
        self._stack = AsyncExitStack()
        self._client = await self._stack.enter_async_context(
            get_session().create_client("s3", **self._options)
        )

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = self._client = None

    def key(self, sha256: str) -> str:
        check_digest(sha256)
        return f"{self.prefix}{sha256[:2]}/{sha256[2:4]}/{sha256}"

    async def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if await self.exists(digest):
            return digest
        try:
            await self._client.put_object(Bucket=self.bucket, Key=self.key(digest), Body=data)
        except (ClientError, *NETWORK_ERRORS) as exc:
            raise BlobUnavailable(f"attachment could not be stored in S3: {exc}") from exc
        return digest

    async def remove(self, sha256: str) -> None:
        try:
            await self._client.delete_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _code(exc) not in NOT_FOUND:
                raise BlobUnavailable(f"S3 refused: {_code(exc)}") from exc
        except NETWORK_ERRORS as exc:
            raise BlobUnavailable(f"S3 unreachable: {exc}") from exc

    async def exists(self, sha256: str) -> bool:
        try:
            await self._client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _code(exc) in NOT_FOUND:
                return False
            raise BlobUnavailable(f"S3 refused: {_code(exc)}") from exc
        except NETWORK_ERRORS as exc:
            raise BlobUnavailable(f"S3 unreachable: {exc}") from exc
        return True

    async def open(self, sha256: str) -> Blob:
        try:
            response = await self._client.get_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _code(exc) in NOT_FOUND:
                raise BlobMissing(f"attachment content {sha256[:12]} is not in the bucket") from None
            raise BlobUnavailable(f"S3 refused: {_code(exc)}") from exc
        except NETWORK_ERRORS as exc:
            raise BlobUnavailable(f"S3 unreachable: {exc}") from exc
        return Blob(size=int(response["ContentLength"]), chunks=self._chunks(response["Body"]))

    async def _chunks(self, body: Any) -> AsyncIterator[bytes]:
        async with body:
            try:
                async for chunk in body.iter_chunks(CHUNK_BYTES):
                    yield chunk
            except NETWORK_ERRORS as exc:
                raise BlobUnavailable(f"S3 read failed: {exc}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
