"""What the endpoints of a session share: the check that the calling principal may use it."""

from __future__ import annotations

from fastapi import Request

from codelab_agent_runtime.store.owners import Owners
from codelab_common.protocol import PRINCIPAL_HEADER


class NotYourSession(Exception):
    """The call names a principal the session does not belong to; answered like a session that does not exist."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"no session {session_id[:128]!r} for this client")


async def owned_session(session_id: str, request: Request) -> None:
    """Calls naming a principal (`X-Codelab-Principal`) may use only that principal's sessions."""
    principal = request.headers.get(PRINCIPAL_HEADER)
    if principal is None:
        return
    owners: Owners = request.app.state.owners
    if not await owners.claim(session_id, principal):
        raise NotYourSession(session_id)
