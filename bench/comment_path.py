"""One JSON API comment through the core call the HTTP handler makes (its whole transaction),
timed in the source tree of the working directory: Python CPU per comment and wall time.
To compare a change, run it from the old tree and the new one in turn, a few times each
(the machine may be shared):

    (cd OLD_TREE && /path/to/.venv/bin/python /path/to/bench/comment_path.py 2000)
    .venv/bin/python bench/comment_path.py 2000
"""
import asyncio, os, statistics, sys, tempfile, time, uuid
from pathlib import Path
sys.path.insert(0, os.getcwd())
from core.actor import Actor
from core.db import Database
from core.enums import AgentRole, AuthorType
from core.migrate import upgrade
from core.tickets.schemas import CommentIn, TicketCreate
from core.agents.service import agent_service
from tests.support.postgres import create_database, postgres_server

async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, postgres_server(Path(tmp) / "pg") as server:
        url = await create_database(server); await upgrade(url)
        db = Database(url, pool_size=2)
        from core.tickets.changes import ticket_changes
        async with db.unit_of_work() as s:
            try:  # the default notification triggers, as a deployment's first start seeds them
                from core.triggers.defaults import seed_default_triggers
            except ImportError:  # a tree from before they existed
                pass
            else:
                await seed_default_triggers(s)
            agent = await agent_service.create(s, email="bench@agents.test", name="B", role=AgentRole.agent)
            actor = Actor(AuthorType.agent, agent.id, AgentRole.agent)
            t = await ticket_changes.create(s, TicketCreate.model_validate({"subject": "x", "comment": {"body": "y"}, "requester": {"email": "r@c.test"}}), actor)
            ref = str(t.id)
        if hasattr(ticket_changes, "add_comment") and "uploads" in ticket_changes.add_comment.__code__.co_varnames:
            call = lambda s, d: ticket_changes.add_comment(s, ref, d, actor)
            label = "one change path"
        else:
            from core.tickets.api_comment import add_api_comment
            call = lambda s, d: add_api_comment(s, ref, d, actor)
            label = "base (edge-chosen driver path)"
        data = CommentIn(body="Thanks, we have ordered a new fuser unit. [bench]")
        times = []
        cpu0 = None
        for i in range(n):
            if i == n // 10:
                cpu0 = time.process_time()
            t0 = time.perf_counter()
            async with db.unit_of_work() as s:
                await call(s, data)
            times.append((time.perf_counter() - t0) * 1e6)
        cpu = (time.process_time() - cpu0) / (n - n // 10) * 1e6
        times = times[n // 10:]
        times.sort()
        print(f"{label}: python CPU {cpu:.0f} us/comment; wall median {statistics.median(times):.0f} us, p90 {times[int(len(times) * 0.9)]:.0f} us ({len(times)} comments)")
        await db.dispose()

asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))
