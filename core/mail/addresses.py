"""Recipient addresses: which support mailbox (and so which group) a recipient means."""

from __future__ import annotations


def split_address(address: str) -> tuple[str, str | None, str]:
    """`Support+Tag@Example.com` -> ("support", "Tag", "example.com")."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base, plus, tag = local.partition("+")
    return base.lower(), (tag if plus else None), domain.lower()


def support_mailbox(address: str, mailboxes: dict[str, str]) -> str | None:
    """The configured support address this recipient reaches (plus-tags allowed), or None."""
    base, _, domain = split_address(address)
    if not base or not domain:
        return None
    candidate = f"{base}@{domain}"
    return candidate if candidate in mailboxes else None
