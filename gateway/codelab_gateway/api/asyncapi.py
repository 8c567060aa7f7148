"""The AsyncAPI 3.0 document of the client WebSockets, built from the socket routes and the protocol's frame models.

It describes the gateway: `receive` operations are the frames a client sends, `send` operations those it gets. Each
route of the socket router is one channel; its dialect decides which outbound frames that channel carries.
`scripts/gen_api_docs.py` writes it to `docs/api/websocket.asyncapi.json`.
"""

from __future__ import annotations

import inspect
from typing import Any, get_args

from fastapi import FastAPI
from fastapi.routing import APIWebSocketRoute
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from codelab_common.openapi import REF_TEMPLATE
from codelab_common.protocol import SESSION_ID_PATTERN, InboundFrame, OutboundFrame
from codelab_gateway.api import ws
from codelab_gateway.core.config import Settings
from codelab_gateway.transport.connection import IDE_CLIENT, POLICY_VIOLATION, STREAM_CLIENT, ClientProfile
from codelab_gateway.transport.dialects import IdeDialect
from codelab_gateway.transport.inbound import IGNORED_FRAME_TYPES

ASYNCAPI_VERSION = "3.0.0"
WS_BINDING_VERSION = "0.1.0"

PROFILES: dict[Any, ClientProfile] = {ws.stream_socket: STREAM_CLIENT, ws.ide_socket: IDE_CLIENT}
"""The client each socket route serves."""

SHOWN_FRAME_TYPES: dict[str, frozenset[str]] = {
    IdeDialect.name: frozenset({"assistant_message"}) | IdeDialect.PASSED_THROUGH
}
"""Outbound frame types a dialect lets through; a dialect not named here sends every type."""

PARAMETERS = {
    "session_id": {
        "description": f"The session; matches `{SESSION_ID_PATTERN}`. Any other id gets an `INVALID_SESSION` error "
        f"frame and close code {POLICY_VIOLATION}.",
        "examples": ["s-1"],
    }
}


def asyncapi_document(app: FastAPI) -> dict[str, Any]:
    inbound, outbound = _frame_models(InboundFrame), _frame_models(OutboundFrame)
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = [(model, "validation") for model in inbound]
    modes += [(model, "serialization") for model in outbound]
    refs, definitions = models_json_schema(modes, ref_template=REF_TEMPLATE)
    messages = {_frame_type(model): _message(model, refs[(model, mode)]) for model, mode in modes}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for route in ws.router.routes:
        if not isinstance(route, APIWebSocketRoute):
            continue
        profile = PROFILES[route.endpoint]
        shown = SHOWN_FRAME_TYPES.get(profile.dialect)
        sent = [_frame_type(model) for model in outbound if shown is None or _frame_type(model) in shown]
        received = [_frame_type(model) for model in inbound]
        name = profile.dialect
        channels[name] = _channel(route, profile, received + sent)
        operations[f"{name}_client_frames"] = _operation("receive", name, received, "Frames the client sends")
        operations[f"{name}_server_frames"] = _operation("send", name, sent, "Frames the gateway sends the client")
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": f"{app.title} client WebSockets",
            "version": app.version,
            "description": "JSON text frames between a client (the CodeLab IDE or the `codelab` terminal client) and "
            "the gateway. `receive` operations are what the gateway receives from the client, `send` operations "
            "what it sends. The contract in prose: docs/protocol.md.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": f"{Settings.model_fields['host'].default}:{Settings.model_fields['port'].default}",
                "protocol": "ws",
                "description": "The gateway with its default settings",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": definitions["$defs"], "messages": messages, "parameters": PARAMETERS},
    }


def _frame_models(frame: Any) -> list[type[BaseModel]]:
    """The models of a discriminated frame union (`Annotated[A | B, Field(discriminator=...)]`)."""
    union, *_ = get_args(frame)
    return list(get_args(union))


def _frame_type(model: type[BaseModel]) -> str:
    frame_type: str = model.model_fields["type"].default
    return frame_type


def _message(model: type[BaseModel], payload: dict[str, Any]) -> dict[str, Any]:
    return {"name": _frame_type(model), "title": model.__name__, "payload": payload}


def _channel(route: APIWebSocketRoute, profile: ClientProfile, frame_types: list[str]) -> dict[str, Any]:
    default_tools = ", ".join(profile.default_tools) if profile.default_tools is not None else "every tool"
    ignored = ", ".join(f"`{frame_type}`" for frame_type in sorted(IGNORED_FRAME_TYPES))
    return {
        "address": route.path,
        "title": f"{profile.dialect} dialect",
        "description": f"{inspect.getdoc(route.endpoint)}\n\nAlso accepted from the client and ignored: {ignored}.",
        "parameters": {name: {"$ref": f"#/components/parameters/{name}"} for name in route.param_convertors},
        "messages": {frame_type: {"$ref": f"#/components/messages/{frame_type}"} for frame_type in frame_types},
        "bindings": {
            "ws": {
                "bindingVersion": WS_BINDING_VERSION,
                "query": {
                    "type": "object",
                    "properties": {
                        "tools": {
                            "type": "string",
                            "description": "Comma-separated names (model or wire names) of the tools the client "
                            "executes; the model is offered only those, an empty value offers none, an unknown name "
                            f"gets `INVALID_FORMAT` and close code {POLICY_VIOLATION}. Without it: {default_tools}.",
                        }
                    },
                },
            }
        },
    }


def _operation(action: str, channel: str, frame_types: list[str], summary: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{frame_type}"} for frame_type in frame_types],
    }
