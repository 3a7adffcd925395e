"""Reply-extraction accuracy on public fixtures: each candidate library, and our extract_reply.

    .venv/bin/python bench/reply_accuracy.py [--upstream] [--only ID_PREFIX] [--show ID] [--wide]

Fixtures: tests/fixtures/replies/cases.json (upstream test emails of talon, quotequail,
email_reply_parser, mail-parser-reply with their expected outputs, and our own multilingual
cases under ours/; see the README there). Inputs are fed the way the ingest pipeline
(core.mail.parse) feeds extract_reply: the text/plain part of an .eml, plain text as is, and for
an HTML-only mail the html_to_text rendering of the sanitized HTML as the text plus the HTML as
sent (its classes and ids are where Gmail, Outlook and Yahoo mark their quotes).

Per case and library one mark:
    =   exact: equal to the expected text after whitespace normalisation (runs -> one space)
    ~   loose: every expected line kept and no dropped line (quote, header, signature) left in
    L   lost new text (an expected line is missing)      Q   kept quoted/signature text
    LQ  both                                             !   the adapter raised
--upstream scores against the upstream projects' own expectations where our policy differs
(they keep some signatures, see the note of each case). Libraries not installed are skipped:
    .venv/bin/pip install quotequail mail-parser-reply email-reply-parser talon
Figures are printed per source (the folder) and per category (ours/<category>/…).
"""

from __future__ import annotations

import argparse
import warnings
import email
import email.policy
import json
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / "tests" / "fixtures" / "replies"

from core.mail.html import html_to_text, sanitize_html  # noqa: E402
from core.mail.reply import extract_reply  # noqa: E402


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    html: str | None
    expected: str
    upstream_expected: str
    note: str


def _eml_bodies(raw: bytes) -> tuple[str, str | None]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    plain = msg.get_body(preferencelist=("plain",))
    rich = msg.get_body(preferencelist=("html",))
    source = rich.get_content() if rich is not None else None
    text = plain.get_content() if plain is not None else html_to_text(sanitize_html(source or ""))
    return text.replace("\r\n", "\n").strip("\n"), source


def load_cases() -> list[Case]:
    manifest = json.loads((FIXTURES / "cases.json").read_text(encoding="utf-8"))
    cases = []
    for c in manifest["cases"]:
        path = FIXTURES / c["input"]
        if c["format"] == "eml":
            text, html = _eml_bodies(path.read_bytes())
        elif c["format"] == "html":
            html = path.read_text(encoding="utf-8")
            text = html_to_text(sanitize_html(html))
        else:
            text, html = path.read_text(encoding="utf-8"), None
        expected = c["expected"]
        cases.append(Case(c["id"], text, html, expected, c.get("upstream_expected", expected), c.get("note", "")))
    return cases


# --- candidate adapters: (text, html) -> reply text, each library used as documented ---------


def _from_html(text: str, html: str | None) -> bool:
    """True when the text is only the rendering of the HTML (an HTML-only mail)."""
    return bool(html) and text == html_to_text(sanitize_html(html or ""))


def quotequail_adapter() -> Callable[[str, str | None], str]:
    import quotequail

    def run(text: str, html: str | None) -> str:
        if _from_html(text, html):
            return html_to_text(quotequail.quote_html(html or "", quote_intro_line=True)[0][1])
        return quotequail.quote(text, quote_intro_line=True)[0][1]

    return run


def mpr_adapter(part: str) -> Callable[[str, str | None], str]:
    from mailparser_reply import EmailReplyParser
    from mailparser_reply.constants import MAIL_LANGUAGES

    parser = EmailReplyParser(languages=list(MAIL_LANGUAGES))

    def run(text: str, html: str | None) -> str:
        replies = parser.read(text).replies
        if not replies:
            return ""
        # replies[0] is the newest; `body` drops its header, signatures and disclaimers,
        # `full_body` only its header
        return replies[0].body if part == "body" else replies[0].full_body

    return run


def talon_adapter() -> Callable[[str, str | None], str]:
    from talon import quotations

    def run(text: str, html: str | None) -> str:
        if _from_html(text, html):
            return html_to_text(quotations.extract_from_html(html or ""))
        return quotations.extract_from_plain(text)

    return run


def erp_adapter() -> Callable[[str, str | None], str]:
    from email_reply_parser import EmailReplyParser

    return lambda text, html: EmailReplyParser.parse_reply(text)


ADAPTERS: dict[str, Callable[[], Callable[[str, str | None], str]]] = {
    "quotequail": quotequail_adapter,
    "mpr.body": lambda: mpr_adapter("body"),
    "mpr.full": lambda: mpr_adapter("full"),
    "email-reply-parser": erp_adapter,
    "talon": talon_adapter,
    "extract_reply": lambda: extract_reply,
}


# --- scoring -------------------------------------------------------------------------------------


def norm(s: str) -> str:
    return " ".join(s.split())


def mark(case: Case, expected: str, got: str) -> str:
    if norm(got) == norm(expected):
        return "="
    exp_n, got_n = norm(expected), norm(got)
    lost = any(norm(line) not in got_n for line in expected.splitlines() if line.strip())
    # lines of the input that must go: present in the input, absent from the expected text
    dropped = {norm(line) for line in case.text.splitlines() if line.strip() and norm(line) not in exp_n}
    leaked = any(norm(line) in dropped for line in got.splitlines() if line.strip())
    return ("L" if lost else "") + ("Q" if leaked else "") or "~"


def main() -> None:
    warnings.filterwarnings("ignore")  # html5lib (talon) warns on every Outlook namespace
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", action="store_true", help="score against the upstream expectations")
    ap.add_argument("--only", default="", help="only cases whose id starts with this")
    ap.add_argument("--show", default="", help="print input, expected and each output for one case id")
    ap.add_argument("--wide", action="store_true", help="print the misses' notes too")
    args = ap.parse_args()

    libs: dict[str, Callable[[str, str | None], str]] = {}
    for name, make in ADAPTERS.items():
        try:
            libs[name] = make()
        except ImportError as exc:
            print(f"(skipping {name}: {exc})")
    cases = [c for c in load_cases() if c.id.startswith(args.only)]

    if args.show:
        case = next(c for c in cases if c.id == args.show)
        print(f"--- text\n{case.text}\n--- expected\n{case.expected}\n--- upstream\n{case.upstream_expected}")
        for name, run in libs.items():
            print(f"--- {name}\n{run(case.text, case.html)}")
        return

    width = max(len(c.id) for c in cases)
    print(f"{'case':<{width}}  " + "  ".join(f"{n:>8.8}" for n in libs))
    totals: dict[str, dict[str, int]] = {n: defaultdict(int) for n in libs}
    by_source: dict[str, dict[str, list[int]]] = {n: defaultdict(lambda: [0, 0]) for n in libs}
    for case in cases:
        expected = case.upstream_expected if args.upstream else case.expected
        marks = []
        for name, run in libs.items():
            try:
                m = mark(case, expected, run(case.text, case.html))
            except Exception as exc:  # a library crash is a result too
                m = "!"
                print(f"  {name} raised on {case.id}: {type(exc).__name__}: {exc}", file=sys.stderr)
            marks.append(m)
            t = totals[name]
            t["exact"] += m == "="
            t["loose"] += m in ("=", "~")
            t["lost"] += "L" in m
            t["leaked"] += "Q" in m
            t["raised"] += m == "!"
            for group in _groups(case.id):
                src = by_source[name][group]
                src[0] += m == "="
                src[1] += 1
        line = f"{case.id:<{width}}  " + "  ".join(f"{m:>8}" for m in marks)
        if args.wide and case.note:
            line += f"   ({case.note})"
        print(line)

    _print_summary(totals, by_source, len(cases), args.upstream)


def _print_summary(
    totals: dict[str, dict[str, int]], by_source: dict[str, dict[str, list[int]]], n: int, upstream: bool
) -> None:
    print(f"\n{n} cases" + (" (upstream expectations)" if upstream else ""))
    print(f"{'library':<20} {'exact':>12} {'loose':>12} {'lost text':>10} {'kept quote':>11} {'raised':>7}")
    for name, t in totals.items():
        print(
            f"{name:<20} {t['exact']:>4} ({t['exact'] / n:4.0%}) {t['loose']:>4} ({t['loose'] / n:4.0%})"
            f" {t['lost']:>10} {t['leaked']:>11} {t['raised']:>7}"
        )
    groups = sorted({g for per in by_source.values() for g in per})
    print(f"\nexact per source and category\n{'group':<32}" + "".join(f"{name:>20.20}" for name in totals))
    for g in groups:
        cells = []
        for name in totals:
            a, b = by_source[name][g]
            cells.append(f"{a:>4}/{b:<4} ({a / b:4.0%})")
        print(f"{g:<32}" + "".join(f"{c:>20}" for c in cells))


def _groups(case_id: str) -> list[str]:
    """The source (first folder) and, for our own cases, the category too."""
    parts = case_id.split("/")
    return [parts[0]] + ([f"{parts[0]}/{parts[1]}"] if parts[0] == "ours" and len(parts) > 2 else [])


if __name__ == "__main__":
    main()
