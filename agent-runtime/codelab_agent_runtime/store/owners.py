"""Which principal a session belongs to, for calls that name one (the gateway's, with client authentication on).

A session belongs to the principal whose call created it; a session created by a call naming none (client
authentication `none`, an internal caller) belongs to no principal, so no principal may use it. Ownership never
changes, so a confirmed pair is remembered and later calls cost no query.
"""

from __future__ import annotations

import re
from collections import OrderedDict

from codelab_agent_runtime.store.sessions import SqlSessionStore
from codelab_common.protocol import SESSION_ID_PATTERN

_SESSION_ID = re.compile(SESSION_ID_PATTERN)


class Owners:
    def __init__(self, store: SqlSessionStore, remembered: int = 10_000) -> None:
        self._store = store
        self._remembered = remembered
        self._confirmed: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def claim(self, session_id: str, principal: str) -> bool:
        """Whether `principal` may use the session, which becomes theirs when it does not exist yet."""
        if not _SESSION_ID.fullmatch(session_id):
            return False
        pair = (session_id, principal)
        if pair in self._confirmed:
            self._confirmed.move_to_end(pair)
            return True
        if not await self._store.claim(session_id, principal):
            return False
        self._confirmed[pair] = None
        if len(self._confirmed) > self._remembered:
            self._confirmed.popitem(last=False)
        return True
