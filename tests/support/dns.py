"""A small real DNS server on loopback (dnslib), serving fixture SPF, DKIM and DMARC records."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dnslib import QTYPE, RR, TXT, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

FIXTURES = Path(__file__).parent.parent / "fixtures" / "dkim"
SELECTOR = "selector1"


def private_key() -> bytes:
    return (FIXTURES / f"{SELECTOR}.private").read_bytes()


def zone() -> dict[tuple[str, str], list[str]]:
    public = (FIXTURES / f"{SELECTOR}.public.b64").read_text().strip()
    return {
        # signs its mail and sends it from 127.0.0.1: DMARC pass by SPF and by DKIM
        ("signed.test.", "TXT"): ["v=spf1 ip4:127.0.0.1 -all"],
        ("_dmarc.signed.test.", "TXT"): ["v=DMARC1; p=reject"],
        (f"{SELECTOR}._domainkey.signed.test.", "TXT"): [f"v=DKIM1; k=rsa; p={public}"],
        # sends only from 192.0.2.1 and asks for rejection of the rest: forged from elsewhere
        ("bank.test.", "TXT"): ["v=spf1 ip4:192.0.2.1 -all"],
        ("_dmarc.bank.test.", "TXT"): ["v=DMARC1; p=reject"],
        # publishes a monitoring-only policy
        ("lax.test.", "TXT"): ["v=spf1 ip4:192.0.2.1 -all"],
        ("_dmarc.lax.test.", "TXT"): ["v=DMARC1; p=none"],
        ("mx.signed.test.", "A"): ["127.0.0.1"],
    }


class _ZoneResolver(BaseResolver):
    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = records

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        reply = request.reply()
        name = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        for value in self.records.get((name, qtype), []):
            if qtype == "TXT":
                chunks = [value[i:i + 255] for i in range(0, len(value), 255)]
                reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
            elif qtype == "A":
                reply.add_answer(RR(name, QTYPE.A, rdata=A(value), ttl=60))
        if not reply.rr and not any(n == name for n, _ in self.records):
            reply.header.rcode = 3  # NXDOMAIN
        return reply


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dns_server() -> Iterator[str]:
    """`127.0.0.1:port` of a running server (UDP and TCP) with the fixture zone."""
    port = _free_port()
    resolver = _ZoneResolver(zone())
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    servers = [DNSServer(resolver, address="127.0.0.1", port=port, tcp=tcp, logger=quiet) for tcp in (False, True)]
    for server in servers:
        server.start_thread()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for server in servers:
            server.stop()
