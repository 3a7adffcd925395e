"""The sandbox admins' templates (trigger notifications) run in: one definition for the check
when a trigger is written and for the mailer that renders it."""

from __future__ import annotations

from jinja2 import ChainableUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment


def user_environment() -> SandboxedEnvironment:
    """Sandboxed; a missing name renders empty instead of failing the mail. Not autoescaped:
    the result is plain text, escaped where it lands in the HTML part."""
    return SandboxedEnvironment(autoescape=False, undefined=ChainableUndefined)


def template_problem(source: str) -> str | None:
    """Why a template cannot be used (its syntax error), or None."""
    try:
        user_environment().parse(source)
    except TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    return None
