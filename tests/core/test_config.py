from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.config import Settings, parse_support_addresses
from core.pagination import BadCursor, Cursor, clamp_limit


def test_support_addresses_map_to_groups() -> None:
    assert parse_support_addresses("Support@Example.com=Support, billing@x.test = Billing,help@x.test") == {
        "support@example.com": "Support", "billing@x.test": "Billing", "help@x.test": "Support",
    }
    for bad in ("", "nobody", "@x.test=G"):
        with pytest.raises(ValueError):
            parse_support_addresses(bad)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HELPDESK_ROLES", "smtp,api")
    monkeypatch.setenv("HELPDESK_SMTP_PORT", "2626")
    monkeypatch.setenv("HELPDESK_SUPPORT_ADDRESSES", "help@x.test=Help")
    settings = Settings()
    assert settings.roles == ("smtp", "api")
    assert settings.smtp_port == 2626
    assert settings.support_mailboxes == {"help@x.test": "Help"}
    assert str(settings.data_dir) == "var"


def test_settings_from_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "helpdesk.toml").write_text('http_port = 9090\nsupport_addresses = "a@b.test=A"\n')
    settings = Settings()
    assert settings.http_port == 9090 and settings.support_mailboxes == {"a@b.test": "A"}


def test_bad_roles_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELPDESK_ROLES", "smtp,dancing")
    with pytest.raises(ValidationError):
        Settings()


def test_cursor_round_trip_and_garbage() -> None:
    import uuid
    from datetime import datetime, timezone

    cursor = Cursor(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc), uuid.uuid4())
    assert Cursor.decode(cursor.encode()) == cursor
    for garbage in ("", "abc", "!!!!", "W10"):
        with pytest.raises(BadCursor):
            Cursor.decode(garbage)
    assert [clamp_limit(v) for v in (None, 0, 50, 1000)] == [25, 1, 50, 100]
