"""Enumerations of the contract, shared by models, schemas and events."""

from __future__ import annotations

import enum


class TicketStatus(str, enum.Enum):
    new = "new"
    open = "open"
    pending = "pending"
    on_hold = "on_hold"
    solved = "solved"
    closed = "closed"


class TicketPriority(str, enum.Enum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class TicketType(str, enum.Enum):
    question = "question"
    incident = "incident"
    problem = "problem"
    task = "task"


class Channel(str, enum.Enum):
    email = "email"
    web = "web"
    api = "api"
    chat = "chat"
    phone = "phone"


class AgentRole(str, enum.Enum):
    admin = "admin"
    agent = "agent"
    light_agent = "light_agent"


class Visibility(str, enum.Enum):
    public = "public"
    internal = "internal"


class AuthorType(str, enum.Enum):
    customer = "customer"
    agent = "agent"
    system = "system"


class InboundStatus(str, enum.Enum):
    pending = "pending"
    processed = "processed"
    duplicate = "duplicate"
    quarantined = "quarantined"
    dropped = "dropped"


class MessageDirection(str, enum.Enum):
    inbound = "inbound"
    outbound = "outbound"


class DeliveryStatus(str, enum.Enum):
    pending = "pending"
    sent = "sent"
    failed = "failed"
