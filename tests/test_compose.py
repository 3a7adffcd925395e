"""compose.yaml is documentation that runs: every service, volume, command and setting it
names must exist (there is no `docker compose config` here, so this checks it instead)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from core.config import Settings
from gateway.cli import build_parser

COMPOSE = Path(__file__).resolve().parent.parent / "compose.yaml"


def load() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def gateway_services(doc: dict) -> dict[str, dict]:
    return {name: s for name, s in doc["services"].items() if s.get("build")}


def test_every_service_has_an_image_or_a_build_and_known_dependencies() -> None:
    doc = load()
    services = doc["services"]
    assert {"postgres", "kafka", "meilisearch", "mailpit"} <= set(services)
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name
        for dependency in service.get("depends_on") or {}:
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if not source.startswith(("/", ".")):
                assert source in (doc.get("volumes") or {}), f"{name} uses undeclared volume {source}"
        for port in service.get("ports") or []:
            # a host port range: one port per replica
            assert re.fullmatch(r"\d+(-\d+)?:\d+", str(port)), port


def test_gateway_commands_parse_and_their_roles_split_the_work() -> None:
    roles: list[str] = []
    for name, service in gateway_services(load()).items():
        command = service["command"]
        assert command[0] == "helpdesk", name
        args = build_parser().parse_args(command[1:])  # exits (fails the test) on unknown options
        assert args.command == "serve"
        roles += Settings(roles=args.roles).roles
    assert sorted(roles) == sorted(["smtp", "api", "worker", "scheduler"])  # each role once


def test_every_setting_exists_and_points_at_a_service() -> None:
    doc = load()
    services = doc["services"]
    fields = set(Settings.model_fields)
    for name, service in gateway_services(doc).items():
        env = service["environment"]
        for variable in env:
            assert variable.startswith("HELPDESK_") and variable[9:].lower() in fields, f"{name}: {variable}"
        settings = Settings(**{k[9:].lower(): v for k, v in env.items()})
        hosts = [
            urlsplit(settings.database_url or "").hostname,
            settings.kafka_bootstrap.rsplit(":", 1)[0],
            urlsplit(settings.meili_url or "").hostname,
            settings.smtp_relay.rsplit(":", 1)[0],
            urlsplit(settings.redis_url or "").hostname,
        ]
        for host in hosts:
            assert host in services, f"{name} points at {host}, which is not a service"
    assert "1025" in load()["services"]["ingress"]["environment"]["HELPDESK_SMTP_RELAY"]
