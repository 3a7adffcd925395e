from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.outbound.support import SmtpSink, Tansu


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    server = await SmtpSink().start()
    yield server
    await server.stop()


@pytest.fixture
def tansu() -> Iterator[Tansu]:
    broker = Tansu().start()
    yield broker
    broker.stop()
