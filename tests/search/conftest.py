from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.search.support import meili_settings
from tests.support.gateway import Running, make_settings, running_gateway

BACKENDS = ["postgres", "meilisearch"]


@pytest.fixture(scope="module", params=BACKENDS)
async def searching(request: pytest.FixtureRequest, database_url: str,
                    tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    """One gateway per module and backend: the same behaviour suite runs on both."""
    overrides = {}
    if request.param == "meilisearch":
        meili = meili_settings()
        if meili is None:
            pytest.skip("Meilisearch: set HELPDESK_TEST_MEILI_URL (and _KEY) to a running server")
        overrides = meili
    settings = make_settings(database_url, tmp_path_factory.mktemp("search"), **overrides)
    async with running_gateway(settings) as running:
        yield running
