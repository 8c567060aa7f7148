"""`install_error_handlers` documents the errors it and the shared middleware answer (`document_errors`): 400 where
FastAPI declares its 422, 413 with a body, 401 and the key's security scheme but on /health and /ready, the envelope
as every error's content; and a 405 keeps its `Allow` header."""

from __future__ import annotations

from typing import Any

import aiohttp
from fastapi import FastAPI, Query
from pydantic import BaseModel

from codelab_common.health import health_router
from codelab_common.http_errors import install_error_handlers
from codelab_common.testing import serve_app

ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}


class Item(BaseModel):
    name: str


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(health_router("demo", "demo"))

    @app.post("/items", responses={409: {"description": "taken"}})
    async def create(item: Item) -> Item:
        return item

    @app.get("/items/{name}", responses={404: {"description": "no such item"}})
    async def read(name: str, depth: int = Query(0, ge=0)) -> Item:
        return Item(name=name)

    return app


def _responses(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    responses: dict[str, Any] = document["paths"][path][method]["responses"]
    return responses


def test_every_error_is_declared_in_the_envelope() -> None:
    document = _app().openapi()
    create = _responses(document, "/items", "post")
    read = _responses(document, "/items/{name}", "get")
    assert set(create) == {"200", "400", "401", "409", "413"}
    assert set(read) == {"200", "400", "401", "404"}
    for response in [*(r for s, r in create.items() if s != "200"), *(r for s, r in read.items() if s != "200")]:
        assert response["content"] == ENVELOPE
    assert read["404"]["description"] == "no such item"
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["ErrorResponse"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    assert schemas["ErrorDetail"]["required"] == ["message", "type", "code"]
    assert document["components"]["securitySchemes"]["internalAuth"]["name"] == "X-Internal-Auth"
    assert document["paths"]["/items"]["post"]["security"] == [{"internalAuth": []}]


def test_health_and_ready_are_open() -> None:
    document = _app().openapi()
    for path in ("/health", "/ready"):
        operation = document["paths"][path]["get"]
        assert "401" not in operation["responses"] and "security" not in operation


def test_the_document_is_built_once() -> None:
    app = _app()
    assert app.openapi() is app.openapi()


async def test_a_405_names_the_allowed_methods() -> None:
    async with serve_app(_app()) as url, aiohttp.ClientSession() as http, http.delete(f"{url}/items") as response:
        body = await response.json()
    assert response.status == 405 and response.headers["Allow"] == "POST"
    assert body["error"]["code"] == "METHOD_NOT_ALLOWED"
