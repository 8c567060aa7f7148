"""`POST /agent/message/stream`: run one step of a session and stream its frames as Server-Sent Events.

While the step waits (for the model's next token, or for llm-proxy to finish a tool call it holds back) the stream
gets a `: keep-alive` comment every `sse_keep_alive_s`. If the caller closes the request, the step's generator is
cancelled where it waits, which closes its request to llm-proxy (and llm-proxy's to the model server). The session
id is bound into the log context, and onto the step's span, for the rest of the request.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from codelab_agent_runtime.core.config import Settings
from codelab_agent_runtime.services.agent import AgentService
from codelab_common import tracing
from codelab_common.openapi import json_body
from codelab_common.protocol import AgentRequest
from codelab_common.sse import EventStreamResponse

router = APIRouter(tags=["agent"])


@router.post(
    "/agent/message/stream",
    response_class=StreamingResponse,
    openapi_extra=json_body(AgentRequest),
    responses={200: {"content": {"text/event-stream": {}}, "description": "`message` events, then one `done`"}},
)
async def message_stream(request: Request) -> StreamingResponse:
    """Each outbound frame is an `event: message` whose data is the frame's JSON; `event: done` (StepDone) closes.

    The body is read as JSON whatever its Content-Type says, so a hand-written `curl -d` works too.
    """
    raw = await request.body()
    try:
        body = AgentRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=raw) from None
    structlog.contextvars.bind_contextvars(session_id=body.session_id)
    tracing.annotate({"codelab.session_id": body.session_id, "codelab.step": body.message.type})
    agent: AgentService = request.app.state.agent
    settings: Settings = request.app.state.settings
    return EventStreamResponse(agent.run_step(body), keep_alive_s=settings.sse_keep_alive_s)
