"""Following a session's event log: what was written after a seq, read from the database, then the live frames.

Frames are published once they are stored. In one process, publishing hands them to the session's feed, which
exists only while someone follows the session and keeps its latest frames in memory. With Redis configured,
every batch is also published on the session's channel; each process listens to all sessions' channels (one
pattern subscription) and hands a batch to its feed for that session, if it has one, so a follower in any process
gets it at once; a gap (a missed Pub/Sub message: Redis delivers at most once) is read from the database, and so
is anything published while no feed listened, so a follower never skips or repeats a seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncGenerator, Sequence

import orjson
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from codelab_agent_runtime.store.sessions import Event, SqlSessionStore
from codelab_common.protocol import ends_turn

log = structlog.get_logger(__name__)

KEPT = 512
"""Frames a feed keeps in memory; a follower further behind reads from the database."""
PAGE = 500


class Feed:
    __slots__ = ("changed", "entries", "followers")

    def __init__(self) -> None:
        self.entries: deque[Event] = deque(maxlen=KEPT)
        self.changed = asyncio.Event()
        self.followers = 0

    def add(self, batch: Sequence[Event]) -> None:
        last = self.entries[-1][0] if self.entries else 0
        fresh = [event for event in batch if event[0] > last]
        if fresh:
            if self.entries and fresh[0][0] != last + 1:
                self.entries.clear()  # a gap: followers read it from the database
            self.entries.extend(fresh)
            self.changed.set()

    def after(self, seq: int) -> list[Event] | None:
        """Entries after `seq` when the feed holds seq+1 onwards (or nothing newer); None when it cannot tell."""
        if not self.entries:
            return None
        first = self.entries[0][0]
        if first > seq + 1:
            return None
        return list(itertools.islice(self.entries, seq + 1 - first, None))  # the entries' seqs have no gaps


class Feeds:
    def __init__(self, store: SqlSessionStore, redis_url: str | None, channel_prefix: str, poll_s: float) -> None:
        self._store = store
        self._feeds: dict[str, Feed] = {}
        self._prefix = channel_prefix
        self._poll_s = poll_s
        self._redis: Redis | None = Redis.from_url(redis_url) if redis_url else None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[tuple[str, Sequence[Event]]] = asyncio.Queue()
        self._publisher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._redis is not None:
            self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            await self._pubsub.psubscribe(self._channel("*"))
            self._listener = asyncio.create_task(self._listen(), name="agent-runtime-feed-listener")
            self._publisher = asyncio.create_task(self._publish_remote(), name="agent-runtime-feed-publisher")

    async def close(self) -> None:
        for task in (self._listener, self._publisher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    def publish(self, session_id: str, batch: Sequence[Event]) -> None:
        feed = self._feeds.get(session_id)
        if feed is not None:
            feed.add(batch)
        if self._redis is not None:
            self._outbox.put_nowait((session_id, batch))

    async def follow(self, session_id: str, after: int) -> AsyncGenerator[Event]:
        """Every frame after `after`, in order, once each, then the live ones; until the caller stops."""
        async with contextlib.aclosing(self.batches(session_id, after)) as batches:
            async for batch in batches:
                for event in batch:
                    yield event

    async def batches(
        self, session_id: str, after: int, *, idle_after_s: float | None = None
    ) -> AsyncGenerator[list[Event]]:
        """`follow`, in the batches the frames were written in (a reader can pass each on in one write). Given
        `idle_after_s`, it ends once the session has been idle that long: nothing newer logged, and the last frame
        closed a turn."""
        feed = self._join(session_id)
        cursor = after
        polled = False
        loop = asyncio.get_running_loop()
        idle = idle_after_s is not None and await self._ended_turn(session_id, after)
        idle_since = loop.time()
        try:
            while True:
                feed.changed.clear()
                batch = feed.after(cursor)
                if batch is None or (not batch and polled):
                    # The feed cannot tell (it began after the cursor, or saw a gap), or nothing came for a while:
                    # the database has whatever the feed never saw.
                    batch = await self._store.events_after(session_id, cursor, PAGE)
                polled = False
                if batch:
                    cursor = batch[-1][0]
                    idle = idle_after_s is not None and ends_turn(batch[-1][1])
                    yield batch
                    idle_since = loop.time()  # once the reader took it (a slow reader holds the yield)
                    continue
                wait = self._poll_s
                if idle and idle_after_s is not None:
                    left = idle_since + idle_after_s - loop.time()
                    if left <= 0:
                        return
                    wait = min(wait, left)
                try:
                    async with asyncio.timeout(wait):
                        await feed.changed.wait()
                except TimeoutError:
                    polled = True  # the next round reads the database: what this feed did not hear of
        finally:
            self._leave(session_id, feed)

    async def _ended_turn(self, session_id: str, seq: int) -> bool:
        """Whether the session's log ends a turn at `seq` (an empty log is idle too)."""
        if seq == 0:
            return True
        at = await self._store.events_after(session_id, seq - 1, 1)
        return bool(at) and ends_turn(at[0][1])

    def _join(self, session_id: str) -> Feed:
        feed = self._feeds.get(session_id)
        if feed is None:
            feed = self._feeds[session_id] = Feed()
        feed.followers += 1
        return feed

    def _leave(self, session_id: str, feed: Feed) -> None:
        feed.followers -= 1
        if feed.followers == 0 and self._feeds.get(session_id) is feed:
            del self._feeds[session_id]

    def _channel(self, session_id: str) -> str:
        return f"{self._prefix}events:{session_id}"

    async def _publish_remote(self) -> None:
        """Publish batches in the order they were written (one task, so a session's batches never overtake)."""
        assert self._redis is not None
        while True:
            session_id, batch = await self._outbox.get()
            try:
                await self._redis.publish(self._channel(session_id), orjson.dumps(batch))
            except Exception as exc:  # followers elsewhere read the database instead
                log.warning("event publish to redis failed", error=str(exc))

    async def _listen(self) -> None:
        assert self._pubsub is not None
        prefix = f"{self._prefix}events:"
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("redis subscription failed; followers read the database meanwhile", error=str(exc))
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "pmessage":
                continue
            session_id = message["channel"].decode().removeprefix(prefix)
            feed = self._feeds.get(session_id)
            if feed is not None:
                feed.add([(int(seq), str(text)) for seq, text in orjson.loads(message["data"])])
