"""Threats at the HTTP edge: hostile JSON, token guessing, token hoarding and impersonation,
idempotency keys replaying the wrong upload, and a database outage answered with 500s."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aiohttp

from tests.support.gateway import Running, make_settings, running_gateway


async def _ticket(client: aiohttp.ClientSession) -> dict:
    response = await client.post("/api/v1/tickets", json={
        "subject": "edge", "comment": {"body": "x"}, "requester": {"email": f"edge-{uuid.uuid4().hex[:8]}@mail.test"},
    })
    assert response.status == 201, await response.text()
    return await response.json()


async def test_deeply_nested_json_is_400_and_huge_json_is_413(gateway: Running) -> None:
    async with gateway.http() as client:
        nested = b'{"subject": "x", "custom_fields": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
        response = await client.post("/api/v1/tickets", data=nested, headers={"Content-Type": "application/json"})
        assert response.status == 400 and (await response.json())["error"]["code"] == "malformed_json"
        moderately = {"subject": "x", "comment": {"body": "y"}, "custom_fields": {"a": json.loads("[" * 40 + "]" * 40)}}
        assert (await client.post("/api/v1/tickets", json=moderately)).status == 400
        huge = {"subject": "x", "comment": {"body": "y" * (2 * 1024 * 1024)}}
        response = await client.post("/api/v1/tickets", json=huge)
        assert response.status == 413 and "error" in await response.json()


async def test_invalid_bearer_tokens_are_rate_limited_per_client_address(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "d", api_auth_failures_burst=3, api_auth_failures_per_minute=1)
    async with running_gateway(settings) as gw:
        async with gw.http() as client:  # a valid token, seen before the guessing: cached, still served
            assert (await client.get("/api/v1/groups")).status == 200
        statuses = []
        for i in range(6):
            async with gw.http(f"guess-{i}") as guesser:
                statuses.append((await guesser.get("/api/v1/groups")).status)
        assert statuses[:3] == [401, 401, 401] and set(statuses[3:]) == {429}
        async with gw.http() as client:
            assert (await client.get("/api/v1/groups")).status == 200


async def test_agents_mint_only_their_own_tokens_up_to_the_maximum(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "d", max_tokens_per_agent=3)
    async with running_gateway(settings) as gw:
        async with gw.http() as admin:
            other = await (await admin.post("/api/v1/agents", json={
                "email": f"other-{uuid.uuid4().hex[:8]}@agents.test", "name": "Other"})).json()
            assert (await admin.post("/api/v1/tokens", json={"agent_id": other["id"]})).status == 403
            # the admin already holds one (the fixture's); two more, then no more
            assert [(await admin.post("/api/v1/tokens", json={"name": f"t{i}"})).status for i in range(3)] == [201, 201, 409]


async def test_multipart_idempotency_fingerprint_covers_the_content(gateway: Running) -> None:
    async with gateway.http() as client:
        ticket = await _ticket(client)
        url = f"/api/v1/tickets/{ticket['id']}/comments"
        key = {"Idempotency-Key": uuid.uuid4().hex}

        def form(content: bytes) -> bytes:  # byte for byte the same but for the file's content
            return (
                b'--B\r\nContent-Disposition: form-data; name="body"\r\n\r\nlog attached\r\n'
                b'--B\r\nContent-Disposition: form-data; name="attachments"; filename="a.log"\r\n'
                b"Content-Type: text/plain\r\n\r\n" + content + b"\r\n--B--\r\n"
            )

        key["Content-Type"] = "multipart/form-data; boundary=B"
        first = await client.post(url, data=form(b"AAAA"), headers=key)
        assert first.status == 201, await first.text()
        again = await client.post(url, data=form(b"AAAA"), headers=key)
        assert again.status == 201 and again.headers.get("Idempotent-Replayed") == "true"
        other = await client.post(url, data=form(b"BBBB"), headers=key)  # same length, other bytes
        assert other.status == 422 and (await other.json())["error"]["code"] == "idempotency_key_reused"


class _Proxy:
    """A TCP proxy to PostgreSQL that can be cut, as a database outage."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.server: asyncio.base_events.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.host.startswith("/"):  # a Unix socket directory, as libpq takes it
            up_reader, up_writer = await asyncio.open_unix_connection(f"{self.host}/.s.PGSQL.{self.port}")
        else:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.writers += [writer, up_writer]

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()


async def test_database_down_is_503_on_the_api(database_url: str, tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    socket_dir = url.query.get("host")
    host = socket_dir if isinstance(socket_dir, str) else (url.host or "127.0.0.1")
    proxy = _Proxy(host, url.port or 5432)
    port = await proxy.start()
    query = {k: v for k, v in url.query.items() if k != "host"}
    proxied = url.set(host="127.0.0.1", port=port, query=query).render_as_string(hide_password=False)
    async with running_gateway(make_settings(proxied, tmp_path / "d", api_auth_cache_seconds=60)) as gw:
        async with gw.http() as client:
            assert (await client.get("/api/v1/tickets")).status == 200
            await proxy.cut()
            for _ in range(3):
                response = await client.get("/api/v1/tickets")
                assert response.status == 503, await response.text()
                assert (await response.json())["error"]["code"] == "unavailable"
