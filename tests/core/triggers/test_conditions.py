"""Trigger conditions, evaluated without a database."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from core.enums import AuthorType, Visibility
from core.events import CommentFacts
from core.triggers.conditions import Facts, matches, via_kind
from core.triggers.schemas import Condition, Conditions, TriggerAction, TriggerIn

GROUP = str(uuid.uuid4())


def facts(**overrides: object) -> Facts:
    ticket = {
        "status": "open", "priority": "high", "type": None, "channel": "email", "group_id": GROUP,
        "assignee_id": None, "requester_id": str(uuid.uuid4()), "organization_id": None,
        "tags": ["vip", "billing"], "subject": "Invoice WRONG again",
    }
    values: dict = dict(
        event="updated", ticket=ticket, changes={"status": ("new", "open"), "priority": ("normal", "high")},
        comment=CommentFacts(visibility=Visibility.public, author_type=AuthorType.customer, body="Please REFUND me"),
        via="email", requester_email="Rita@Customer.TEST",
    )
    values.update(overrides)
    return Facts(**values)  # type: ignore[arg-type]


def when(*all_: tuple, any_: tuple = ()) -> Conditions:
    return Conditions(
        all=[Condition(field=f, operator=o, value=v) for f, o, v in all_],
        any=[Condition(field=f, operator=o, value=v) for f, o, v in any_],
    )


@pytest.mark.parametrize(("condition", "expected"), [
    (("status", "is", "open"), True),
    (("status", "is_not", "open"), False),
    (("event", "is", "created"), False),
    (("via", "is", "email"), True),
    (("group_id", "is", GROUP), True),
    (("assignee_id", "is", None), True),
    (("type", "is", None), True),
    (("subject", "contains", "wrong"), True),  # case-insensitive
    (("subject", "not_contains", "refund"), True),
    (("comment_text", "contains", "refund"), True),
    (("comment_visibility", "is", "public"), True),
    (("comment_author_type", "is", "agent"), False),
    (("requester_email", "is", "rita@customer.test"), True),
    (("requester_domain", "is", "customer.test"), True),
    (("tags", "contains", "vip"), True),
    (("tags", "not_contains", "vip"), False),
    (("tags", "includes_any", ["spam", "billing"]), True),
    (("tags", "includes_none", ["spam", "billing"]), False),
    (("status", "changed", None), True),
    (("subject", "changed", None), False),
    (("status", "changed_to", "open"), True),
    (("status", "changed_from", "new"), True),
    (("status", "changed_from", "pending"), False),
    (("priority", "greater_than", "normal"), True),
    (("priority", "less_than", "high"), False),
    (("priority", "less_than", "urgent"), True),
])
def test_each_operator(condition: tuple, expected: bool) -> None:
    assert matches(when(condition), facts()) is expected


def test_all_and_any() -> None:
    assert matches(when(("status", "is", "open"), any_=(("priority", "is", "low"), ("tags", "contains", "vip"))), facts())
    assert not matches(when(("status", "is", "open"), any_=(("priority", "is", "low"),)), facts())
    assert matches(when(any_=(("priority", "is", "low"), ("status", "is", "open"))), facts())
    assert not matches(Conditions(), facts())  # no conditions: never, not always


def test_no_comment_in_the_change() -> None:
    assert not matches(when(("comment_text", "contains", "refund")), facts(comment=None))
    assert matches(when(("comment_text", "not_contains", "refund")), facts(comment=None))


def test_via_kinds() -> None:
    assert [via_kind(v) for v in ("email", "api:update_many", "macro:1", "trigger", "auto_close")] == [
        "email", "api", "macro", "trigger", "automation",
    ]


@pytest.mark.parametrize("bad", [
    {"field": "tags", "operator": "is", "value": "vip"},
    {"field": "status", "operator": "is", "value": "exploded"},
    {"field": "subject", "operator": "less_than", "value": "x"},
    {"field": "via", "operator": "changed", "value": None},
    {"field": "tags", "operator": "includes_any", "value": "vip"},
    {"field": "group_id", "operator": "is", "value": "not-a-uuid"},
    {"field": "nope", "operator": "is", "value": 1},
])
def test_conditions_that_cannot_work_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        Condition.model_validate(bad)


@pytest.mark.parametrize("bad", [
    {"field": "status", "value": "exploded"},
    {"field": "notify_group", "value": {"subject": "Hi {{ ticket.number", "body": "x"}},
    {"field": "notify_requester", "value": "just text"},
    {"field": "add_tags", "value": ["has space"]},
    {"field": "add_tags", "value": [True]},  # was a 500 (found by schemathesis)
    {"field": "comment", "value": {"not": "text"}},
])
def test_actions_that_cannot_work_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        TriggerAction.model_validate(bad)


def test_a_valid_trigger() -> None:
    trigger = TriggerIn.model_validate({
        "title": "Urgent", "conditions": {"all": [{"field": "subject", "operator": "contains", "value": "urgent"}]},
        "actions": [{"field": "priority", "value": "urgent"}, {"field": "assignee_id", "value": "round_robin"},
                    {"field": "notify_group", "value": {"subject": "#{{ ticket.number }}", "body": "{{ comment.body }}"}}],
    })
    assert [a.field for a in trigger.actions] == ["priority", "assignee_id", "notify_group"]
