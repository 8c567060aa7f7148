"""All sessions of this gateway, by id, with a sweeper that forgets sessions left idle, and at most `max_sessions`
of them (the longest idle is let go for a new one)."""

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
            if len(self._sessions) >= self.settings.max_sessions:
                self._let_go_of_the_longest_idle()
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

    def _let_go_of_the_longest_idle(self) -> None:
        """Make room for a new session: forget the one idle longest. With none idle (every session has a client or
        a turn), nothing goes: those are bounded by the connections themselves."""
        idle = [session for session in self._sessions.values() if session.idle]
        if not idle:
            log.warning("session cap reached with no idle session", sessions=len(self._sessions))
            return
        oldest = min(idle, key=lambda session: session.idle_since)
        del self._sessions[oldest.id]
        self.metrics.sessions.dec()
        log.info("idle session let go for a new one", session_id=oldest.id)

    async def _sweep_forever(self) -> None:
        interval = min(self.settings.session_idle_ttl_s / 2, 30.0)
        while True:
            await asyncio.sleep(interval)
            self.sweep()
