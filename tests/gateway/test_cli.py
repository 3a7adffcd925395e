"""The `helpdesk` command as an operator runs it: real subprocesses, real sockets."""

from __future__ import annotations

import argparse

import asyncio
import os
import smtplib
import stat
import subprocess
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests.support.process import GatewayProcess, free_port
from tests.support.gateway import SUPPORT, Running, crlf


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any HELPDESK_ setting, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env.update({f"HELPDESK_{k.upper()}": v for k, v in settings.items()})
    return env


async def helpdesk(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "gateway", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60,
    )


async def test_token_create_prints_a_token_that_authenticates(
    database_url: str, gateway: Running, tmp_path: Path
) -> None:
    email = f"cli-{uuid.uuid4().hex[:8]}@agents.test"
    result = await helpdesk(
        ["token", "create", "--email", email, "--role", "agent"],
        clean_env(database_url=database_url), tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hd_"), result.stdout
    token = lines[0]

    async with aiohttp.ClientSession(gateway.base_url) as client:
        async with client.get("/api/v1/groups", headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200
            assert "Support" in [g["name"] for g in (await resp.json())["groups"]]
        async with client.get("/api/v1/groups", headers={"Authorization": f"Bearer {token}x"}) as resp:
            assert resp.status == 401


@pytest.mark.parametrize(
    ("args", "settings"),
    [
        (["serve"], {"support_addresses": "not-an-address"}),
        (["serve"], {"roles": "smtp,frobnicate"}),
        (["serve"], {"smtp_port": "not-a-port"}),
        (["token", "create", "--email", "not-an-address"], {}),
        (["serve", "--processes", "many"], {}),
        (["serve"], {"attachment_store": "s3"}),  # no bucket
        (["attachments", "migrate", "--to", "fs"], {}),  # the store already in use
    ],
    ids=["bad-support-address", "unknown-role", "bad-port", "bad-token-email", "bad-processes",
         "s3-without-bucket", "migrate-to-itself"],
)
async def test_user_mistakes_print_one_line_and_exit_non_zero(
    args: list[str], settings: dict[str, str], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    result = await helpdesk(["--data-dir", str(data_dir), *args], clean_env(**settings), tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("helpdesk: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (data_dir / "pg").exists()  # refused before starting anything


def new_mail(subject: str) -> bytes:
    m = EmailMessage()
    m["From"] = "Jane Doe <jane@customer.test>"
    m["To"] = SUPPORT
    m["Subject"] = subject
    m["Message-ID"] = f"<{uuid.uuid4().hex}@customer.test>"
    m.set_content("Sent to the embedded gateway.\n")
    return crlf(m.as_bytes())


def smtp_send(port: int, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        assert client.sendmail("jane@customer.test", [SUPPORT], data) == {}


async def ticket_subjects(base_url: str, token: str) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url, headers=headers) as client:
        async with client.get("/api/v1/tickets", params={"limit": "100"}) as resp:
            assert resp.status == 200, await resp.text()
            return [t["subject"] for t in (await resp.json())["tickets"]]


async def wait_ticket(base_url: str, token: str, subject: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while subject not in await ticket_subjects(base_url, token):
        if time.monotonic() > deadline:
            raise AssertionError(f"no ticket {subject!r} after {timeout}s")
        await asyncio.sleep(0.1)


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(pgdata) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


async def wait_postgres_gone(pgdata: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while postgres_processes(pgdata):
        if time.monotonic() > deadline:
            raise AssertionError(f"postgres still running on {pgdata}: {postgres_processes(pgdata)}")
        await asyncio.sleep(0.1)


async def test_serve_on_the_embedded_defaults(tmp_path: Path) -> None:
    data_dir = (tmp_path / "data").resolve()
    smtp_port, http_port = free_port(), free_port()
    args = ["serve", "--data-dir", str(data_dir), "--smtp-port", str(smtp_port), "--http-port", str(http_port)]
    env = clean_env()
    base_url = f"http://127.0.0.1:{http_port}"
    subject = f"embedded {uuid.uuid4().hex[:8]}"
    started: list[GatewayProcess] = []
    try:
        first = GatewayProcess(args, env, tmp_path)
        started.append(first)
        await asyncio.to_thread(first.wait_for_line, "roles:")
        token = (data_dir / "admin-token").read_text().strip()
        assert token.startswith("hd_")
        assert stat.S_IMODE((data_dir / "admin-token").stat().st_mode) == 0o600
        assert [line.strip() for line in first.stdout if token in line] == [token], first.output()
        assert not any(token in line for line in first.stderr)  # never in the logs
        assert f"SMTP listening on 127.0.0.1:{smtp_port}" in first.stdout
        assert any(line.startswith(f"HTTP listening on {base_url}/") for line in first.stdout)
        assert postgres_processes(data_dir / "pg")  # the embedded server runs from DATA_DIR/pg

        await asyncio.to_thread(smtp_send, smtp_port, new_mail(subject))
        await wait_ticket(base_url, token, subject)

        assert first.terminate() == 0, first.output()
        assert first.stdout[-1].strip() == "stopped", first.output()
        # quiet by default: no migration steps, no line per message, no platformdirs warning
        for noise in ("alembic", "Running upgrade", "Message-ID", "XDG_RUNTIME_DIR"):
            assert not any(noise in line for line in first.stderr), (noise, first.output())
        await wait_postgres_gone(data_dir / "pg")

        second = GatewayProcess(args, env, tmp_path)
        started.append(second)
        await asyncio.to_thread(second.wait_for_line, "roles:")
        assert not any("hd_" in line or "token" in line for line in second.stdout), second.output()
        assert (data_dir / "admin-token").read_text().strip() == token
        assert subject in await ticket_subjects(base_url, token)  # the old token, the old data
        assert second.terminate() == 0, second.output()
        await wait_postgres_gone(data_dir / "pg")
    finally:
        for gateway in started:
            gateway.ensure_dead()
        # a killed gateway cannot stop its PostgreSQL: do it here, so nothing outlives the test
        for proc in postgres_processes(data_dir / "pg"):
            proc.kill()


def test_version_and_every_option_has_help() -> None:
    from gateway.cli import build_parser

    result = subprocess.run([sys.executable, "-m", "gateway", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("helpdesk ")

    def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
        found = [parser]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found += parsers(sub)
        return found

    undocumented = [
        (parser.prog, action.dest) for parser in parsers(build_parser()) for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert undocumented == []


def test_serve_runs_on_uvloop_where_it_serves_no_api_unless_told_otherwise() -> None:
    import uvloop

    from core.config import Settings
    from gateway.cli import event_loop_factory

    for settings in (Settings(roles="smtp"), Settings(roles="worker,scheduler"), Settings(roles="api", event_loop="uvloop")):
        factory = event_loop_factory(settings)
        assert factory is not None, settings.roles
        loop = factory()
        try:
            assert isinstance(loop, uvloop.Loop)
        finally:
            loop.close()
    # the API answered fewer requests on uvloop: asyncio's own loop wherever it runs
    assert event_loop_factory(Settings()) is None
    assert event_loop_factory(Settings(roles="smtp,api")) is None
    assert event_loop_factory(Settings(roles="smtp", event_loop="asyncio")) is None
