from __future__ import annotations

import uuid

from core.mail.tokens import TOKEN_LENGTH, make_token, reply_address, token_number, verify_token

SECRET = b"s" * 32


def test_token_round_trip_is_bound_to_ticket_and_address() -> None:
    ticket_id = uuid.uuid4()
    token = make_token(SECRET, ticket_number=1234, ticket_id=ticket_id, address="Ann@Mail.test")
    assert len(token) == TOKEN_LENGTH and token == token.lower() and token.isalnum()
    assert token_number(token) == 1234
    assert token_number(token.upper()) == 1234  # MTAs may change the case of local parts
    assert verify_token(SECRET, token, ticket_id=ticket_id, address="ann@mail.test")
    assert not verify_token(SECRET, token, ticket_id=ticket_id, address="eve@mail.test")
    assert not verify_token(SECRET, token, ticket_id=uuid.uuid4(), address="ann@mail.test")
    assert not verify_token(b"x" * 32, token, ticket_id=ticket_id, address="ann@mail.test")


def test_every_flipped_character_fails() -> None:
    ticket_id = uuid.uuid4()
    token = make_token(SECRET, ticket_number=7, ticket_id=ticket_id, address="a@b.test")
    for i in range(8, len(token)):  # the MAC part
        flipped = token[:i] + ("a" if token[i] != "a" else "b") + token[i + 1:]
        assert not verify_token(SECRET, flipped, ticket_id=ticket_id, address="a@b.test")


def test_malformed_tokens() -> None:
    for bad in ("", "abc", "1" * TOKEN_LENGTH, "!" * TOKEN_LENGTH, "a" * (TOKEN_LENGTH + 1)):
        assert token_number(bad) is None
        assert not verify_token(SECRET, bad, ticket_id=uuid.uuid4(), address="a@b.test")


def test_reply_address() -> None:
    assert reply_address("support@example.com", "abc") == "support+abc@example.com"
