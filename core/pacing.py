"""Background work that steps aside for more urgent work, but only so far."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def step_aside(
    defer_while: Callable[[], bool], *, worked: float, share: float,
    stopping: Callable[[], bool], poll: float = 0.002,
) -> None:
    """Waits while `defer_while()` holds, but never so long that a worker whose last turn took
    `worked` seconds gets less than `share` of the time: a flood of urgent work delays it,
    it cannot stop it. Returns at once when `stopping()`."""
    loop = asyncio.get_running_loop()
    until = loop.time() + worked * (1 - share) / share
    while defer_while() and not stopping() and loop.time() < until:
        await asyncio.sleep(poll)


async def pause(wake: asyncio.Event, seconds: float, *, stopping: Callable[[], bool]) -> None:
    """Until `wake` is set or `seconds` have passed; not at all when `stopping()`. A loop clears
    `wake` before each batch (not after), so a wake-up that came during the batch ends the
    pause at once rather than being cleared away."""
    if stopping():
        return
    try:
        await asyncio.wait_for(wake.wait(), seconds)
    except TimeoutError:
        pass
