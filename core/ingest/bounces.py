"""Delivery reports: counted only with proof of which delivery failed, to whom (VERP).

A report counts when it was sent to the bounce address of one delivery (`support+bounces-<token>@…`,
core.mail.tokens), the token verifies for that delivery's recipient, and its `Final-Recipient`
names that recipient. Then the recipient is marked bouncing (no more mail to it until cleared)
and the report is recorded on the delivery's ticket. Anything else addressed to a bounce address,
or any delivery report without such proof, is quarantined: a forged bounce must not silence a
customer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from core.customers.models import Customer
from core.events import OutboundDelivery
from core.mail.addresses import split_address, support_mailbox
from core.mail.classify import MailKind
from core.mail.tokens import BOUNCE_PREFIX, bounce_delivery_id, verify_bounce_token


@dataclass(frozen=True)
class BounceCheck:
    ticket_id: uuid.UUID | None = None  # a report that counts: record it on this ticket
    refusal: str | None = None  # else why it is quarantined


def bounce_token(rcpt_tos: list[str], mailboxes: dict[str, str]) -> str | None:
    for address in rcpt_tos:
        if support_mailbox(address, mailboxes) is None:
            continue
        _, tag, _ = split_address(address)
        if tag and tag.lower().startswith(BOUNCE_PREFIX):
            return tag.lower()[len(BOUNCE_PREFIX):]
    return None


async def check_bounce(
    session: AsyncSession, *, kind: MailKind, failed_recipients: list[str], rcpt_tos: list[str],
    mailboxes: dict[str, str], secret: bytes,
) -> BounceCheck | None:
    """None when the message is neither a delivery report nor sent to a bounce address."""
    token = bounce_token(rcpt_tos, mailboxes)
    if token is None:
        if kind is MailKind.bounce:
            return BounceCheck(refusal="delivery report not sent to a per-delivery bounce address")
        return None
    delivery_id = bounce_delivery_id(token)
    delivery = await session.get(OutboundDelivery, delivery_id) if delivery_id else None
    if delivery is None or not verify_bounce_token(
        secret, token, delivery_id=delivery.id, recipient=delivery.recipient
    ):
        return BounceCheck(refusal="bounce address token does not name a delivery of ours")
    if kind is not MailKind.bounce:
        return BounceCheck(refusal="mail to a bounce address that is not a delivery report")
    if delivery.recipient not in failed_recipients:
        return BounceCheck(refusal="delivery report's Final-Recipient is not the recipient of that delivery")
    await session.execute(
        update(Customer).where(Customer.email == delivery.recipient).values(bouncing=True)
    )
    delivery.last_error = "bounced: a delivery report came back for this recipient"
    return BounceCheck(ticket_id=delivery.ticket_id)
