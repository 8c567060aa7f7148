"""All sessions of this gateway, by id, with a sweeper that forgets sessions left idle."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from codelab_gateway.core.config import Settings
from codelab_gateway.services.agent_client import AgentClient
from codelab_gateway.services.metrics import GatewayMetrics
from codelab_gateway.services.session import Session

log = structlog.get_logger(__name__)


class SessionHub:
    def __init__(self, settings: Settings, agent: AgentClient, metrics: GatewayMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._agent = agent
        self._sessions: dict[str, Session] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def session(self, session_id: str) -> Session:
        """The session with this id, created on first use."""
        session = self._sessions.get(session_id)
        if session is None:
            session = Session(session_id, agent=self._agent, settings=self.settings, metrics=self.metrics)
            self._sessions[session_id] = session
            self.metrics.sessions.inc()
        return session

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="gateway-session-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for session in list(self._sessions.values()):
            await session.close()
        self.metrics.sessions.dec(len(self._sessions))
        self._sessions.clear()

    def sweep(self) -> int:
        """Forget sessions idle for longer than session_idle_ttl_s; returns how many went."""
        deadline = time.monotonic() - self.settings.session_idle_ttl_s
        expired = [sid for sid, s in self._sessions.items() if s.idle and s.idle_since < deadline]
        for session_id in expired:
            del self._sessions[session_id]
        self.metrics.sessions.dec(len(expired))
        if expired:
            log.info("idle sessions dropped", count=len(expired))
        return len(expired)

    async def _sweep_forever(self) -> None:
        interval = min(self.settings.session_idle_ttl_s / 2, 30.0)
        while True:
            await asyncio.sleep(interval)
            self.sweep()
