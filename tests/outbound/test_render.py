"""Templates and MIME, without a database: escaping, the sandbox, no header injection."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.utils import getaddresses

import pytest
from jinja2.exceptions import SecurityError

from outbound.recipients import TEMPLATES
from outbound.render import (
    Envelope,
    Renderer,
    build_message,
    subject_line,
    thread_headers,
)
from outbound.transport import flatten


def context(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "ticket": {"number": 42, "subject": "<script>alert(1)</script>", "status": "solved", "priority": "high"},
        "recipient": {"name": "Zoë <zoe>", "is_agent": False}, "group": "Support", "ticket_url": None,
        "previous_status": "open", "actor_name": None, "requester": "Rita",
        "comment": {"author": "Otto", "body": "<img src=x onerror=alert(1)>\nline two", "public": True},
        "sla": {"metric": "first_reply_time", "breach_at": "2030-01-01T00:00:00Z"},
        "body": "<script>alert(2)</script> from a trigger",
        "survey": {"good": "https://desk.test/satisfaction/t?score=good", "bad": "https://desk.test/satisfaction/t?score=bad"},
    }
    values.update(overrides)
    return values


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_renders_text_and_escaped_html(template: str) -> None:
    text, html = Renderer().render(template, context())
    assert "#42" in text and "#42" in html
    assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html
    if template == "ticket_new_comment":
        assert "<img src=x onerror=alert(1)>" in text  # plain text stays as written
        assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_templates_are_sandboxed() -> None:
    env = Renderer().env
    with pytest.raises(SecurityError):
        env.from_string("{{ x.__class__.__mro__[1].__subclasses__() }}").render(x="")


def test_names_and_subjects_cannot_inject_headers() -> None:
    envelope = Envelope(
        message_id="abc.hd@example.com", from_name="Support\r\nBcc: spy@evil.test",
        from_address="support@example.com", to_name='Eve\r\nBcc: victim@evil.test\r\n\r\nbody',
        to_address="eve@mail.test", reply_to="support+token@example.com",
        subject="Hi\r\nX-Injected: yes\nContent-Type: text/html", thread=["a@b", "bad id@x", "<c@d>", "e@f"],
        auto_submitted="auto-generated", ticket_number=7,
    )
    raw = flatten(build_message(envelope, "text", "<p>html</p>"))
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None and parsed["X-Injected"] is None
    assert getaddresses([parsed["To"]]) == [("Eve Bcc: victim@evil.test body", "eve@mail.test")]
    assert parsed["Subject"] == "[#7] Hi X-Injected: yes Content-Type: text/html"
    assert parsed["In-Reply-To"] == "<e@f>" and parsed["References"] == "<a@b> <e@f>"
    assert parsed.get_content_type() == "multipart/alternative"


def test_subject_tag_and_thread_trimming() -> None:
    assert subject_line(5, "Re: [#5] printer") == "Re: [#5] printer"
    assert subject_line(5, "") == "[#5] (no subject)"
    ids = [f"m{i}@x" for i in range(30)]
    in_reply_to, references = thread_headers(ids)
    assert in_reply_to == "<m29@x>"
    assert references.split() == ["<m0@x>", *[f"<m{i}@x>" for i in range(21, 30)]]
    assert thread_headers([]) == (None, None)


def test_non_ascii_names_subjects_and_addresses_survive_the_round_trip() -> None:
    for to_address in ("zoe@mail.test", "zoë@exämple.test"):
        envelope = Envelope(
            message_id="u.hd@example.com", from_name="Süpport", from_address="support@example.com",
            to_name="Zoë “Z” O'Neil", to_address=to_address, reply_to="support+token@example.com",
            subject="Drucker brennt — schon wieder 🔥", thread=[], auto_submitted="auto-replied",
            ticket_number=9,
        )
        raw = flatten(build_message(envelope, "Grüße\n", "<p>Grüße</p>"), "bounce@example.com", to_address)
        assert b"\r\n" in raw and b"\n\n" not in raw.replace(b"\r\n", b"")
        parsed = message_from_bytes(raw, policy=policy.default)
        assert getaddresses([parsed["To"]]) == [("Zoë “Z” O'Neil", to_address)]
        assert getaddresses([parsed["From"]]) == [("Süpport", "support@example.com")]
        assert parsed["Subject"] == "[#9] Drucker brennt — schon wieder 🔥"
        assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Grüße\n"
        assert parsed["In-Reply-To"] is None


def test_agent_footer_lines_and_an_internal_note_invites_an_internal_reply() -> None:
    agent = {"name": "Ann", "is_agent": True}
    note = {"author": "Otto", "body": "between us", "public": False}
    text, html = Renderer().render(
        "ticket_new_comment", context(recipient=agent, comment=note, ticket_url="https://desk.test/t/42")
    )
    footer = text.split("\n--\n", 1)[1].splitlines()
    assert footer == [
        "Reply to this email to add an internal note to ticket #42 (the requester will not see it).",
        "Open the ticket: https://desk.test/t/42",
    ]
    assert "public" not in text.split("\n--\n", 1)[1] and "public comment" not in html
    public, _ = Renderer().render("ticket_assigned", context(recipient=agent, ticket_url=None))
    assert public.split("\n--\n", 1)[1].splitlines() == ["Reply to this email to add a public comment to ticket #42."]


def test_ticket_link_only_to_a_page_the_operator_names() -> None:
    from outbound.compose import ticket_link

    assert ticket_link(None, 42) is None
    assert ticket_link("https://desk.example.com/tickets/{number}", 42) == "https://desk.example.com/tickets/42"


def test_notifications_flatten_to_the_generators_bytes() -> None:
    """`flatten` writes a notification without the email generator: the same bytes as
    `as_bytes(policy=_COMPAT_SMTP)`, boundary included (both draw it from `random`), whatever
    the names, subject, thread and bodies (long lines, bare CR or LF, '=' signs, non-ASCII)."""
    import copy
    import random
    import string

    from outbound.transport import _COMPAT_SMTP

    rnd = random.Random(20261130)
    chars = string.ascii_letters + string.digits + " \t\r\n=.-_:;,<>\"'()[]@!?#"

    def text(size: int, unicode: bool = False) -> str:
        pool = chars + ("äöü€😀—" if unicode else "")
        return "".join(rnd.choice(pool) for _ in range(size))

    for n in range(300):
        envelope = Envelope(
            message_id=f"{n}.hd@example.com", from_name=text(rnd.randint(0, 40), rnd.random() < 0.2),
            from_address="support@example.com", to_name=text(rnd.randint(0, 60), rnd.random() < 0.2),
            to_address=f"c{n}@customers.example", reply_to=f"support+t{n}@example.com",
            subject=text(rnd.randint(0, 300), rnd.random() < 0.2),
            thread=[f"m{i}@x.example" for i in range(rnd.randint(0, 15))],
            auto_submitted=rnd.choice([None, "auto-replied", "auto-generated"]), ticket_number=rnd.randint(1, 10**7),
        )
        body = text(rnd.choice([0, 1, 80, 1000, 5000]), rnd.random() < 0.2) + rnd.choice(["", "\n", "\r\n"])
        message = build_message(envelope, body, text(rnd.choice([0, 100, 3000]), rnd.random() < 0.2))
        twin = copy.deepcopy(message)
        seed = rnd.random()
        random.seed(seed)
        expected = twin.as_bytes(policy=_COMPAT_SMTP)
        random.seed(seed)
        assert flatten(message) == expected, n


def test_an_admins_template_is_compiled_once_and_renders_each_context_of_its_own() -> None:
    renderer = Renderer()
    source = "Ticket {{ ticket.number }} for {{ requester.name }}"
    first = renderer.render_string(source, {"ticket": {"number": 1}, "requester": {"name": "Ann"}})
    second = renderer.render_string(source, {"ticket": {"number": 2}, "requester": {"name": "Bo"}})
    assert (first, second) == ("Ticket 1 for Ann", "Ticket 2 for Bo")
    assert list(renderer._user_templates) == [source]
    escape = "{{ x.__class__.__mro__[1].__subclasses__() }}"
    for _ in range(2):  # the sandbox holds for a template taken from the cache too
        with pytest.raises(SecurityError):
            renderer.render_string(escape, {"x": ""})


def test_the_admin_templates_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import outbound.render

    monkeypatch.setattr(outbound.render, "USER_TEMPLATES_KEPT", 3)
    renderer = Renderer()
    for n in range(5):
        renderer.render_string(f"number {n}", {})
    renderer.render_string("number 2", {})  # used again: kept, as the most recent
    assert list(renderer._user_templates) == ["number 3", "number 4", "number 2"]
