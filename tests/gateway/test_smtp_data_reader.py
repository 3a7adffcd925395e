"""The DATA reader (`read_message`), which reads a message in blocks rather than line by line:
whatever way the bytes arrive (all at once, a byte at a time, a line cut anywhere), it reads
the same message, refuses the same way, and leaves the bytes after the end of data (pipelined
commands) to be read next. Checked against the rules written out line by line (`by_lines`)."""

from __future__ import annotations

import asyncio
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.smtp import DATA_TOO_BIG, LINE_TOO_LONG, _DataLines, read_message

LINE_LIMIT = 1001  # aiosmtpd's line_length_limit, as the server runs it
NEXT = b"QUIT\r\n"  # a pipelined command after the message


def by_lines(raw: bytes, size_limit: int | None) -> tuple[bytes | str | None, bytes]:
    """The rules, one line at a time: (the message or the refusal, the bytes left over)."""
    kept, refusal, size, follows_bare, at = [], None, 0, False, 0
    while (end := raw.find(b"\n", at)) >= 0:
        piece, at = raw[at:end], end + 1
        bare = not piece.endswith(b"\r")
        if piece == b".\r" and not follows_bare:
            return (refusal if refusal else b"".join(kept)), raw[at:]
        follows_bare = bare
        line = piece + (b"\r\n" if bare else b"\n")
        size += len(line)
        if refusal:
            continue
        if len(line) > LINE_LIMIT:
            refusal = LINE_TOO_LONG
        elif size_limit and size > size_limit:
            refusal = DATA_TOO_BIG
        elif line == b".\r\n":  # a dot line after or ending in a bare LF: content, never the end
            kept.append(line)
        else:
            kept.append(line[1:] if line.startswith(b".") else line)
    return None, b""


async def read_in(chunks: list[bytes], size_limit: int | None) -> tuple[bytes | str | None, bytes]:
    """`read_message` over a reader fed `chunks` one at a time, each after the reader waited."""
    reader = _DataLines(limit=LINE_LIMIT)

    async def feed() -> None:
        for chunk in chunks:
            await asyncio.sleep(0)
            reader.feed_data(chunk)
        await asyncio.sleep(0)
        reader.feed_eof()

    feeder = asyncio.create_task(feed())
    message = await read_message(reader, size_limit=size_limit, line_limit=LINE_LIMIT)
    await feeder
    return message, await reader.read()


def cut(raw: bytes, rng: random.Random, pieces: int) -> list[bytes]:
    points = sorted(rng.sample(range(1, len(raw)), min(pieces, len(raw) - 1))) if len(raw) > 1 else []
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)])]


line = st.one_of(
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")),
    st.sampled_from([b"", b".", b"..", b".x", b". ", b"\r", b"x\r"]),
    st.integers(995, 1004).map(lambda n: b"y" * n),
)
ending = st.sampled_from([b"\r\n", b"\n", b"\r\n", b"\r\n"])


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.tuples(line, ending), max_size=40),
    end=st.sampled_from([b".\r\n", b"\r\n.\r\n"]),
    seed=st.integers(0, 2**32),
    size_limit=st.sampled_from([None, 0, 50, 2_000, 5_000]),
)
def test_any_cut_of_the_bytes_reads_as_the_rules_say(
    lines: list[tuple[bytes, bytes]], end: bytes, seed: int, size_limit: int | None,
) -> None:
    raw = b"".join(text + eol for text, eol in lines) + end + NEXT
    expected = by_lines(raw, size_limit)
    rng = random.Random(seed)
    for chunks in ([raw], [bytes([b]) for b in raw], cut(raw, rng, 3), cut(raw, rng, 40)):
        assert asyncio.run(read_in(chunks, size_limit)) == expected


def test_smuggled_ends_of_data_are_content() -> None:
    for body in (b"a\n.\nb\r\n", b"a\n.\r\nb\r\n", b"a\r\n.\nb\r\n"):
        message, rest = asyncio.run(read_in([body + b".\r\n" + NEXT], None))
        assert message == body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert rest == NEXT


def test_a_long_line_is_refused_without_being_kept_and_the_session_goes_on() -> None:
    raw = b"Subject: x\r\n\r\n" + b"z" * 300_000 + b"\r\n.\r\n" + NEXT
    chunks = [raw[i:i + 4096] for i in range(0, len(raw), 4096)]
    assert asyncio.run(read_in(chunks, None)) == (LINE_TOO_LONG, NEXT)


def test_dots_are_unstuffed_and_the_end_is_only_crlf_dot_crlf() -> None:
    raw = b"..leading dot\r\n...\r\n.\r\n" + b"MAIL FROM:<a@b.c>\r\n"
    assert asyncio.run(read_in([raw], None)) == (b".leading dot\r\n..\r\n", b"MAIL FROM:<a@b.c>\r\n")


def test_a_connection_that_ends_mid_message_reads_as_nothing() -> None:
    assert asyncio.run(read_in([b"Subject: x\r\n\r\nhalf a mess"], None))[0] is None
