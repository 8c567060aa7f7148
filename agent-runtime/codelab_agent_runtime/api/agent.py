"""A session's inputs and its event stream, and the seed's one-step stream built on the two.

- `POST /agent/sessions/{id}/input`: one input; answers `InputAccepted` at once, or an error envelope whose code is
  the client's (409 BUSY, 404 UNKNOWN_CALL_ID).
- `GET /agent/sessions/{id}/events?after=N`: the session's frames after seq N as SSE, then the live ones.
- `POST /agent/message/stream`: one input and the frames of the step it starts, then `event: done`.

Streams get a `: keep-alive` comment every `sse_keep_alive_s` of silence. A caller that leaves a stream only stops
following it: the turn runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from pydantic_core import from_json

from codelab_agent_runtime.api.deps import owned_session
from codelab_agent_runtime.core.config import Settings
from codelab_agent_runtime.store.sessions import Event
from codelab_agent_runtime.turns.feed import Feeds
from codelab_agent_runtime.turns.runner import InputRefused, Submission, Turns
from codelab_common import tracing
from codelab_common.http_errors import error_response
from codelab_common.openapi import json_body
from codelab_common.protocol import (
    DONE_EVENT,
    IDLE_EVENT,
    MAX_SEQ,
    MESSAGE_EVENT,
    AgentRequest,
    ErrorCode,
    ErrorFrame,
    InputAccepted,
    StepDone,
    StepStatus,
)
from codelab_common.sse import EventStreamResponse, encode_event

router = APIRouter(tags=["agent"])

log = structlog.get_logger(__name__)

REFUSED_STATUS = {"BUSY": 409, "UNKNOWN_CALL_ID": 404}
FAILED = "agent-runtime failed to take this input; try again."


async def _read(request: Request, session_id: str | None = None) -> AgentRequest:
    """The body as JSON whatever its Content-Type says, so a hand-written `curl -d` works too.

    Both routes parse with pydantic's JSON parser, which refuses nesting over 200 levels (a 400 INVALID_FORMAT):
    whatever it accepts, orjson can write back into the session's log (it stops at 255)."""
    raw = await request.body()
    try:
        body = AgentRequest.model_validate_json(raw) if session_id is None else _with_session(raw, session_id)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=raw) from None
    structlog.contextvars.bind_contextvars(session_id=body.session_id)
    tracing.annotate({"codelab.session_id": body.session_id, "codelab.step": body.message.type})
    return body


def _with_session(raw: bytes, session_id: str) -> AgentRequest:
    try:
        data = from_json(raw)
    except ValueError:
        return AgentRequest.model_validate_json(raw)  # not JSON, or nested too deep: raises the parser's error
    if isinstance(data, dict) and "session_id" not in data:
        data = {**data, "session_id": session_id}
    body = AgentRequest.model_validate(data)
    return body.model_copy(update={"session_id": session_id})


@router.post(
    "/agent/sessions/{session_id}/input",
    response_model=InputAccepted,
    openapi_extra=json_body(AgentRequest),
    responses={
        409: {"description": "BUSY"},
        404: {"description": "UNKNOWN_CALL_ID or INVALID_SESSION"},
        503: {"description": "INTERNAL: the input could not be taken (e.g. the database failed); try again"},
    },
    dependencies=[Depends(owned_session)],
)
async def session_input(session_id: str, request: Request) -> InputAccepted | Response:
    """Take a user_message, tool_result or cancel for the session; the frames it causes follow on its events."""
    body = await _read(request, session_id)
    turns: Turns = request.app.state.turns
    try:
        submission = await turns.submit(body)
    except InputRefused as exc:
        return error_response(REFUSED_STATUS.get(exc.code.value, 409), exc.message, "invalid_request_error", exc.code)
    except Exception:
        log.exception("step_failed", session_id=session_id)
        return error_response(503, FAILED, "server_error", ErrorCode.INTERNAL)
    return submission.accepted


@router.get(
    "/agent/sessions/{session_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "`message` events with `id:` the seq"},
        404: {"description": "INVALID_SESSION: the session is another principal's"},
    },
    dependencies=[Depends(owned_session)],
)
async def session_events(
    session_id: str,
    request: Request,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    idle_after: Annotated[float | None, Query(ge=0, le=86400)] = None,
) -> StreamingResponse:
    """Every frame after seq `after`, then the live ones. Without `after`: from the running turn's first frame, or
    from now when no turn runs. `idle_after` (seconds): end with an `idle` event once the session has been idle that
    long (every frame sent, the last one closed a turn)."""
    turns: Turns = request.app.state.turns
    feeds: Feeds = request.app.state.feeds
    settings: Settings = request.app.state.settings
    start = after if after is not None else await turns.start_seq(session_id)
    return EventStreamResponse(_follow(feeds, session_id, start, idle_after), keep_alive_s=settings.sse_keep_alive_s)


async def _follow(feeds: Feeds, session_id: str, after: int, idle_after_s: float | None) -> AsyncIterator[bytes]:
    """`id:` is the seq, so a reader that lost the stream can name where to go on (SSE's Last-Event-ID)."""
    async for batch in feeds.batches(session_id, after, idle_after_s=idle_after_s):
        yield b"".join(encode_event(text, MESSAGE_EVENT, seq) for seq, text in batch)
    yield encode_event(b"{}", IDLE_EVENT)


@router.post(
    "/agent/message/stream",
    response_class=StreamingResponse,
    openapi_extra=json_body(AgentRequest),
    responses={200: {"content": {"text/event-stream": {}}, "description": "`message` events, then one `done`"}},
)
async def message_stream(request: Request) -> StreamingResponse:
    """Each frame of the step the input starts is an `event: message` whose data is the frame's JSON; `event: done`
    (StepDone) closes. Leaving early does not stop the turn; a `cancel` does."""
    body = await _read(request)
    turns: Turns = request.app.state.turns
    feeds: Feeds = request.app.state.feeds
    settings: Settings = request.app.state.settings
    return EventStreamResponse(_one_step(turns, feeds, body), keep_alive_s=settings.sse_keep_alive_s)


async def _one_step(turns: Turns, feeds: Feeds, body: AgentRequest) -> AsyncIterator[bytes]:
    try:
        submission = await turns.submit(body)
    except InputRefused as exc:
        yield _error(ErrorFrame.of(exc.code, exc.message, call_id=exc.call_id))
        yield _done(StepDone(status=StepStatus.FAILED, pending_call_ids=exc.pending))
        return
    except Exception:
        log.exception("step_failed", session_id=body.session_id)
        yield _error(ErrorFrame.of(ErrorCode.INTERNAL, FAILED))
        yield _done(StepDone(status=StepStatus.FAILED))
        return
    async for event in _step_frames(feeds, body.session_id, submission):
        yield event


async def _step_frames(feeds: Feeds, session_id: str, submission: Submission) -> AsyncIterator[bytes]:
    step = submission.step
    if step is None:
        written, cursor = submission.written_seq, submission.accepted.after_seq
        if written is not None and written > cursor:
            async with contextlib.aclosing(feeds.follow(session_id, cursor)) as own:  # what the input itself wrote
                async for seq, text in own:
                    yield encode_event(text, MESSAGE_EVENT)
                    if seq >= written:
                        break
        status = StepStatus.AWAITING_TOOL_RESULTS if submission.pending else StepStatus.COMPLETED
        yield _done(StepDone(status=status, pending_call_ids=submission.pending))
        return
    cursor = submission.accepted.after_seq
    events = feeds.follow(session_id, cursor)
    following: asyncio.Future[Event] | None = None
    try:
        # Follow until the step has ended and its last frame is sent; a step that ends without a frame (it lost
        # its lease) must not leave the stream waiting for one.
        while not step.done():
            following = asyncio.ensure_future(anext(events))
            waited: list[asyncio.Future[Any]] = [following, step]
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                break
            cursor, text = following.result()
            following = None
            yield encode_event(text, MESSAGE_EVENT)
        last_seq = step.result().last_seq
        if cursor < last_seq:
            await _stop(following, events)
            following, events = None, feeds.follow(session_id, cursor)
            async for seq, text in events:
                yield encode_event(text, MESSAGE_EVENT)
                if seq >= last_seq:
                    break
    finally:
        await _stop(following, events)
    yield _done(step.result().done)


async def _stop(following: asyncio.Future[Event] | None, events: AsyncGenerator[Event]) -> None:
    if following is not None and not following.done():
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await following
    await events.aclose()


def _error(frame: ErrorFrame) -> bytes:
    return encode_event(frame.model_dump_json(exclude_none=True), MESSAGE_EVENT)


def _done(done: StepDone) -> bytes:
    return encode_event(done.model_dump_json(), DONE_EVENT)
