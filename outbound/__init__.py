"""Outgoing: the outbox relay (▸ Kafka or in-process), the mailer, templates and transports."""
