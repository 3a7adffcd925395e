"""Generated mail, hostile and malformed: parsing never crashes, ingest never loses a message."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.attachments.fs import FileStore
from core.db import Database
from core.enums import InboundStatus
from core.ingest.intake import Intake, Submission
from core.ingest.models import InboundMessage
from core.ingest.pipeline import Pipeline
from core.ingest.runner import IngestRunner
from core.mail.classify import classify
from core.mail.parse import Unprocessable, parse
from core.mail.reply import extract_reply
from core.metrics import Metrics

header_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
addresses = st.one_of(
    st.just("jane@customer.test"),
    st.just("Jane Doe <jane@customer.test>"),
    st.just("=?utf-8?b?w4lsw6hu?= <elen@customer.test>"),
    st.just("a@x.test, b@y.test"),
    st.just("<>"),
    st.just("undisclosed-recipients:;"),
    st.just("MAILER-DAEMON@mx.test"),
    st.just("support@example.com"),
    header_text,
)
charsets = st.sampled_from(["utf-8", "iso-8859-1", "koi8-r", "x-unknown", "utf-16", "us-ascii", ""])
encodings = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "bogus"])
ctypes = st.sampled_from([
    "text/plain", "text/html", "multipart/mixed", "multipart/alternative", "multipart/report",
    "message/rfc822", "application/octet-stream", "image/png", "text/x-weird", "multipart/",
])
optional_headers = st.dictionaries(
    st.sampled_from([
        "Subject", "Message-ID", "In-Reply-To", "References", "Cc", "Auto-Submitted", "Precedence",
        "List-Id", "X-Autoreply", "Return-Path", "Date", "Content-Disposition",
    ]),
    header_text,
    max_size=6,
)


@st.composite
def raw_messages(draw: st.DrawFn) -> bytes:
    lines = []
    if draw(st.booleans()) or True:
        for _ in range(draw(st.integers(0, 2))):
            lines.append(f"From: {draw(addresses)}")
    lines.append("To: support@example.com")
    for name, value in draw(optional_headers).items():
        lines.append(f"{name}: {value}")
    ctype = draw(ctypes)
    boundary = draw(st.sampled_from(["B", "", "with space", "B" * 80]))
    lines.append(f'Content-Type: {ctype}; charset="{draw(charsets)}"; boundary="{boundary}"')
    lines.append(f"Content-Transfer-Encoding: {draw(encodings)}")
    head = "\r\n".join(line.replace("\r", " ").replace("\n", " ") for line in lines)
    body = draw(st.one_of(
        st.binary(max_size=400),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.just(f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n".encode()),
        st.just(f"--{boundary}\r\nContent-Type: text/html\r\n\r\n<p>hi<script>x</script>\r\n".encode()),
    ))
    separator = draw(st.sampled_from([b"\r\n\r\n", b"\n\n", b"\r\n"]))
    return head.encode("utf-8", "surrogatepass") + separator + body


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_messages())
def test_parse_classify_extract_never_crash(raw: bytes) -> None:
    try:
        mail = parse(raw)
    except Unprocessable as exc:
        assert exc.reason
        return
    assert "@" in mail.from_address
    classify(mail, envelope_sender="")
    extract_reply(mail.text, mail.html)


async def test_generated_mail_ends_as_ticket_comment_or_quarantine(db: Database, tmp_path: Path) -> None:
    """Through the real pipeline and PostgreSQL; no message may hit an internal error."""
    loop = asyncio.get_running_loop()
    intake = Intake(db)
    await intake.start()
    runner = IngestRunner(
        db, Pipeline(mailboxes={"support@example.com": "Support"}, store=FileStore(tmp_path)),
        Metrics(), workers=1,
    )
    outcomes: list[InboundMessage] = []

    async def one(raw: bytes) -> InboundMessage:
        inbound_id = await intake.submit(
            Submission(mail_from="fuzz@customer.test", rcpt_tos=["support@example.com"], raw=raw)
        )
        await runner.drain()
        async with db.unit_of_work() as session:
            row = await session.get(InboundMessage, inbound_id)
        assert row is not None
        return row

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(raw_messages(), st.booleans())
    def check(raw: bytes, with_id: bool) -> None:
        if with_id:  # unique, so examples are not all duplicates of each other
            raw = f"Message-ID: <{uuid.uuid4().hex}@fuzz>\r\n".encode() + raw
        row = asyncio.run_coroutine_threadsafe(one(raw), loop).result(timeout=60)
        outcomes.append(row)
        assert row.status is not InboundStatus.pending, row.last_error
        assert row.attempts == 0, f"internal error: {row.last_error}"
        if row.status is InboundStatus.processed:
            assert row.ticket_id is not None and row.comment_id is not None
        else:
            assert row.reason

    try:
        await asyncio.to_thread(check)
    finally:
        await intake.stop()
    assert len({o.status for o in outcomes}) >= 2  # the generator reaches both kinds of outcome
