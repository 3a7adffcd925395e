"""The API reference: an interactive page from bundled assets, and a document that explains itself."""

from __future__ import annotations

import re

from tests.support.gateway import Running


async def test_docs_page_is_swagger_ui_served_from_our_own_assets(gateway: Running) -> None:
    async with gateway.http("") as client:
        page = await client.get("/docs")
        html = await page.text()
        assert page.status == 200 and "swagger-ui" in html
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        # nothing from another origin: the page works offline
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), html
        for asset in re.findall(r"""(?:src|href)="(/[^"]+)\"""", html):
            response = await client.get(asset)
            assert response.status == 200 and len(await response.read()) > 0, asset
        init = await (await client.get("/docs/init.js")).text()
        assert "/api/v1/openapi.json" in init and "http" not in init


async def test_every_operation_documents_parameters_bodies_and_errors(gateway: Running) -> None:
    async with gateway.http("") as client:
        doc = await (await client.get("/api/v1/openapi.json")).json()
    assert "Authorization: Bearer" in doc["info"]["description"]
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            assert "`" not in op["summary"], where
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == error_ref, where
                    assert response["content"]["application/json"]["example"]["error"]["message"], where
            if path.startswith("/api/v1/") and "security" in op:
                assert {"401", "429"} <= set(op["responses"]), where
            for param in op["parameters"]:
                if param["in"] == "path":
                    assert "404" in op["responses"], where
    create = doc["paths"]["/api/v1/tickets"]["post"]
    examples = create["requestBody"]["content"]["application/json"]["examples"]
    assert any("description" in e["value"] for e in examples.values())
    assert {"409", "422", "403"} <= set(create["responses"])
    listing = {p["name"]: p for p in doc["paths"]["/api/v1/tickets"]["get"]["parameters"]}
    assert listing["status"]["explode"] is True and "several" in listing["status"]["description"]
    assert "-sla_breach_at" in str(listing["sort"]["schema"])
    assert "Allowed to: admin or agent." in create["description"]
