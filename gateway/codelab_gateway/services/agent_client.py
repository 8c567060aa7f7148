"""The gateway's client of agent-runtime: one step (`POST /agent/message/stream`) as a stream of SSE events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp
import orjson
from aiohttp.http_exceptions import HttpProcessingError

from codelab_common.auth import INTERNAL_AUTH_HEADER
from codelab_common.protocol import ErrorCode
from codelab_common.sse import SSEEvent, iter_sse
from codelab_gateway.core.config import Settings

STREAM_PATH = "/agent/message/stream"


class AgentStepError(Exception):
    """agent-runtime could not run the step; `code` is the error frame's code the client gets."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AgentClient:
    """Streams steps from agent-runtime over one shared aiohttp session (created and closed by the app)."""

    def __init__(self, http: aiohttp.ClientSession, settings: Settings) -> None:
        self._http = http
        self._url = settings.agent_runtime_url.rstrip("/") + STREAM_PATH
        self._headers = {
            INTERNAL_AUTH_HEADER: settings.agent_runtime_api_key.get_secret_value(),
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
        }

    @staticmethod
    def create_http_session(settings: Settings) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(
            total=None, connect=settings.agent_connect_timeout_s, sock_read=settings.agent_read_timeout_s
        )
        connector = aiohttp.TCPConnector(limit=settings.agent_max_connections)
        return aiohttp.ClientSession(
            timeout=timeout, connector=connector, read_bufsize=max(settings.agent_max_event_bytes // 2, 1 << 16)
        )

    async def stream_step(self, body: bytes, headers: Mapping[str, str] | None = None) -> AsyncIterator[SSEEvent]:
        """The step's events as they arrive; raises AgentStepError when agent-runtime is unreachable or refuses.
        `headers` are sent besides the client's own (the step's `traceparent`)."""
        sent = {**self._headers, **headers} if headers else self._headers
        try:
            async with self._http.post(self._url, data=body, headers=sent) as response:
                if response.status != 200:
                    raise await _refusal(response)
                async for event in iter_sse(response.content):
                    yield event
        except AgentStepError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise AgentStepError(ErrorCode.AGENT_DOWN, f"agent-runtime is unreachable: {_describe(exc)}") from None
        except HttpProcessingError as exc:  # LineTooLong: an event beyond agent_max_event_bytes
            raise AgentStepError(ErrorCode.INTERNAL, f"agent-runtime sent an unreadable stream: {exc}") from None


async def _refusal(response: aiohttp.ClientResponse) -> AgentStepError:
    status = response.status
    if status == 401:
        return AgentStepError(ErrorCode.AGENT_DOWN, "agent-runtime rejected the gateway's credentials (401)")
    if status >= 500:
        return AgentStepError(ErrorCode.AGENT_DOWN, f"agent-runtime failed with HTTP {status}")
    message, code = f"agent-runtime refused the message (HTTP {status})", ErrorCode.INTERNAL
    try:
        error = orjson.loads(await response.read()).get("error") or {}
        message = f"{message}: {error.get('message') or 'no reason given'}"
        code = ErrorCode(str(error.get("code")))
    except (ValueError, AttributeError, aiohttp.ClientError, TimeoutError):
        pass
    return AgentStepError(code, message)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
