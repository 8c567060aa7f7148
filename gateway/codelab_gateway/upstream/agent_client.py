"""The gateway's client of agent-runtime: hand it a client's input, and follow a session's events from a seq.

Both go over one shared aiohttp session. An input answers at once (`InputAccepted`, or a refusal whose code is
the client's error code); a session's events are an SSE stream whose `id:` is each frame's seq.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp
import orjson
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import ValidationError

from codelab_common.auth import INTERNAL_AUTH_HEADER
from codelab_common.protocol import (
    IDLE_EVENT,
    PRINCIPAL_HEADER,
    ApprovalSource,
    ErrorCode,
    InputAccepted,
    TurnInput,
    claim_path,
    events_path,
    input_path,
)
from codelab_common.sse import LineTooLong, iter_sse
from codelab_gateway.core.config import Settings


class AgentUnavailable(Exception):
    """agent-runtime cannot be reached, or failed; the client gets `code` (AGENT_DOWN unless said otherwise)."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.AGENT_DOWN) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InputRefused(Exception):
    """agent-runtime did not take the input (BUSY, UNKNOWN_CALL_ID, a bad frame); `code` is the client's."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AgentClient:
    def __init__(self, http: aiohttp.ClientSession, settings: Settings) -> None:
        self._http = http
        self._base = settings.agent_runtime_url.rstrip("/")
        key = settings.agent_runtime_api_key.get_secret_value()
        self._post_headers = {INTERNAL_AUTH_HEADER: key, "Content-Type": "application/json"}
        self._get_headers = {INTERNAL_AUTH_HEADER: key, "Accept": "text/event-stream"}
        self._max_event_bytes = settings.agent_max_event_bytes
        self._idle_after = f"?idle_after={settings.follow_idle_s:g}"

    @staticmethod
    def create_http_session(settings: Settings) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(
            total=None, connect=settings.agent_connect_timeout_s, sock_read=settings.agent_read_timeout_s
        )
        connector = aiohttp.TCPConnector(limit=settings.agent_max_connections)
        return aiohttp.ClientSession(timeout=timeout, connector=connector)

    async def submit(
        self,
        session_id: str,
        frame: TurnInput,
        tools: list[str] | None,
        headers: Mapping[str, str] | None = None,
        *,
        approval_source: ApprovalSource = ApprovalSource.APPROVAL,
        principal: str | None = None,
    ) -> InputAccepted:
        body = {
            "session_id": session_id,
            "message": frame.model_dump(mode="json", exclude_none=True),
            "tools": tools,
            "approval_source": approval_source,
        }
        sent = {**self._post_headers, **headers} if headers else self._post_headers
        if principal is not None:
            sent = {**sent, PRINCIPAL_HEADER: principal}
        try:
            async with self._http.post(
                self._base + input_path(session_id), data=orjson.dumps(body), headers=sent
            ) as response:
                payload = await response.read()
                if response.status == 200:
                    return InputAccepted.model_validate_json(payload)
                raise _refusal(response.status, payload)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise AgentUnavailable(f"agent-runtime is unreachable: {_describe(exc)}") from None
        except ValidationError:
            raise AgentUnavailable("agent-runtime answered the input in an unknown shape", ErrorCode.INTERNAL) from None

    async def claim(self, session_id: str, principal: str) -> None:
        """Make the session `principal`'s if it is no one's yet; InputRefused (INVALID_SESSION) when it is
        another's."""
        headers = {**self._post_headers, PRINCIPAL_HEADER: principal}
        try:
            async with self._http.post(self._base + claim_path(session_id), headers=headers) as response:
                payload = await response.read()
                if response.status != 200:
                    raise _refusal(response.status, payload)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise AgentUnavailable(f"agent-runtime is unreachable: {_describe(exc)}") from None

    async def follow(
        self, session_id: str, after: int | None, principal: str | None = None
    ) -> AsyncIterator[tuple[int, str]]:
        """The session's frames after seq `after` (None: from the running turn's start), live, until the session has
        been idle `follow_idle_s` (every frame sent, the last one closed a turn); raises AgentUnavailable when
        agent-runtime cannot be reached or the stream breaks."""
        url = self._base + events_path(session_id) + self._idle_after + ("" if after is None else f"&after={after}")
        headers = self._get_headers if principal is None else {**self._get_headers, PRINCIPAL_HEADER: principal}
        try:
            async with self._http.get(url, headers=headers) as response:
                if response.status != 200:
                    raise _unavailable(response.status, await response.read())
                async for event in iter_sse(response.content.iter_any(), max_line=self._max_event_bytes):
                    if event.event == IDLE_EVENT:
                        return
                    if event.id is not None:
                        yield int(event.id), event.data
            raise AgentUnavailable("agent-runtime ended the session's event stream")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise AgentUnavailable(f"agent-runtime is unreachable: {_describe(exc)}") from None
        except (HttpProcessingError, LineTooLong) as exc:  # an event beyond agent_max_event_bytes
            raise AgentUnavailable(f"agent-runtime sent an unreadable stream: {exc}", ErrorCode.INTERNAL) from None


def _refusal(status: int, payload: bytes) -> Exception:
    if status == 401 or status >= 500:
        return _unavailable(status, payload)
    code, message = ErrorCode.INTERNAL, f"agent-runtime refused the input (HTTP {status})"
    try:
        error = orjson.loads(payload).get("error") or {}
        message = str(error.get("message") or message)
        code = ErrorCode(str(error.get("code")))
    except (ValueError, AttributeError):
        pass
    return InputRefused(code, message)


def _unavailable(status: int, payload: bytes) -> AgentUnavailable:
    if status == 401:
        return AgentUnavailable("agent-runtime rejected the gateway's credentials (401)")
    return AgentUnavailable(f"agent-runtime failed with HTTP {status}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "its stream broke off"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "no connection"  # its address is the deployment's business, not the client's
    return type(exc).__name__
