"""The SMTP front's fast reading of `<local@domain> params` must agree with aiosmtpd's parser."""

from __future__ import annotations

import string

from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from core.metrics import Metrics
from gateway.smtp import _PLAIN_PATH, IngressSMTP

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"


async def server() -> IngressSMTP:
    return IngressSMTP(object(), sessions=set(), metrics=Metrics())


def both(smtp: IngressSMTP, arg: str) -> tuple[tuple[str | None, str | None], tuple[str | None, str | None]]:
    return smtp._getaddr(arg), SMTP._getaddr(smtp, arg)


async def test_common_paths_take_the_fast_way_and_agree() -> None:
    smtp = await server()
    for arg in ["<a@b.example>", "<First.Last+tag@Mail.Example.COM> SIZE=2048 BODY=8BITMIME",
                "<o'brien@x.ie>", "<a@b>  SMTPUTF8", " <x_y@host-1.example>"]:
        assert _PLAIN_PATH.match(arg), arg
        fast, slow = both(smtp, arg)
        assert fast == slow, arg


async def test_unusual_paths_fall_back_to_the_full_parser() -> None:
    smtp = await server()
    for arg in ["<>", "<a@[192.0.2.1]>", '<"a b"@x.example>', "<@relay.example:a@b.example>",
                "<a..b@c.example>", "<a@b.example.>", "<a@-b.example>", "a@b.example",
                "<jörg@exämple.de>", "<a@b.example>garbage"]:
        assert not _PLAIN_PATH.match(arg), arg
        assert smtp._getaddr(arg) == SMTP._getaddr(smtp, arg), arg


async def test_an_overlong_local_part_is_refused_like_aiosmtpd_does() -> None:
    smtp = await server()
    smtp.local_part_limit = 64
    arg = f"<{'a' * 65}@b.example>"
    assert smtp._getaddr(arg) == SMTP._getaddr(smtp, arg) == (None, None)


local = st.text(ATEXT + ".", min_size=1, max_size=70)
domain = st.text(string.ascii_letters + string.digits + "-.", min_size=1, max_size=30)
params = st.sampled_from(["", " SIZE=10", "  BODY=8BITMIME SMTPUTF8", "\tX=1", " "])


@settings(max_examples=400, deadline=None)
@given(local=local, domain=domain, params=params, lead=st.sampled_from(["", " "]))
async def test_generated_paths_agree_whenever_the_fast_way_is_taken(
    local: str, domain: str, params: str, lead: str
) -> None:
    smtp = await server()
    arg = f"{lead}<{local}@{domain}>{params}"
    if _PLAIN_PATH.match(arg):
        fast, slow = both(smtp, arg)
        assert fast == slow
