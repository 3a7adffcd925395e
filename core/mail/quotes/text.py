"""Plain-text rules: which lines of a reply are the sender's new words.

Each line is first given a kind by named rules (the client that writes each form is named at
the rule); then one decision keeps the new text:

- everything from the first *history* start on is dropped (an Outlook header block, an
  "Original message" separator, an attribution with no `>` lines after it);
- an *attribution* right before `>` lines is dropped, the `>` block it introduces is a quote;
- `>` blocks are context when the sender answers between them (two or more answered blocks:
  inline answers) and history otherwise (top- and bottom-posting); a trailing block is history;
- a "-- " signature and device boilerplate ("Sent from my iPhone") end a run of new text;
- a forward (the first start found is "Forwarded message") and a message that is only a quote
  are kept whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.mail.quotes import vocab

MAX_LINE = 300  # longer lines are never quote headers; patterns only see this much
HISTORY_MARK = "\ue000"  # a line the HTML rules write where a history container starts
MAX_LINES = 5_000  # quote headers are looked for in the head of a message only (new text is on top)


@dataclass(frozen=True)
class Start:
    """Where quoted material starts: `kind` is history, attribution or forward."""

    kind: str
    first: int  # first line of the header
    last: int  # last line of the header
    rule: str
    keep_head: str | None = None  # the sender's text before an attribution on the same line


def new_text(text: str, *, from_html: bool = False) -> str | None:
    """The sender's new words in `text` (lines joined with "\\n"); None when all of it stays."""
    kept = kept_lines(text, from_html=from_html)
    return None if kept is None else _join(*kept)


def kept_lines(text: str, *, from_html: bool = False) -> tuple[list[str], list[int]] | None:
    """The lines of `text` (one perhaps shortened) and the numbers of those kept; None when
    all of it stays. `from_html`: the `>` lines are the HTML's quote containers, never chance."""
    lines = text.split("\n")
    heads = [line.strip()[:MAX_LINE] for line in lines]
    kinds = ["e" if not h else "q" if _quoted(h) else "t" for h in heads]
    starts = _starts(heads, kinds)
    if starts and starts[0].kind == "forward":
        return None  # forward_first: the forwarded message is the request (talon's rule too)
    end = next((s.first for s in starts if s.kind == "history"), len(lines))
    texts = list(lines)
    for s in starts:
        if s.kind != "attribution":
            continue
        for n in range(s.first, s.last + 1):
            kinds[n] = "a"
        if s.keep_head is not None:
            texts[s.first], kinds[s.first] = s.keep_head, "t"
    _wrapped_quote_lines(heads, kinds, end)
    attributed = any(s.kind == "attribution" for s in starts)
    if not from_html and not attributed and kinds[:end].count("q") < 3 and not _quoted_header(heads, kinds, end):
        _unquote_markers(kinds, end)  # few_markers
    keep = _decide(heads, kinds, end)
    if keep is None or not any(kinds[n] == "t" for n in keep):
        return None  # only_quote: a message that is only a quote or history keeps it all
    return texts, keep


def _quoted(head: str) -> bool:
    return head.startswith(">")


# --- where quoted material starts ------------------------------------------------------------


def _starts(heads: list[str], kinds: list[str]) -> list[Start]:
    """Every attribution before the first history start, then that start (or a forward)."""
    found: list[Start] = []
    n = 0
    while n < min(len(heads), MAX_LINES):
        if kinds[n] != "t" and heads[n] != HISTORY_MARK:
            n += 1
            continue
        start = _start_at(heads, kinds, n)
        if start is None:
            n += 1
            continue
        found.append(start)
        if start.kind != "attribution":
            break
        n = start.last + 1
    return found


def _start_at(heads: list[str], kinds: list[str], n: int) -> Start | None:
    head = heads[n]
    if head == HISTORY_MARK:  # html_container: Outlook's divRplyFwdMsg / top-border block
        return Start("history", n, n, "html_container")
    if vocab.DEVICE.match(head) and n > 0 and not heads[n - 1] and _text_follows(heads, n):
        # device_then_history: phone clients put "Sent from my …" between the new text and
        # the original they append, often without any header
        return Start("history", n, n, "device_then_history")
    if vocab.FORWARDED.match(head):
        return Start("forward", n, n, "forwarded_message")
    if vocab.ORIGINAL_MESSAGE.match(head):
        return Start("history", _rule_above(heads, n), n, "original_message")
    if vocab.DAVID.match(head):  # david_header: Tobit david's "Original Message processed by david"
        return Start("history", n, n, "david_header")
    if _header_block(heads, n):
        return Start("history", _rule_above(heads, n), n, "header_block")
    start = _attribution(heads, kinds, n)
    if start is not None and start.kind == "history":
        return Start("history", _rule_above(heads, n), start.last, start.rule)
    return start


def _text_follows(heads: list[str], n: int) -> bool:
    return any(heads[m] for m in range(n + 1, min(len(heads), n + 50)))


def _rule_above(heads: list[str], n: int) -> int:
    """A drawn rule (Outlook's line of underscores, dashes) just above a header goes with it, and
    so do the fields a webmail writes above its sender ("Message du : <date>")."""
    while n > 0 and heads[n - 1] and vocab.LEADING_FIELD.match(heads[n - 1]):
        n -= 1
    above = n - 1
    while above >= 0 and not heads[above]:
        above -= 1
    if above >= 0 and (vocab.DRAWN.match(heads[above]) or vocab.ORIGINAL_MESSAGE.match(heads[above])):
        return above
    return n


def _header_block(heads: list[str], n: int) -> bool:
    """header_block: Outlook/Exchange (desktop, web, mobile), Apple Mail and Gmail forwards write
    "From: … / Sent: … / To: … / Subject: …" without `>`, in the sender's language, sometimes
    bold (`*From:*`), sometimes with blank lines between. A sender or date field, then another
    field within a few lines (wrapped values such as "[mailto:\\nbob@x]" in between)."""
    head = heads[n]
    if not (vocab.FROM_FIELD.match(head) or vocab.DATE_FIELD.match(head)):
        return False
    fields = [head]
    blanks = 0
    for m in range(n + 1, min(n + 10, len(heads))):
        h = heads[m]
        if not h:
            blanks += 1
            if blanks > 2:
                break
            continue
        if vocab.FROM_FIELD.match(h) or vocab.DATE_FIELD.match(h) or vocab.OTHER_FIELD.match(h):
            fields.append(h)
    # two fields must carry an address or a date: "From: Monday / To: Friday" is prose
    return len(fields) >= 3 or (len(fields) == 2 and any(
        vocab.ADDRESS.search(f) or re.search(r"\d", f) for f in fields
    ))


_DASHES = re.compile(r"^[-=_*~ ]+|[-=_*~ ]+$")
# the sender's text and an attribution on one line: "reply On Wed, Apr 4, 2012, bob@x wrote:"
_SHARED = re.compile(r"^(?P<head>.*?\S)[\s\-]*(?P<tail>\b(?:On|Am|Le|El|Em|Op|Il|W dniu|Den|På)\s.{8,}?)$")


def _attribution(heads: list[str], kinds: list[str], n: int) -> Start | None:
    """attribution: "On <date>, <name> wrote:" (Gmail, Apple Mail, Thunderbird, K-9, Outlook for
    Mac) and its translations, over up to five lines (a long name and address wrap), with or
    without a verb (Japanese and Russian Gmail: "<date> <name> <address>:")."""
    if not vocab.LEADS.match(_DASHES.sub("", heads[n])):
        shared = _shared_line(heads, kinds, n)
        if shared is not None:
            return shared
    if not _could_start(heads[n]):
        return None
    # a line of prose right above an attribution is not its first line ("Call me at 10:00" /
    # "Bob <b@x> wrote:"): only an opener or a sender can be continued by a complete one
    opener = bool(vocab.LEADS.match(_DASHES.sub("", heads[n])) or vocab.ADDRESS.search(heads[n]))
    parts: list[str] = []
    weak: Start | None = None
    m = n
    blanks = 0
    while m < len(heads) and m <= n + 5 and len(parts) < 5:
        h = heads[m]
        if not h:
            blanks += 1
            if blanks > 1 or not parts:
                break
            m += 1
            continue
        if len(h) > 200 or (kinds[m] == "q" and len(h) > 20) or (
            parts and kinds[m] == "t" and (_sentence(h) or vocab.LEAD_WORD.match(_DASHES.sub("", h)))
        ):
            break  # a wrapped header line is short, a quoted one only its "> wrote:"; a new start
        if parts and not opener and _attribution_kind(h, quote_follows=True):
            break
        parts.append(h.lstrip("> ") if parts else h)
        blanks = 0
        start = _attribution_kind(" ".join(parts), quote_follows=_quote_follows(kinds, m))
        if start and start[1] == "on_date_wrote":
            return Start(start[0], n, m, start[1])
        if start and weak is None:
            weak = Start(start[0], n, m, start[1])  # unless a verb ends it on a later line
        m += 1
    return weak


def _could_start(head: str) -> bool:
    return bool(vocab.LEADS.match(_DASHES.sub("", head)) or vocab.DATE_OR_TIME.search(head)
                or vocab.ADDRESS.search(head) or vocab.WROTE_END.search(head) or vocab.WROTE_END_CJK.search(head))


def _sentence(head: str) -> bool:
    """A line of prose (a sentence ends in it): not the continuation of a wrapped header."""
    return bool(re.search(r"[.!?]\s+\S", head)) and not vocab.ADDRESS.search(head)


def _attribution_kind(joined: str, quote_follows: bool) -> tuple[str, str] | None:
    """('history' | 'attribution', rule name) for a candidate header text, or None."""
    core = _DASHES.sub("", joined)
    if len(core) > 400:
        return None
    context = bool(vocab.LEADS.match(core) or vocab.ADDRESS.search(core) or vocab.DATE_OR_TIME.search(core))
    verb = bool(vocab.WROTE_END.search(core) or vocab.WROTE_INSIDE.search(core) or vocab.WROTE_END_CJK.search(core))
    if verb and context and (re.search(r"\d", core) or vocab.ADDRESS.search(core)):
        # on_date_wrote: strong enough to end the new text even without `>` lines after it
        return ("attribution" if quote_follows else "history", "on_date_wrote")
    if vocab.ENDS_WITH_COLON.search(core) and vocab.SENDER.search(core) and vocab.DATE_OR_TIME.search(core):
        # date_sender_colon: "<date>, Name <addr>:" (Japanese and Russian Gmail, Yandex, mail.ru,
        # Crisp): a date and a sender in brackets end the new text, quoted or not
        return ("attribution" if quote_follows else "history", "date_sender_colon")
    if not quote_follows:
        return None
    if verb and len(core) <= 100:
        return ("attribution", "name_wrote")  # "---- John Smith wrote ----" (Android)
    if vocab.ENDS_WITH_COLON.search(core) and context and (vocab.ADDRESS.search(core) or vocab.DATE_OR_TIME.search(core)):
        return ("attribution", "date_sender_colon")
    if vocab.ADDRESS.search(core) and vocab.DATE_OR_TIME.search(core) and len(core) <= 150:
        return ("attribution", "date_sender")  # "2011/4/7 Name <addr>" (older Gmail)
    return None


def _shared_line(heads: list[str], kinds: list[str], n: int) -> Start | None:
    """reply_shares_line: a client that did not break the line before its attribution."""
    if kinds[n] != "t":
        return None
    match = _SHARED.match(heads[n])
    if not match or not _quote_follows(kinds, n):
        return None
    tail = match.group("tail")
    if not (vocab.WROTE_END.search(tail) and (vocab.ADDRESS.search(tail) or vocab.DATE_OR_TIME.search(tail))):
        return None
    head = match.group("head").rstrip(" -")
    return Start("attribution", n, n, "reply_shares_line", keep_head=head)


def _quote_follows(kinds: list[str], m: int) -> bool:
    """The next non-blank line (within a few) is a `>` line."""
    nxt = next((k for k in range(m + 1, min(len(kinds), m + 12)) if kinds[k] != "e"), None)
    return nxt is not None and kinds[nxt] == "q"


# --- quote markers that are not quotes ------------------------------------------------------


def _wrapped_quote_lines(heads: list[str], kinds: list[str], end: int) -> None:
    """wrapped_quote_line: one or two unquoted lines squeezed between `>` lines with no blank
    line around them, after a long quoted line or holding a link, are a quoted line that
    wrapped (a client re-wrapping at 72-78 columns); a short answer between short quoted
    lines is an inline answer."""
    n = 0
    while n < end:
        if kinds[n] == "t" and n > 0 and kinds[n - 1] == "q":
            m = n
            while m < end and kinds[m] == "t":
                m += 1
            if m < end and kinds[m] == "q" and m - n <= 2 and _looks_wrapped(heads[n - 1], heads[n:m]):
                for k in range(n, m):
                    kinds[k] = "q"
            n = m
        else:
            n += 1


def _looks_wrapped(above: str, squeezed: list[str]) -> bool:
    return len(above) >= 60 or any("://" in h or "mailto:" in h for h in [above, *squeezed])


def _quoted_header(heads: list[str], kinds: list[str], end: int) -> bool:
    """A quoted attribution ("> On … wrote:", Apple Mail) makes its `>` lines a quote."""
    return any(
        kinds[n] == "q" and _attribution_kind(heads[n].lstrip("> "), quote_follows=True) for n in range(end)
    )


def _unquote_markers(kinds: list[str], end: int) -> None:
    """few_markers: without any quote header, one or two `>` lines are text (">>> link <<<",
    "> 5 items"), as talon decides too."""
    for n in range(end):
        if kinds[n] == "q":
            kinds[n] = "t"


# --- the decision --------------------------------------------------------------------------------


def _decide(heads: list[str], kinds: list[str], end: int) -> list[int] | None:
    """The kept line numbers, or None when nothing would be dropped."""
    runs = _runs(kinds, end)  # [(kind 't'|'q', [line numbers])], 'q' runs include attributions
    for kind, numbers in runs:
        if kind == "t":
            numbers[:] = _without_signature(heads, numbers)
    answered = [
        i for i, (kind, _) in enumerate(runs)
        if kind == "q" and any(k == "t" and nums and any(heads[x] for x in nums) for k, nums in runs[i + 1: i + 2])
    ]
    last = answered[-1] if answered else 0
    if len(answered) >= 2 and last + 2 >= len(runs) and _sign_off(heads, runs[last][1]) and _sign_off(heads, runs[last + 1][1]):
        answered.pop()  # sign_off: "Thanks,\nBob" under a quoted "> Regards,\n> Support" answers nothing
    inline = len(answered) >= 2  # inline_answers: quotes the sender answers between stay
    keep: list[int] = []
    for i, (kind, numbers) in enumerate(runs):
        if kind == "t":
            keep += numbers
        elif inline and i in answered:
            keep += [x for x in numbers if kinds[x] == "q"]
    keep = [x for x in keep if heads[x]]
    if len(keep) == sum(1 for x in range(len(heads)) if heads[x]):
        return None
    return keep


def _sign_off(heads: list[str], numbers: list[int]) -> bool:
    """Two or three short lines ending with a name (a few words, no final punctuation)."""
    filled = [heads[x].lstrip("> ") for x in numbers if heads[x].lstrip("> ")]
    return (
        2 <= len(filled) <= 3 and all(len(h) <= 40 and not h.endswith("?") for h in filled)
        and len(filled[-1].split()) <= 3 and filled[-1][-1:].isalnum()
    )


def _runs(kinds: list[str], end: int) -> list[tuple[str, list[int]]]:
    runs: list[tuple[str, list[int]]] = []
    for n in range(end):
        k = kinds[n]
        if k == "e":
            if runs:
                runs[-1][1].append(n)
            continue
        kind = "t" if k == "t" else "q"
        if not runs or runs[-1][0] != kind:
            runs.append((kind, []))
        runs[-1][1].append(n)
    return runs


def _without_signature(heads: list[str], numbers: list[int]) -> list[int]:
    """A run of new text less its signature: from a "-- " line (RFC 3676 §4.3) or a long rule
    of underscores with a short footer (Mailman lists, Outlook) to the end of the run, then
    device and app lines at its end ("Sent from my iPhone", "Get Outlook for Android", …)."""
    filled_after = sum(1 for x in numbers if heads[x])
    for p, x in enumerate(numbers):
        h = heads[x]
        filled_after -= bool(h)
        if vocab.SIGNATURE.match(h) and filled_after <= 15:  # dash_dash_signature
            numbers = numbers[:p]
            break
        if vocab.RULE.match(h) and filled_after <= 8 and _footer(heads, numbers[p + 1:]):  # list_footer
            numbers = numbers[:p]
            break
    while True:  # device_boilerplate
        filled = [x for x in numbers if heads[x]]
        if not filled or not vocab.DEVICE.match(heads[filled[-1]]):
            return numbers
        numbers = numbers[: numbers.index(filled[-1])]


def _footer(heads: list[str], numbers: list[int]) -> bool:
    """A list or company footer below a rule carries a link or an address (Mailman's list
    address and listinfo URL); a rule to sign on ("____\nName") does not."""
    return any("://" in heads[x] or vocab.ADDRESS.search(heads[x]) for x in numbers)


def _join(lines: list[str], keep: list[int]) -> str:
    """The kept lines, with one blank line where the input had a paragraph break between them."""
    out: list[str] = []
    prev: int | None = None
    for k in keep:
        if prev is not None and any(not lines[n].strip() for n in range(prev + 1, k)):
            out.append("")
        out.append(lines[k].rstrip())
        prev = k
    return "\n".join(out).strip("\n")
