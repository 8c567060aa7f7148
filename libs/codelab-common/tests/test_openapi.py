"""`json_body` and `add_schemas`: a body a route reads itself appears in the OpenAPI document with its schema."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel

from codelab_common.openapi import add_schemas, json_body


class Part(BaseModel):
    text: str


class Body(BaseModel):
    parts: list[Part]


def _app(*models: type[BaseModel]) -> FastAPI:
    app = FastAPI()

    @app.post("/raw", openapi_extra=json_body(Body))
    async def raw(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    add_schemas(app, *models)
    return app


def test_the_body_and_the_models_it_uses_are_components() -> None:
    document = _app(Body).openapi()

    body = document["paths"]["/raw"]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"] == {"application/json": {"schema": {"$ref": "#/components/schemas/Body"}}}
    schemas = document["components"]["schemas"]
    assert schemas["Body"]["properties"]["parts"]["items"] == {"$ref": "#/components/schemas/Part"}
    assert schemas["Part"]["required"] == ["text"]


def test_two_different_schemas_of_one_name_are_refused() -> None:
    class Part(BaseModel):
        size: int

    with pytest.raises(ValueError, match="two different schemas named 'Part'"):
        _app(Body, Part).openapi()
