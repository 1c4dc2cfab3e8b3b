"""Sessions that survive Redis going away: Redis first, the in-process store while it is down.

A Redis failure (refused, reset, timed out) moves every session call to an in-process store at
once, so the conversation goes on; Redis is tried again every ``retry_s``. When it answers, what
was written meanwhile goes back to it (sessions written, sessions and users deleted) before the
call that found it back, so a session lives through the outage and no deletion is forgotten.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from voicemesh.common.metrics import SESSION_STORE_DEGRADED
from voicemesh.storage.sessions import MemorySessionStore, RedisSessionStore, Session

log = logging.getLogger(__name__)

T = TypeVar("T")
Store = RedisSessionStore | MemorySessionStore
REDIS_DOWN = (RedisError, OSError, asyncio.TimeoutError)


class FailoverSessionStore:
    def __init__(
        self, primary: RedisSessionStore, *, retry_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._primary = primary
        self._fallback = MemorySessionStore(primary.ttl_s)
        self._retry_s = retry_s
        self._clock = clock
        self._retry_at: float | None = None  # set while Redis is taken to be down
        self._deleted: list[tuple[str, str]] = []  # ("session" | "user", id) while it is down
        self._lock = asyncio.Lock()
        SESSION_STORE_DEGRADED.set(0)

    @property
    def degraded(self) -> bool:
        return self._retry_at is not None

    async def _call(self, op: Callable[[Store], Awaitable[T]]) -> T:
        if self._retry_at is not None:
            if self._clock() < self._retry_at:
                return await op(self._fallback)
            try:
                await self._recover()
            except REDIS_DOWN as exc:
                self._went_down(exc)
                return await op(self._fallback)
        try:
            return await op(self._primary)
        except REDIS_DOWN as exc:
            self._went_down(exc)
            return await op(self._fallback)

    def _went_down(self, exc: BaseException) -> None:
        if self._retry_at is None:
            log.warning("session store: Redis failed (%s); using in-process sessions until it is back", exc)
        self._retry_at = self._clock() + self._retry_s
        SESSION_STORE_DEGRADED.set(1)

    async def _recover(self) -> None:
        async with self._lock:  # one caller hands the sessions back; the others then find it done
            if self._retry_at is None:
                return
            await self._primary.ping()
            for kind, item in self._deleted:
                await (self._primary.delete(item) if kind == "session" else self._primary.delete_user(item))
            sessions = self._fallback.sessions()
            for session in sessions:
                await self._primary.put(session)
                if (voice := await self._fallback.get_voice(session.session_id)) is not None:
                    await self._primary.put_voice(session.session_id, voice)
            self._deleted.clear()
            self._fallback = MemorySessionStore(self._primary.ttl_s)
            self._retry_at = None
            SESSION_STORE_DEGRADED.set(0)
            log.info("session store: Redis is back; %d sessions written back to it", len(sessions))

    async def get(self, session_id: str) -> Session | None:
        return await self._call(lambda s: s.get(session_id))

    async def put(self, session: Session) -> None:
        await self._call(lambda s: s.put(session))

    async def put_voice(self, session_id: str, voice: bytes) -> None:
        await self._call(lambda s: s.put_voice(session_id, voice))

    async def get_voice(self, session_id: str) -> bytes | None:
        return await self._call(lambda s: s.get_voice(session_id))

    async def drop_voices(self, user_id: str) -> None:
        # Both: a print cached in the fallback while Redis was down must not come back with it.
        await self._fallback.drop_voices(user_id)
        await self._call(lambda s: s.drop_voices(user_id))

    async def touch(self, session_id: str) -> None:
        await self._call(lambda s: s.touch(session_id))

    async def delete(self, session_id: str) -> None:
        await self._fallback.delete(session_id)
        await self._call(lambda s: s.delete(session_id))
        if self.degraded:
            self._deleted.append(("session", session_id))

    async def delete_user(self, user_id: str) -> int:
        deleted = await self._fallback.delete_user(user_id)
        if self.degraded:
            self._deleted.append(("user", user_id))
        deleted += await self._call(lambda s: s.delete_user(user_id))
        return deleted

    async def close(self) -> None:
        await self._primary.close()
        await self._fallback.close()
