"""Imports every model so `Base.metadata` knows the whole schema (alembic, tests)."""

from core.agents.models import Agent, ApiToken
from core.attachments.models import AttachmentBlob, AttachmentChunk
from core.automations.models import Automation, automation_marks
from core.audit.models import TicketAuditLog
from core.customers.models import Customer
from core.events import OutboundDelivery, OutboxEvent
from core.groups.models import Group, group_members
from core.idempotency import IdempotencyKey
from core.ingest.models import InboundMessage
from core.macros.models import Macro
from core.models_base import Base
from core.organizations.models import Organization
from core.secrets import ServerSecret
from core.setup_steps import SetupStep
from core.sla.models import SlaPolicy, TicketSlaTarget
from core.tickets.models import (
    MessageId,
    Tag,
    Ticket,
    TicketAttachment,
    TicketComment,
    ticket_followers,
)
from core.triggers.models import Trigger
from search.models import SearchQueue, SearchTerm, TicketSearch

__all__ = [
    "Agent", "ApiToken", "AttachmentBlob", "AttachmentChunk", "Automation", "Base", "Customer", "Group",
    "IdempotencyKey", "InboundMessage", "Macro", "MessageId", "Organization", "OutboundDelivery", "OutboxEvent",
    "SearchQueue", "SearchTerm", "ServerSecret", "SetupStep", "SlaPolicy", "Tag", "Ticket", "TicketSearch", "TicketSlaTarget",
    "TicketAttachment", "TicketAuditLog", "TicketComment", "Trigger", "automation_marks", "group_members",
    "ticket_followers",
]
