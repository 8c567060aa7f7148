"""Responses of the gateway's internal endpoints."""

from __future__ import annotations

from pydantic import BaseModel


class SessionInfo(BaseModel):
    session_id: str
    connected: bool
    dialect: str | None
    tools: list[str] | None
    delivered_seq: int | None
    """The last seq a client of this gateway was sent (None: none yet, or forgotten)."""


class SessionList(BaseModel):
    sessions: list[SessionInfo]
