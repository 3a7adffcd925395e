"""Threats at the SMTP edge: mail loops, one host holding every connection slot, directory
harvesting, and recipient limits below what RFC 5321 requires."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import time
from pathlib import Path


from tests.support.gateway import SUPPORT, crlf, make_settings, running_gateway


def _message(received: int) -> bytes:
    hops = "".join(f"Received: from hop{i}.test by hop{i + 1}.test; Mon, 2 Mar 2026 10:00:00 +0000\r\n" for i in range(received))
    return (hops + f"From: loop@mail.test\r\nTo: {SUPPORT}\r\nSubject: loop\r\n\r\nround and round\r\n").encode()


def _data(port: int, raw: bytes, rcpts: list[str] | None = None) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mail.test")
        client.mail("loop@mail.test")
        for rcpt in rcpts or [SUPPORT]:
            code, reply = client.rcpt(rcpt)
            assert code == 250, reply
        client.putcmd("data")
        code, _ = client.getreply()
        assert code == 354
        client.send(crlf(raw).replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
        return client.getreply()


async def test_routing_loop_of_100_received_headers_is_refused_at_end_of_data(gateway) -> None:
    code, reply = await asyncio.to_thread(_data, gateway.smtp_port, _message(100))
    assert (code, reply[:5]) == (554, b"5.4.6")
    code, _ = await asyncio.to_thread(_data, gateway.smtp_port, _message(99))
    assert code == 250


async def test_a_message_for_100_recipients_is_accepted(gateway) -> None:
    rcpts = [f"support+r{i}@example.com" for i in range(100)]
    code, _ = await asyncio.to_thread(_data, gateway.smtp_port, _message(1), rcpts)
    assert code == 250


def _harvest(port: int, guesses: int) -> list[int]:
    codes = []
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mail.test")
        client.mail("harvest@mail.test")
        for i in range(guesses):
            try:
                codes.append(client.rcpt(f"guess{i}@example.com")[0])
            except smtplib.SMTPServerDisconnected:
                codes.append(0)
                break
    return codes


async def test_directory_harvest_is_cut_off_after_the_unknown_recipient_cap(database_url: str, tmp_path: Path) -> None:
    async with running_gateway(make_settings(database_url, tmp_path / "d", smtp_max_unknown_recipients=3)) as gw:
        codes = await asyncio.to_thread(_harvest, gw.smtp_port, 10)
    assert codes[:3] == [550, 550, 550] and codes[3] == 421 and len(codes) <= 5


def _idle_sockets(port: int, source: str, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
        sockets.append(s)
    return sockets


def _greeting(s: socket.socket) -> bytes:
    try:
        return s.recv(200)
    except (TimeoutError, ConnectionResetError):
        return b""


async def test_250_idle_connections_from_one_host_leave_other_hosts_served(database_url: str, tmp_path: Path) -> None:
    async with running_gateway(make_settings(database_url, tmp_path / "d")) as gw:
        idle = await asyncio.to_thread(_idle_sockets, gw.smtp_port, "127.0.0.2", 250)
        try:
            greetings = await asyncio.gather(*(asyncio.to_thread(_greeting, s) for s in idle[-10:]))
            assert all(g.startswith(b"421 4.7.0") for g in greetings)  # over the per-host cap
            code, _ = await asyncio.to_thread(_data, gw.smtp_port, _message(1))  # from 127.0.0.1
            assert code == 250
        finally:
            for s in idle:
                s.close()


def _closed_by_server(s: socket.socket, wait: float) -> bool:
    s.settimeout(wait)
    try:
        s.recv(200)  # the greeting
        while data := s.recv(200):
            if data.startswith(b"421"):
                return True
        return True
    except (TimeoutError, socket.timeout):
        return False
    except ConnectionResetError:
        return True


async def test_idle_timeout_shrinks_when_connection_slots_run_low(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "d", max_connections=10, smtp_stress_idle_seconds=0.5,
                             smtp_idle_seconds=300)
    async with running_gateway(settings) as gw:
        calm = await asyncio.to_thread(_idle_sockets, gw.smtp_port, "127.0.0.3", 2)
        try:
            # two of ten slots: the normal timeout, nobody is hung up on within seconds
            assert not await asyncio.to_thread(_closed_by_server, calm[0], 2.0)
            crowd = await asyncio.to_thread(_idle_sockets, gw.smtp_port, "127.0.0.4", 7)
            try:  # nine of ten: idle sessions get the stress timeout, and are closed
                assert await asyncio.to_thread(_closed_by_server, calm[1], 20.0)
            finally:
                for s in crowd:
                    s.close()
        finally:
            for s in calm:
                s.close()


def _chatty_then_idle(port: int, commands: int, every: float, idle: float) -> tuple[list[int], bool]:
    """NOOPs `every` seconds apart, then silence: each reply code, and whether the server then
    hung up within `idle` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220")
        codes = []
        for _ in range(commands):
            time.sleep(every)
            sock.sendall(b"NOOP\r\n")
            codes.append(int(reader.readline()[:3] or 0))
        sock.settimeout(idle)
        try:
            closed = reader.readline() in (b"", b"421 4.4.2 Timeout\r\n")
        except (TimeoutError, socket.timeout):
            closed = False
        return codes, closed


async def test_each_command_extends_the_idle_timeout_and_silence_ends_the_session(
    database_url: str, tmp_path: Path,
) -> None:
    """The session's one idle timer fires before the deadline a later command set, waits out
    the rest, and closes the session once it has been silent for the whole timeout."""
    settings = make_settings(database_url, tmp_path / "d", smtp_idle_seconds=0.8)
    async with running_gateway(settings) as gw:
        codes, closed = await asyncio.to_thread(_chatty_then_idle, gw.smtp_port, 6, 0.4, 5.0)
    assert codes == [250] * 6  # 2.4 s in all: three timeouts' worth, never silent for one
    assert closed
