"""The survey's page: GET shows the choice with a comment box (nothing is recorded, so mail
scanners that open links never vote); POST records. Our own small HTML, everything escaped,
no external assets; no login: the signed token in the link is the permission."""

from __future__ import annotations

from html import escape

from aiohttp import web

from core.clock import utcnow
from core.errors import Conflict
from core.satisfaction.answers import MAX_COMMENT
from core.satisfaction.service import rate, rating_open
from core.satisfaction.tokens import verify_survey_token
from core.secrets import REPLY_TOKEN_SECRET, server_secret
from core.tickets.models import Ticket
from gateway.http.keys import DB
from gateway.http.routing import RouteTable

routes = RouteTable("satisfaction")
SCORES = ("good", "bad")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}}
label{{display:block;margin:.4rem 0}}textarea{{width:100%;min-height:6rem}}button{{padding:.5rem 1.2rem}}</style>
</head><body><h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(text=_PAGE.format(title=escape(title), body=body), status=status, content_type="text/html")


async def _ticket(request: web.Request, session) -> Ticket | None:  # type: ignore[no-untyped-def]
    secret = await server_secret(session, REPLY_TOKEN_SECRET)
    ticket_id = verify_survey_token(secret, request.match_info["token"])
    return None if ticket_id is None else await session.get(Ticket, ticket_id)


def _form(ticket: Ticket, score: str | None, comment: str) -> str:
    choices = "".join(
        f'<label><input type="radio" name="score" value="{s}"{" checked" if s == score else ""} required> '
        f'{"Good, I am satisfied" if s == "good" else "Bad, I am not satisfied"}</label>'
        for s in SCORES
    )
    return (
        f"<p>How was the help you got with request #{ticket.number}, "
        f"&ldquo;{escape(ticket.subject)}&rdquo;?</p><form method=\"post\">{choices}"
        f'<label>Anything you would like to add? <textarea name="comment" maxlength="{MAX_COMMENT}">'
        f"{escape(comment)}</textarea></label><button type=\"submit\">Confirm</button></form>"
    )


@routes.get("/satisfaction/{token}", summary="The survey's confirmation page", auth=False, content_type="text/html")
async def survey_page(request: web.Request) -> web.Response:
    async with request.app[DB].unit_of_work() as session:
        ticket = await _ticket(request, session)
        if ticket is None:
            return _page("Link not valid", "<p>This survey link is not valid.</p>", 404)
        if not rating_open(ticket, utcnow()):
            return _page("Survey closed", "<p>This survey is closed. Thank you.</p>", 410)
        score = request.query.get("score")
        return _page("Rate our support", _form(
            ticket, score if score in SCORES else ticket.satisfaction_score, ticket.satisfaction_comment or "",
        ))


@routes.post("/satisfaction/{token}", summary="Record the survey's answer", auth=False, content_type="text/html")
async def survey_answer(request: web.Request) -> web.Response:
    try:
        form = await request.post()
    except ValueError:
        return _page("Not understood", "<p>The form could not be read.</p>", 400)
    score, comment = form.get("score"), form.get("comment") or ""
    if score not in SCORES or not isinstance(comment, str) or len(comment) > MAX_COMMENT or "\x00" in comment:
        return _page("Not understood", "<p>Please choose good or bad (and at most 10,000 characters).</p>", 422)
    async with request.app[DB].unit_of_work() as session:
        ticket = await _ticket(request, session)
        if ticket is None:
            return _page("Link not valid", "<p>This survey link is not valid.</p>", 404)
        try:
            await rate(session, ticket, score=str(score), comment=comment.strip(), via="survey")
        except Conflict:
            return _page("Survey closed", "<p>This survey is closed. Thank you.</p>", 410)
    return _page("Thank you", "<p>Thank you for your answer. You can change it with the same link.</p>")
