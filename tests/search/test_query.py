"""The query language: what each form means, and that nothing typed escapes into SQL or filters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search.meili import quote, render_date, render_filter, render_text
from search.postgres import _date_filter, _filter, _Sql, _tsquery
from search.query import MAX_QUERY_LENGTH, Match, QueryError, Range, Text, parse
from search.resolve import FIELDS, DateFilter, Filter, Resolved

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_words_phrases_negation_and_the_last_word_as_prefix() -> None:
    q = parse('refund "credit note" -spam marzip', now=NOW)
    assert q.text == (
        Text("refund"), Text("credit note", phrase=True), Text("spam", negated=True), Text("marzip", prefix=True),
    )
    assert parse("a -b", now=NOW).text[-1] == Text("b", negated=True)  # a negated last word: no prefix


def test_qualifiers_values_or_and_comparisons_narrow() -> None:
    q = parse("status:new status:open,pending priority>normal priority<urgent -tags:spam tag:VIP", now=NOW)
    assert Match("status", ("new", "open", "pending")) in q.matches
    assert Match("priority", ("high", "urgent")) in q.matches
    assert Match("priority", ("low", "normal", "high")) in q.matches
    assert Match("tags", ("spam",), negated=True) in q.matches and Match("tags", ("vip",)) in q.matches
    assert Match("assignee", (None,)) in parse("assignee:none").matches
    assert Match("group", ("Level 2",)) in parse('group:"Level 2"').matches
    assert Match("status", ("on_hold",)) in parse("status:hold").matches


def test_dates_days_and_relative_instants() -> None:
    day = datetime(2026, 1, 31, tzinfo=UTC)
    assert parse("created>2026-01-31", now=NOW).ranges == (Range("created", ">=", day + timedelta(days=1)),)
    assert parse("created<2026-01-31", now=NOW).ranges == (Range("created", "<", day),)
    assert parse("created:2026-01-31", now=NOW).ranges == (
        Range("created", ">=", day), Range("created", "<", day + timedelta(days=1)),
    )
    assert parse("updated>7d", now=NOW).ranges == (Range("updated", ">", NOW - timedelta(days=7)),)
    assert parse("solved<24h", now=NOW).ranges == (Range("solved", "<", NOW - timedelta(hours=24)),)
    assert parse("-created>2w", now=NOW).ranges == (Range("created", ">", NOW - timedelta(weeks=2), True),)


@pytest.mark.parametrize("bad, words", [
    ("status:exploded", "unknown status"), ("priority>bogus", "unknown priority"),
    ("created>yesterday", "not a date"), ("created>2026-13-45", "not a date"), ("status:", "needs a value"),
    ("tags>vip", "compared"), ("x" * (MAX_QUERY_LENGTH + 1), "too long"), (" ".join(["w"] * 40), "too many"),
])
def test_what_cannot_be_searched_is_an_error_saying_why(bad: str, words: str) -> None:
    with pytest.raises(QueryError, match=words):
        parse(bad, now=NOW)


def test_best_effort_for_the_rest() -> None:
    assert parse("(" * 500).empty
    assert parse('"unbalanced quote').text == (Text("unbalanced quote", phrase=True),)
    assert parse("a\x00b").text == (Text("a"), Text("b", prefix=True))
    unknown = parse("foo:bar")
    assert unknown.text == (Text("foo:bar", prefix=True),) and unknown.warnings
    injected = parse('status:open" OR 1=1')
    assert injected.matches == (Match("status", ("open",)),)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_parsing_raises_nothing_but_its_own_error(raw: str) -> None:
    try:
        parse(raw, now=NOW)
    except QueryError:
        pass


SENTINEL = "ZQX"
hostile_text = st.text(max_size=40).map(lambda s: SENTINEL + s)


@settings(max_examples=300, deadline=None)
@given(st.lists(hostile_text, min_size=1, max_size=4), st.sampled_from(sorted(set(FIELDS.values()) - {"priority"})),
       st.booleans())
def test_postgres_rendering_binds_every_value(values: list[str], field: str, negated: bool) -> None:
    sql = _Sql()
    if field.endswith("_id"):
        rendered = _filter(sql, Filter(field, (uuid.uuid4(), None), negated))
    else:
        rendered = _filter(sql, Filter(field, tuple(values), negated))
    text_query = Resolved(tuple(Text(v, phrase=i % 2 == 0) for i, v in enumerate(values)), (), (), ())
    rendered += _tsquery(sql, text_query, {}) or ""
    rendered += _date_filter(sql, DateFilter("created_at", ">", NOW, negated))
    assert SENTINEL not in rendered  # values travel as parameters only
    assert any(SENTINEL in str(p) for p in sql.params)


def _meili_literals(rendered: str) -> list[str]:
    """The string literals of a Meilisearch filter, read the way its parser reads them."""
    out, i = [], 0
    while i < len(rendered):
        if rendered[i] == '"':
            j, chars = i + 1, []
            while rendered[j] != '"':
                if rendered[j] == "\\":
                    j += 1
                chars.append(rendered[j])
                j += 1
            out.append("".join(chars))
            i = j + 1
        else:
            i += 1
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=4), st.booleans())
def test_meilisearch_values_never_leave_their_quotes(values: list[str], negated: bool) -> None:
    rendered = render_filter(Filter("status", tuple(values), negated))
    assert rendered is not None
    assert _meili_literals(rendered) == values
    outside = rendered
    for value in values:
        outside = outside.replace(quote(value), "", 1)
    assert set(outside) <= set("NOT()statusIN[], ")


def test_meilisearch_filters_and_text() -> None:
    assert render_filter(Filter("priority", (2, 3))) == "(priority_rank IN [2, 3])"
    assert render_filter(Filter("assignee_id", (None,), negated=True)) == "NOT (assignee_id IS NULL)"
    assert render_filter(Filter("group_id", ())) == "priority_rank = -1"  # unknown name: nothing
    assert render_filter(Filter("group_id", (), negated=True)) is None
    assert render_date(DateFilter("created_at", ">=", NOW)) == f"created_at >= {NOW.timestamp():.6f}"
    text = Resolved((Text("refund"), Text('credit "note"', phrase=True), Text("spam", negated=True)), (), (), ())
    assert render_text(text) == 'refund "credit  note " -spam'
    with pytest.raises(ValueError):
        render_filter(Filter("password", ("x",)))


def test_meilisearch_settings_payload_is_what_the_client_sends() -> None:
    from meilisearch_python_sdk.models.settings import MeilisearchSettings

    from search.meili import FILTERABLE, settings_payload

    sent = MeilisearchSettings.model_validate(settings_payload(100_000)).model_dump(by_alias=True, exclude_none=True)
    assert sent["searchableAttributes"][:2] == ["subject", "body"]  # a subject match ranks first
    assert sent["rankingRules"][-1] == "updated_at:desc"  # then the newest
    assert sent["typoTolerance"]["minWordSizeForTypos"] == {"oneTypo": 5, "twoTypos": 9}
    assert sent["pagination"] == {"maxTotalHits": 100_000}
    assert set(FILTERABLE) == set(sent["filterableAttributes"])
    # every attribute a filter can name is filterable (names come only from this allowlist)
    from search.meili import ATTRIBUTES
    assert set(ATTRIBUTES.values()) <= set(FILTERABLE)
