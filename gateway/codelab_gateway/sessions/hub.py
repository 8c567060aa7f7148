"""The sessions this gateway serves: the one live connection of each, and how far delivery got for each.

The gateway holds no turn state and no frames: agent-runtime's event log has them. What it keeps per session is
the last seq a client of this gateway was sent, so a client that reconnects without naming `last_seq` (the IDE,
the seed's client) goes on where it stopped; that map keeps the `max_sessions` most recent sessions, and a
session forgotten (or a restarted gateway) starts a reconnecting client at the running turn's first frame.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Protocol

import structlog

from codelab_gateway.core.metrics import GatewayMetrics

log = structlog.get_logger(__name__)

REPLACED_CLOSE_CODE = 4000


class Connection(Protocol):
    @property
    def dialect_name(self) -> str: ...

    @property
    def principal_name(self) -> str | None: ...

    @property
    def tools(self) -> list[str] | None: ...

    async def close(self, code: int, reason: str) -> None: ...


class SessionHub:
    def __init__(self, max_sessions: int, metrics: GatewayMetrics) -> None:
        self.metrics = metrics
        self._max_sessions = max_sessions
        self._live: dict[str, Connection] = {}
        self._delivered: OrderedDict[str, int] = OrderedDict()
        self._per_principal: Counter[str] = Counter()

    async def attach(self, session_id: str, connection: Connection) -> None:
        """Make `connection` the session's live one, closing a previous one with 4000 "replaced"."""
        previous = self._live.get(session_id)
        self._live[session_id] = connection
        if connection.principal_name is not None:
            self._per_principal[connection.principal_name] += 1
        if session_id in self._delivered:
            self.metrics.reconnects.inc()
        if previous is not None:
            log.info("connection replaced", session_id=session_id)
            await previous.close(REPLACED_CLOSE_CODE, "replaced")

    def detach(self, session_id: str, connection: Connection) -> None:
        if self._live.get(session_id) is connection:
            del self._live[session_id]
        if (name := connection.principal_name) is not None:
            self._per_principal[name] -= 1
            if self._per_principal[name] <= 0:
                del self._per_principal[name]

    def connections_of(self, principal: str) -> int:
        """Connections open here for `principal` (a replaced one counts until its socket is gone)."""
        return self._per_principal[principal]

    def connection(self, session_id: str) -> Connection | None:
        return self._live.get(session_id)

    def delivered(self, session_id: str) -> int | None:
        return self._delivered.get(session_id)

    def mark_delivered(self, session_id: str, seq: int) -> None:
        delivered = self._delivered
        if session_id in delivered:
            delivered.move_to_end(session_id)
        elif len(delivered) >= self._max_sessions:
            delivered.popitem(last=False)
        delivered[session_id] = seq

    def sessions(self) -> list[tuple[str, Connection | None, int | None]]:
        ids = list(dict.fromkeys([*self._live, *self._delivered]))
        return [(sid, self._live.get(sid), self._delivered.get(sid)) for sid in ids]

    async def close(self) -> None:
        for connection in list(self._live.values()):
            await connection.close(1001, "gateway shutting down")
        self._live.clear()
