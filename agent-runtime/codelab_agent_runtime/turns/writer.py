"""The one writer of a session's event log while its holder drives a step: numbers frames, saves, then publishes.

A frame is published to followers only after it is in the database, so whatever a client was sent can be read
again. Token deltas are written in groups: while one write is in flight the next deltas gather and go in the next
one, so a fast model costs a few writes per answer and a slow one adds no waiting. Deltas that gather that way are
joined into one frame (up to `JOINED_TEXT_MAX` characters), so every hop after the writer (the log, the feed, the
gateway, the client's socket) handles one frame per write rather than one per token, and a slow model's tokens still
go out one by one. A frame that ends a step (a tool call, the turn's final frame, an error) is written with the
session's state in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import orjson

from codelab_agent_runtime.models.session import SessionState
from codelab_agent_runtime.store.sessions import Event, Lease, SqlSessionStore
from codelab_agent_runtime.turns.frames import Frame, is_delta

JOINED_TEXT_MAX = 8192

if TYPE_CHECKING:
    from codelab_agent_runtime.turns.feed import Feeds


class EventWriter:
    def __init__(self, store: SqlSessionStore, feeds: Feeds, lease: Lease, last_seq: int) -> None:
        self.lease = lease
        self._store = store
        self._feeds = feeds
        self._written = last_seq
        """The last seq in the database."""
        self._next = last_seq + 1
        self._pending: list[tuple[int, Frame]] = []
        self._deltas = 0
        """How many of the pending frames, from the first, are deltas: only those are written ahead of a commit (a
        step's closing frames go with the state that closes it)."""
        self._flushing: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    @property
    def session_id(self) -> str:
        return self.lease.session_id

    @property
    def written_seq(self) -> int:
        """The seq of the last frame in the database."""
        return self._written

    @property
    def last_seq(self) -> int:
        """The seq of the last frame appended (written or not yet)."""
        return self._next - 1

    def append(self, frame: Frame) -> int:
        if is_delta(frame) and self._deltas and self._deltas == len(self._pending):
            seq, last = self._pending[-1]
            if last["message_id"] == frame["message_id"] and len(last["content"]) < JOINED_TEXT_MAX:
                last["content"] += frame["content"]
                last["token"] += frame["token"]
                return seq
        seq = self._next
        self._next += 1
        frame["seq"] = seq
        self._pending.append((seq, frame))
        if is_delta(frame) and self._deltas == len(self._pending) - 1:
            self._deltas += 1
            if self._flushing is None:
                self._flushing = asyncio.create_task(self._flush_deltas())
        return seq

    async def commit(
        self, state: SessionState | None = None, *, deadline: float | None = None, release: bool = False
    ) -> int:
        """Write every appended frame and `state` in one transaction, then publish the frames; returns the last seq.
        Raises LeaseLost when the lease is gone (nothing of this write is stored or published)."""
        await self._settle()
        batch, self._pending, self._deltas = self._pending, [], 0
        await self._append(batch, state=state, deadline=deadline, release=release)
        return self._written

    async def _flush_deltas(self) -> None:
        """Write the leading deltas in groups, while more arrive; the frame after them waits for the commit."""
        try:
            while self._deltas:
                batch, self._pending = self._pending[: self._deltas], self._pending[self._deltas :]
                self._deltas = 0
                await self._append(batch)
        except BaseException as exc:  # kept for the next commit, which raises it in the step's own task
            self._failure = exc
        finally:
            self._flushing = None

    async def _settle(self) -> None:
        if self._flushing is not None:
            await asyncio.shield(self._flushing)
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    async def _append(
        self,
        frames: list[tuple[int, Frame]],
        *,
        state: SessionState | None = None,
        deadline: float | None = None,
        release: bool = False,
    ) -> None:
        """Write a batch; once written it is published, also when the step was cancelled while the write ran (the
        store finishes a write it started)."""
        batch: list[Event] = [(seq, orjson.dumps(frame).decode()) for seq, frame in frames]
        write = asyncio.ensure_future(
            self._store.append(self.lease, self._written, batch, state=state, deadline=deadline, release=release)
        )
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await write
            if write.done() and not write.cancelled() and write.exception() is None:
                self._wrote(batch)
            raise
        self._wrote(batch)

    def _wrote(self, batch: list[Event]) -> None:
        if batch:
            self._written = batch[-1][0]
            self._feeds.publish(self.session_id, batch)

    async def close(self) -> None:
        """Stop a group write in flight (the step is over without a commit)."""
        if self._flushing is not None:
            self._flushing.cancel()
            with contextlib.suppress(BaseException):  # whatever it was, the step is over
                await self._flushing
