from __future__ import annotations

from core.crud import Crud
from core.triggers.models import Trigger

trigger_crud: Crud[Trigger] = Crud(Trigger, "trigger")
