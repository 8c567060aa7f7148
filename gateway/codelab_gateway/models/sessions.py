"""Responses of the gateway's internal endpoints."""

from __future__ import annotations

from pydantic import BaseModel


class TurnInfo(BaseModel):
    message_id: str
    state: str
    pending_call_ids: list[str]


class SessionInfo(BaseModel):
    session_id: str
    connected: bool
    dialect: str | None
    tools: list[str] | None
    turn: TurnInfo | None
    last_seq: int
    delivered_seq: int
    buffered_frames: int


class SessionList(BaseModel):
    sessions: list[SessionInfo]
