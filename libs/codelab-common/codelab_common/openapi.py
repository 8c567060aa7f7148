"""OpenAPI for request bodies a route reads itself, and edits of an app's document.

A route that parses its raw body (to keep its own validation and error codes, or to forward the original bytes)
declares no body parameter, so FastAPI documents none. Such a route passes `openapi_extra=json_body(Model)`, and
the app calls `add_schemas(app, Model)` so that the reference resolves: the document then shows the body's schema
while the route still parses it as before. `edit_openapi` changes the document once, when it is first built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

REF_TEMPLATE = "#/components/schemas/{model}"


def schema_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """A route's `openapi_extra`: a required JSON body whose schema is `model`'s (add it with `add_schemas`)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema_ref(model)}}}}


def add_schemas(app: FastAPI, *models: type[BaseModel]) -> None:
    """Put each model's schema, and those of the models it uses, into the components of the app's document."""

    def add(document: dict[str, Any]) -> None:
        schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            schema = model.model_json_schema(ref_template=REF_TEMPLATE)
            for name, definition in {**schema.pop("$defs", {}), model.__name__: schema}.items():
                if _same(schemas.setdefault(name, definition)) != _same(definition):
                    raise ValueError(f"two different schemas named {name!r} in the OpenAPI document of {app.title}")

    edit_openapi(app, add)


def edit_openapi(app: FastAPI, edit: Callable[[dict[str, Any]], None]) -> None:
    """Have `edit` change the app's document in place when it is first built (it is cached after)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        edit(document)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _same(schema: Any) -> Any:
    """A schema as compared: FastAPI leaves out `"default": null` in the schemas of response models."""
    if isinstance(schema, dict):
        return {key: _same(value) for key, value in schema.items() if not (key == "default" and value is None)}
    if isinstance(schema, list):
        return [_same(value) for value in schema]
    return schema
