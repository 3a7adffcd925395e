from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.actor import Actor
from core.crud import Crud
from core.errors import Conflict
from core.macros.models import Macro
from core.macros.schemas import Action, actions_to_update
from core.tickets.changes import ticket_changes
from core.tickets.models import Ticket

macro_crud: Crud[Macro] = Crud(Macro, "macro")


async def apply_macro(session: AsyncSession, ticket: Ticket, macro: Macro, actor: Actor) -> Ticket:
    """The macro's fields and comment as one audited update of the ticket."""
    if not macro.active:
        raise Conflict("this macro is inactive")
    update = actions_to_update([Action.model_validate(a) for a in macro.actions])
    return await ticket_changes.update(session, ticket, update, actor, via=f"macro:{macro.id}")
